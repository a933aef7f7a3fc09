"""Safe loading of local YAML/JSON files: the config, NodeFeature files, the image mapping.

These files are plain data written by people or exported from the API server, so the loader is
strict where YAML is dangerous: a size limit, no aliases (the billion-laughs shape cannot be
written without them) and only the safe tag set.

JSON is YAML, and most NodeFeature files are JSON (``kubectl get -o json``): a text that looks like
one JSON value is decoded by orjson, many times faster than PyYAML's constructor, which is pure
Python even behind the C parser. That path gives exactly what PyYAML gives or is not taken: it falls
back to PyYAML for anything where the two could differ (numbers with a fraction or an exponent, which
YAML 1.1 resolves its own way and orjson makes floats; integers of 19 digits or more, which orjson
makes floats past 64 bits; characters PyYAML refuses; escaped surrogates; tabs; very long keys, or a
key and its colon on two lines) and for anything orjson does not accept, so errors keep PyYAML's
messages. The textual checks are one RE2 pass (a DFA: linear, and about five times faster than
Python's ``re`` on these patterns); the whole path costs about half of what the standard library's
decoder with the same checks did (5,000 generated NodeFeature files of ≈ 27 KB: 0.47 ms a file
before, see docs/performance.md).

A mapping with the same key twice is an error on both paths (:class:`DuplicateKeyError`, with the key
and its line), not the last value silently: a person who writes a key twice meant one of the two, and
the loaders of the other tools that read these files disagree on which. The JSON path only detects
them (see :func:`_load_json`); the PyYAML path reports them.

Compatibility specs do *not* come through here: they are decoded the way NFD decodes them, by
:mod:`extender.spec.yamlgo`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import re2
import yaml

from extender.errors import DuplicateKeyError, FileLoadError

MAX_FILE_BYTES = 16 << 20

if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:  # libyaml's parser when PyYAML was built with it (the constructor is Python either way)
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


class _Loader(_SafeLoader):
    """The safe loader, refusing a mapping that has the same key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, yaml.MappingNode):
            self._refuse_duplicates(node)
        return super().construct_mapping(node, deep=deep)

    def _refuse_duplicates(self, node: yaml.MappingNode) -> None:
        """Keys are compared as constructed (``0x1`` is ``1``); merged mappings (``<<``) may repeat a
        key of the mapping they are merged into (that is what merging is for), but not their own."""
        pairs = node.value
        texts = {k.value for k, _ in pairs if k.tag == _STR_TAG}
        if len(texts) == len(pairs):
            return  # every key a string (as most are), no two alike: the common case, made quick
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in pairs:
            if key_node.tag == _MERGE_TAG:
                merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for m in merged:
                    if isinstance(m, yaml.MappingNode):
                        self._refuse_duplicates(m)
                continue
            key = self.construct_object(key_node)  # memoized: construct_mapping reuses it
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # an unhashable key: construct_mapping reports it
            if first is not key_node:
                mark = key_node.start_mark
                raise DuplicateKeyError(
                    "<text>",
                    str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else str(key),
                    mark.line + 1,
                    mark.column + 1,
                    first.start_mark.line + 1,
                )


#: Characters PyYAML's reader refuses anywhere in a stream (its ``Reader.NON_PRINTABLE``).
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
#: Line breaks to YAML 1.1 (a raw one inside a JSON string splits it there), ordinary text to JSON.
_YAML_BREAKS = re.compile("[\x85\u2028\u2029]")
#: YAML gives up on a key 1,024 characters or more from its ``:``: a key, or spaces before its
#: ``:``, over this many go to PyYAML.
_MAX_JSON_KEY = 400
#: What sends a JSON text to PyYAML, in one pass (a text holding no tab: see :func:`_load_json`):
_YAML_MAY_DIFFER = re2.compile(
    "|".join(
        (
            # a key whose ``:`` is on a later line: YAML cannot read that as a key (JSON can)
            r'"[ \r\n]*[\r\n][ \r\n]*:',
            # every string over _MAX_JSON_KEY characters (unless it holds an escaped quote: see
            # _load_json), and maybe a long stretch between two strings
            f'"[^"]{{{_MAX_JSON_KEY}}}',
            # a number with a fraction or an exponent: a JSON number follows ``:``, ``,`` or ``[``
            # (and whitespace); the same text inside a string only costs the slow path
            r"[:,\[][ \r\n]*-?[0-9]+[.eE]",
            # an integer that may not fit 64 bits (orjson makes those floats)
            r"[:,\[][ \r\n]*-?[0-9]{19}",
            # a \uD800-\uDFFF escape: orjson pairs surrogates, PyYAML keeps them as they are
            r"\\u[dD][89a-fA-F]",
        )
    )
)


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


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        raise ValueError("a duplicate key: left to PyYAML, which names it")
    return mapping


#: Strict (no raw control characters in strings), integers exact, floats refused (PyYAML decides
#: what those are), checking every object for duplicate keys as it is built: several times slower
#: than orjson, so only for texts with an escaped colon, where :func:`_lost_keys` cannot count.
_JSON_PAIRS = json.JSONDecoder(parse_float=_refuse, parse_constant=_refuse, object_pairs_hook=_unique_pairs)


def _lost_keys(text: str, value: Any) -> bool:
    """Whether decoding ``text`` into ``value`` dropped a repeated key, for a text with no ``\\u003a``
    (an escaped colon).

    Outside its strings, a JSON text has a colon after each key and nowhere else. Inside them, the
    colons of ``text`` are written as colons, and orjson writes every colon as a colon too (it escapes
    only quotes, backslashes and control characters). So ``text`` and orjson's encoding of ``value``
    have as many colons as each other, unless the decoder dropped a key (with the colon after it and
    every colon of its value); whitespace and every other escape make no difference."""
    try:
        kept = orjson.dumps(value)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, deeper than orjson goes: cannot tell
        return True
    return text.count(":") != kept.count(b":")


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
    if _YAML_MAY_DIFFER.search(text):
        return _NOT_JSON
    # a repeated key goes to PyYAML too (which names it): found by counting colons after decoding,
    # or, in a text with an escaped colon, object by object while decoding (slower)
    escapes = "\\" in text  # one memchr; most texts have none, and then skip the searches below
    escaped_colon = escapes and ("\\u003a" in text or "\\u003A" in text)
    try:
        value = _JSON_PAIRS.decode(text) if escaped_colon else orjson.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, _refuse, the int digits limit, a duplicate
        return _NOT_JSON
    if not escaped_colon and _lost_keys(text, value):
        return _NOT_JSON
    # the checks above read the text; with an escaped quote a long key can hide from them
    return _NOT_JSON if escapes and '\\"' in text and _yaml_would_differ(value) else value


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
    except DuplicateKeyError as exc:  # the loader does not know the file's name
        raise DuplicateKeyError(source, exc.key, exc.line, exc.column, exc.first_line) from None
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
