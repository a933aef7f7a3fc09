"""One exception tree: every exception class of the package lives in ``extender/errors.py``, is named
``…Error``, derives from :class:`ExtenderError` and is drawn in that module's docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import extender
from extender import errors


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(extender.__path__, "extender."):
        if info.name.endswith(".__main__"):
            continue  # runs the command line when imported (and defines nothing)
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__.startswith("extender")
            ):
                found[f"{obj.__module__}.{name}"] = obj
    return found


def test_every_exception_class_is_defined_in_errors() -> None:
    classes = _exception_classes()
    assert len(classes) > 20  # the walk reached the whole package
    elsewhere = sorted(where for where, cls in classes.items() if cls.__module__ != "extender.errors")
    assert elsewhere == []


def test_every_class_is_an_extender_error_named_error_and_drawn() -> None:
    doc = errors.__doc__ or ""
    for name, cls in vars(errors).items():
        if not (inspect.isclass(cls) and issubclass(cls, BaseException)):
            continue
        assert name.endswith("Error"), name
        assert issubclass(cls, errors.ExtenderError), name
        if not name.startswith("_"):
            assert f" {name} " in doc or doc.rstrip().endswith(name) or f"{name}\n" in doc, name


def test_the_drawing_shows_each_class_under_its_base() -> None:
    """The tree's indentation says which class derives from which: it must agree with the code."""
    depth_of: dict[str, int] = {}
    parent_at: dict[int, str] = {}
    for line in (errors.__doc__ or "").splitlines():
        stripped = line.strip()
        if not stripped or not stripped.lstrip("│├└─ ").split(" ")[0].endswith("Error"):
            continue
        name = stripped.lstrip("│├└─ ").split(" ")[0]
        depth = (len(line) - len(line.lstrip(" │├└─")) - 4) // 4  # the docstring indents by 4
        depth_of[name] = depth
        parent_at[depth] = name
        if depth > 0:
            base = getattr(errors, parent_at[depth - 1])
            assert issubclass(getattr(errors, name), base), f"{name} is drawn under {base.__name__}"
    public = {n for n, c in vars(errors).items() if inspect.isclass(c) and not n.startswith("_")}
    public -= {"annotations"}
    assert set(depth_of) == public


def test_host_path_error_is_still_an_os_error() -> None:
    exc = errors.HostPathError(2, "outside the host directories", "/etc/x")
    assert isinstance(exc, OSError) and exc.errno == 2 and exc.filename == "/etc/x"
