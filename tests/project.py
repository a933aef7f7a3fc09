"""The project as its packaging declares it, for the tests that check the image and the manifests
against it: pyproject.toml, the version, the console script's name; and ``tool``, which finds the
commands the test extras install (hadolint, kubectl)."""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION: str = PYPROJECT["project"]["version"]
(SCRIPT_NAME,) = PYPROJECT["project"]["scripts"]  # compat-extender


def tool(name: str) -> str:
    """A command from this venv first (the test extras install hadolint and kubectl there)."""
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert found, f"{name} not found: `make` installs it with the test extras (pyproject.toml)"
    return found
