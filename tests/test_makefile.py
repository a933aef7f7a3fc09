"""The Makefile's install steps, read from what ``make -n`` would run (nothing is installed): ``make run``
sets up a venv of its own with the runtime dependencies only (no test, lint or bench tools), ``make
test`` and ``make bench`` the full one with the extras they use, and ``make clean`` and ``.gitignore``
know both venvs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_VENV = ".venv-run"
FULL_VENV = ".venv"
#: what a pip command line installs: "-e .", "-e '.[test,bench]'" -> ".", ".[test,bench]"
PIP_INSTALL = re.compile(r"/pip install (?:--quiet )?(?:--upgrade pip|-e '?(?P<target>[^' ]+)'?)")


def dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands ``make -n TARGET`` prints in a fresh directory holding only pyproject.toml (so every
    stamp is out of date, as on a clean clone)."""
    make = shutil.which("make")
    assert make, "make is needed"
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = subprocess.run(
        [make, "-n", "-C", str(tmp_path), "-f", str(ROOT / "Makefile"), target, "REGISTRY=/bin/sh"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def installs(commands: list[str]) -> list[tuple[str, str]]:
    """(venv, what) for every ``pip install`` of a package: ("``.venv-run``", "``.``")."""
    found: list[tuple[str, str]] = []
    for command in commands:
        m = PIP_INSTALL.search(command)
        if m and m["target"]:
            found.append((command.split("/bin/pip", 1)[0].split()[-1], m["target"]))
    return found


def test_the_parser_reads_pip_lines() -> None:
    assert installs(["  .venv/bin/pip install --quiet -e '.[test,bench]'"]) == [(".venv", ".[test,bench]")]
    assert installs([".venv-run/bin/pip install --quiet -e ."]) == [(".venv-run", ".")]
    assert installs([".venv/bin/pip install --quiet --upgrade pip", "echo pip install x"]) == []


def test_make_run_installs_the_runtime_only_in_its_own_venv(tmp_path: Path) -> None:
    commands = dry_run("run", tmp_path)
    assert installs(commands) == [(RUN_VENV, ".")]  # no extras: no pytest, mypy, ruff, kubectl...
    assert any(
        c.startswith(f"test -x {RUN_VENV}/bin/python || ") and "-m venv .venv-run" in c for c in commands
    )
    (serve,) = [c for c in commands if " serve " in c]
    assert serve.startswith(f"{RUN_VENV}/bin/compat-extender serve --config config/extender.yaml"), serve
    assert not [c for c in commands if re.search(r"(?<![\w-])\.venv/", c)]  # never touches the full venv


@pytest.mark.parametrize(("target", "extras"), [("test", "test,bench"), ("bench", "test,bench")])
def test_make_test_and_bench_install_their_extras_in_the_full_venv(
    target: str, extras: str, tmp_path: Path
) -> None:
    commands = dry_run(target, tmp_path)
    assert installs(commands) == [(FULL_VENV, f".[{extras}]")]
    assert not [c for c in commands if RUN_VENV in c]


def test_clean_and_gitignore_know_both_venvs(tmp_path: Path) -> None:
    (clean,) = [c for c in dry_run("clean", tmp_path) if c.startswith("rm -rf")]
    assert {FULL_VENV, RUN_VENV} <= set(clean.split())
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert f"{FULL_VENV}/" in ignored and f"{RUN_VENV}/" in ignored
