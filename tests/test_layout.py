"""No module under tests/ or benchmarks/ imports from a test module (``tests.test_*``): helpers that
more than one module needs live in the non-test modules of tests/ (tests/kube_objects.py,
tests/file_sources.py, tests/waiting.py, ...). Otherwise a test module doubles as a library: running
one test file loads others with all their module-level setup, and editing or removing a test can
break unrelated ones. Checked on the syntax tree (every import statement, also inside functions,
relative imports resolved), not with a pattern on the text."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("tests", "benchmarks")


def _is_test_module(dotted: str) -> bool:
    parts = dotted.split(".")
    return len(parts) >= 2 and parts[0] == "tests" and parts[1].startswith("test_")


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` names, relative imports resolved against ``package``."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _import_call(node: ast.Call) -> list[str]:
    """The module ``importlib.import_module("...")`` or ``__import__("...")`` loads, if literal."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    first = node.args[0] if node.args else None
    if called in ("import_module", "__import__") and isinstance(first, ast.Constant):
        return [first.value] if isinstance(first.value, str) else []
    return []


def imports_of_test_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, statement) for every import in ``source`` (a module of ``package``) that loads a
    ``tests.test_*`` module: ``import tests.test_x``, ``from tests.test_x import y``,
    ``from tests import test_x``, their relative forms, and ``importlib.import_module`` with a
    literal name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call):
            names = _import_call(node)
        else:
            continue
        if any(_is_test_module(name) for name in names):
            found.append((node.lineno, ast.unparse(node)))
    return found


def _python_files() -> list[Path]:
    return sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py"))


def _package(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).parent.parts)


def test_no_module_imports_from_a_test_module() -> None:
    files = _python_files()
    assert Path(__file__).resolve() in files
    assert {p.relative_to(ROOT).parts[0] for p in files} == set(SCANNED)
    offences = [
        f"{path.relative_to(ROOT)}:{line}: {statement}"
        for path in files
        for line, statement in imports_of_test_modules(path.read_text(), _package(path))
    ]
    assert not offences, (
        "imports from test modules; move what they share into a non-test module under tests/:\n"
        + "\n".join(offences)
    )


@pytest.mark.parametrize(
    ("source", "package"),
    [
        ("from tests.test_kube_source import node\n", "tests"),
        ("import tests.test_kube_source\n", "benchmarks"),
        ("import tests.test_kube_source as kube\n", "tests"),
        ("from tests import test_kube_source\n", "tests"),
        ("from tests import helpers, test_kube_source\n", "benchmarks"),
        ("from .test_kube_source import node\n", "tests"),
        ("from . import test_kube_source\n", "tests"),
        ("from ..test_kube_source import node\n", "tests.data"),
        ("def f():\n    from tests.test_registry_serve import pushed_with_spec\n", "tests"),
        ("async def f():\n    if True:\n        import tests.test_serve\n", "tests"),
        ("import importlib\nimportlib.import_module('tests.test_serve')\n", "benchmarks"),
    ],
)
def test_the_check_finds_every_form(source: str, package: str) -> None:
    """The control: each way of importing a test module is found, once."""
    assert len(imports_of_test_modules(source, package)) == 1, source


@pytest.mark.parametrize(
    ("source", "package"),
    [
        ("from tests.helpers import node\n", "tests"),
        ("from tests.kube_objects import node_object, nodefeature_object\n", "tests"),
        ("from tests import dockerfile, helpers\n", "tests"),
        ("import tests.waiting\n", "benchmarks"),
        ("from .waiting import until\n", "tests"),
        ("from .test_x import y\n", "benchmarks"),  # benchmarks.test_x, not a test module of tests/
        ("from tests.testing import x\n", "tests"),
        ("from tests.helpers import test_value\n", "tests"),
        ("from extender.test_x import y\n", "tests"),
        ("import importlib\nimportlib.import_module(name)\n", "tests"),
    ],
)
def test_the_check_passes_other_imports(source: str, package: str) -> None:
    assert imports_of_test_modules(source, package) == [], source
