"""Safe loading of local YAML/JSON files: the config, NodeFeature files, the image mapping.

These files are plain data written by people or exported from the API server, so the loader is
strict where YAML is dangerous: a size limit, no aliases (the billion-laughs shape cannot be
written without them) and only the safe tag set. Compatibility specs do *not* come through here:
they are decoded the way NFD decodes them, by :mod:`extender.spec.yamlgo`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from extender.errors import FileLoadError

MAX_FILE_BYTES = 16 << 20

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _refuse_aliases(text: str) -> None:
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            mark = event.start_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
            raise yaml.YAMLError(f"YAML aliases are not accepted in this file ({where})")


def load_documents(data: bytes, source: str, *, max_bytes: int = MAX_FILE_BYTES) -> list[Any]:
    """Every YAML document in ``data`` (JSON is YAML), empty documents dropped."""
    if len(data) > max_bytes:
        raise FileLoadError(f"{source}: {len(data)} bytes, over the {max_bytes}-byte limit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileLoadError(f"{source}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        _refuse_aliases(text)
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise FileLoadError(f"{source}: {_one_line(exc)}") from None
    except RecursionError:
        raise FileLoadError(f"{source}: nested too deeply") from None
    return [d for d in docs if d is not None]


def load_file(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> list[Any]:
    """Read and decode ``path`` (blocking: call it from a worker thread on a running loop)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise FileLoadError(f"{path}: {exc.strerror or exc}") from None
    return load_documents(data, str(path), max_bytes=max_bytes)


def _one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())
