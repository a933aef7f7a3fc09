"""Every command's ``--help`` has a description, examples that parse, and its exit codes; the codes
listed are the ones the command's code returns (read from its source), and the top-level ``--help``
lists every command with one line."""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import shlex
import textwrap
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from extender.cli import main as cli_main

#: argparse's own exit status for bad usage (unknown flag, missing argument): every command has it
USAGE = 2


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli_main._parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


COMMANDS = sorted(_subparsers())


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        cli_main.main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def _section(text: str, heading: str) -> list[str]:
    """The lines under ``heading`` (a line starting with it), up to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    out: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        out.append(line)
    return out


def _examples(text: str) -> list[str]:
    """The example command lines, continuation lines (``\\``) joined."""
    joined = "\n".join(_section(text, "examples:")).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("compat-extender")]


def _documented_codes(text: str) -> dict[int, str]:
    codes: dict[int, str] = {}
    for line in _section(text, "exit codes"):
        m = re.match(r"  (\d+)  (\S.*)", line)
        if m:
            codes[int(m.group(1))] = m.group(2)
        else:
            assert line.startswith("     "), f"not a code nor its continuation: {line!r}"
    return codes


def test_top_level_help_lists_every_command_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys)
    assert "--version" in text
    listed = {}
    for line in _section(text, "commands:")[1:]:  # after the COMMAND placeholder
        m = re.match(r"    (\S+)(?:\s+(\S.*))?$", line)
        if m:
            listed[m.group(1)] = m.group(2)
    assert sorted(listed) == COMMANDS
    parser = cli_main._parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in sub._choices_actions:
        assert action.help and "\n" not in action.help and len(action.help) < 100, action.dest
    examples = [shlex.split(e) for e in _examples(text)]
    assert ["compat-extender", "--version"] in examples
    for argv in examples:
        if argv[1:] != ["--version"]:  # that one prints and exits
            assert cli_main._parser().parse_args(argv[1:]).command == argv[1]
    assert sorted(_documented_codes(text)) == [0, 1, 2]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_a_description_examples_and_exit_codes(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = _subparsers()[command]
    assert isinstance(parser.formatter_class, type)
    assert issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)
    text = _help(capsys, command)
    description = parser.description or ""
    assert len(description.split()) >= 15, "a description of a sentence or more"
    assert description.splitlines()[0] in text
    examples = _examples(text)
    assert examples, "at least one example"
    for example in examples:
        argv = shlex.split(example)
        argv = argv[: next((i for i, a in enumerate(argv) if a in {">", "|", "&&"}), len(argv))]
        assert argv[:2] == ["compat-extender", command], example
        args = cli_main._parser().parse_args(argv[1:])  # SystemExit (2) if it does not parse
        assert args.command == command
    codes = _documented_codes(text)
    assert "bad usage" in codes[USAGE]
    assert set(codes) == _returned_codes(command) | {USAGE}


# -- the codes each command's function can return, read from its source ---------------------------


def _handlers() -> dict[str, Callable[..., Any]]:
    """command -> the function ``main`` dispatches it to (through ``asyncio.run`` for some)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cli_main.main)))
    found: dict[str, Callable[..., Any]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)):
            continue
        (compared,) = node.test.comparators
        ret = node.body[0]
        assert isinstance(compared, ast.Constant) and isinstance(ret, ast.Return), ast.dump(node)
        assert isinstance(compared.value, str)
        call = ret.value
        while isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Call):
            call = call.args[0]  # asyncio.run(handler(args))
        assert isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
        assert isinstance(call.func.value, ast.Name)
        module = vars(cli_main)[call.func.value.id]
        found[compared.value] = getattr(module, call.func.attr)
    return found


def _returned_codes(command: str) -> set[int]:
    handler = _handlers()[command]
    module = inspect.getmodule(handler)
    assert module is not None
    return _codes_of(handler, module)


def _codes_of(function: Callable[..., Any], module: ModuleType) -> set[int]:
    """The integers ``function`` can return: literals in its ``return`` expressions, in what is
    assigned to a name it returns, and what the same module's functions called there return."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    returns = [n.value for n in ast.walk(tree) if isinstance(n, ast.Return) and n.value is not None]
    names = {n.id for r in returns for n in ast.walk(r) if isinstance(n, ast.Name)}
    assigned = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign | ast.AugAssign)
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(t, ast.Name) and t.id in names
    ]
    codes: set[int] = set()
    for expr in (*returns, *assigned):
        for n in ast.walk(expr):
            if isinstance(n, ast.Constant) and type(n.value) is int:
                codes.add(n.value)
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
                called = getattr(module, n.func.id, None)
                if inspect.isfunction(called) and called.__module__ == module.__name__:
                    codes |= _codes_of(called, module)
    return codes


def test_the_source_reading_finds_what_it_should() -> None:
    """The reader above, on the commands whose codes are plain to see."""
    assert set(_handlers()) == set(COMMANDS)
    assert _returned_codes("check-spec") == {0, 1, 2}  # status = max(status, ...) ... return status
    assert _returned_codes("attach") == {0, 1, 2}  # return _fail(...), which returns 2
    assert _returned_codes("host-features") == {0}
    assert _returned_codes("serve") == {0, 2}
