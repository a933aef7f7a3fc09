"""Safe loading of local YAML/JSON files: the config, NodeFeature files, the image mapping.

These files are plain data written by people or exported from the API server, so the loader is
strict where YAML is dangerous: a size limit, no aliases (the billion-laughs shape cannot be
written without them) and only the safe tag set.

JSON is YAML, and most NodeFeature files are JSON (``kubectl get -o json``): a text that looks like
one JSON value is decoded by the standard library's C JSON decoder, many times faster than PyYAML's
constructor, which is pure Python even behind the C parser. (Not orjson: it is about as fast here,
but turns integers over 64 bits into floats and has no hook to refuse floats.) That path gives
exactly what PyYAML gives or is not taken: it falls back to PyYAML for anything where the two could
differ (numbers with a fraction or an exponent, which YAML 1.1 resolves its own way; characters
PyYAML refuses; escaped surrogates; tabs; very long keys, or a key and its colon on two lines) and
for anything the JSON decoder does not accept, so errors keep PyYAML's messages.

Compatibility specs do *not* come through here: they are decoded the way NFD decodes them, by
:mod:`extender.spec.yamlgo`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from extender.errors import FileLoadError

MAX_FILE_BYTES = 16 << 20

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


#: Characters PyYAML's reader refuses anywhere in a stream (its ``Reader.NON_PRINTABLE``).
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
#: Line breaks to YAML 1.1 (a raw one inside a JSON string splits it there), ordinary text to JSON.
_YAML_BREAKS = re.compile("[\x85\u2028\u2029]")
#: A ``\uD800``-``\uDFFF`` escape: orjson pairs surrogates, PyYAML keeps them as they are.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: A key whose ``:`` is on a later line: YAML cannot read that as a key (JSON can).
_KEY_THEN_NEWLINE = re.compile(r'"[ \r\n]*[\r\n][ \r\n]*:')
#: YAML gives up on a key 1,024 characters or more from its ``:``: a key, or spaces before its
#: ``:``, over this many go to PyYAML.
_MAX_JSON_KEY = 400
#: Every string over ``_MAX_JSON_KEY`` characters matches (unless it holds an escaped quote: see
#: :func:`_load_json`), and so may a long stretch between two strings.
_LONG_STRING = re.compile(f'"[^"]{{{_MAX_JSON_KEY},}}')


def _yaml_would_differ(value: Any) -> bool:
    """A float (YAML 1.1 resolves ``1e5`` as a string, ``1.5e+5`` as a float) or a very long key."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if any(len(k) > _MAX_JSON_KEY for k in v):
                return True
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, float):
            return True
    return False


_NOT_JSON = object()


def _refuse(text: str) -> Any:
    """A number with a fraction or an exponent, or NaN/Infinity: PyYAML decides what those are."""
    raise ValueError(f"{text}: left to PyYAML")


#: Strict (no raw control characters in strings); integers exact, as PyYAML makes them.
_JSON = json.JSONDecoder(parse_float=_refuse, parse_constant=_refuse)


def _load_json(text: str) -> Any:
    """``text`` decoded as one JSON value when that is certainly what PyYAML would construct from it,
    else ``_NOT_JSON`` (the caller then takes the PyYAML path, errors included)."""
    # tabs: YAML takes them as separation only in some places (a JSON text has them nowhere else)
    if text.lstrip(" \r\n")[:1] not in ("{", "[") or "\t" in text:
        return _NOT_JSON
    # a valid JSON text has no raw control character but its whitespace: in ASCII, only DEL is left;
    # beyond ASCII, also the characters YAML reads as line breaks (NEL, LS, PS) where JSON does not
    if "\x7f" in text if text.isascii() else (_NON_PRINTABLE.search(text) or _YAML_BREAKS.search(text)):
        return _NOT_JSON
    if ("\\u" in text and _SURROGATE_ESCAPE.search(text)) or _KEY_THEN_NEWLINE.search(text):
        return _NOT_JSON
    if _LONG_STRING.search(text):
        return _NOT_JSON
    try:
        value = _JSON.decode(text)
    except (ValueError, RecursionError):  # JSONDecodeError, _refuse, the int digits limit
        return _NOT_JSON
    # the checks above read the text; with an escaped quote a long key can hide from them
    return _NOT_JSON if '\\"' in text and _yaml_would_differ(value) else value


def _refuse_aliases(text: str) -> None:
    if "*" not in text:
        return  # an alias is written *name: none here (anchors alone are harmless)
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
    value = _load_json(text)
    if value is not _NOT_JSON:
        return [] if value is None else [value]
    return _load_yaml(text, source)


def _load_yaml(text: str, source: str) -> list[Any]:
    """The PyYAML path of :func:`load_documents` (the reference the JSON path must agree with)."""
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
