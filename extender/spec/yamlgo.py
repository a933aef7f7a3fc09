"""Decode YAML/JSON bytes into plain values the way NFD's Go client sees them, safely.

NFD decodes a spec with ``sigs.k8s.io/yaml`` v1.6.0: go-yaml v2 (``go.yaml.in/yaml/v2``, YAML 1.1) turns
the first document into Go values, those are converted to JSON, and the JSON is decoded into typed
structs. The YAML 1.1 step decides what a plain scalar *is* (``0200`` is the octal integer 128, ``yes``
and ``y`` are booleans, ``1e3`` is a float, ``08`` is the float 8, ``2024-01-02`` stays a string); the
typed step later decides what that becomes in a string or integer field. PyYAML resolves scalars
differently (YAML 1.1 with sexagesimals and dates, no ``y``/``n`` booleans, ``08`` a string), so this
module never uses PyYAML's resolver or constructor. It reads PyYAML's *event stream* (libyaml when
available, the same parser go-yaml v2 was ported from) and builds :data:`Node` values itself:

* Every scalar keeps its Go-resolved kind *and* its original text, so the typed step (``parse.py``)
  can convert it exactly as Go would for the target field.
* Mapping keys become strings as ``sigs.k8s.io/yaml`` makes them (``1:`` -> ``"1"``, ``y:`` ->
  ``"true"``); a null, out-of-int64-range or collection key is an error there and here. Duplicate keys:
  the last value wins, keeping the first key's position (go-yaml v2's non-strict mode overwrites).
* ``<<`` merge keys work as in go-yaml v2 (merged entries overwrite what precedes them).
* Only the first document is read, like ``yaml.Unmarshal``; what follows ``---`` is never parsed.

Safety: no constructor runs, values are built with an explicit stack (no recursion, so 10,000 levels of
nesting cannot hit Python's recursion limit), and :class:`SpecLimits` caps input bytes, scalar length,
nesting depth, node count and alias expansion. An alias is not copied: it shares the anchored value,
and the node count of that value is charged at once, so a "billion laughs" document fails on the alias
limit after a handful of events. go-yaml's own guard (more than 99% of decode calls coming from aliases
is "excessive aliasing") is reproduced too, so nothing go-yaml refuses gets through.

Deliberate deviations (all reject input Go would take, or pick one of Go's random outcomes): explicit
tags other than the YAML core ones, ``!!binary`` and ``!!timestamp`` are errors (go-yaml ignores tags on
collections and reads unknown-tagged scalars as strings); input must be UTF-8 (go-yaml also reads
UTF-16 with a BOM) and is validated as a whole, even past the first document; keys that differ in YAML
but give the same string (``1`` and ``"1"``) keep the later one (Go picks at random); the limits above.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
)

from extender.errors import SpecError, SpecLimitError
from extender.values import INT64_MAX, INT64_MIN, UINT64_MAX

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

_UINT64_LIMIT = UINT64_MAX + 1
_TAG = "tag:yaml.org,2002:"

ScalarValue = bool | int | float | str | None


@dataclass(frozen=True, slots=True)
class SpecLimits:
    """Hard limits for one spec document. Exceeding any raises :class:`SpecLimitError`."""

    max_bytes: int = 1 << 20  #: input size, checked before parsing
    max_nodes: int = 100_000  #: scalars + collections, counting alias expansions
    max_depth: int = 64  #: nesting of collections (aliases count with the depth they expand to)
    max_alias_expansion: int = 10_000  #: nodes produced through aliases
    max_scalar_len: int = 64 * 1024  #: characters in one scalar (keys included)
    # What the document describes (NFD has no such limits; these are far above real specs and give a
    # clear error naming the limit instead of a slow evaluation of an absurd one):
    max_sets: int = 256  #: compatibility sets
    max_rules: int = 2048  #: rules, all sets together
    max_expressions: int = 16384  #: matchExpressions entries and matchName, all rules together
    max_values: int = 4096  #: values of one expression
    max_regex_len: int = 4096  #: characters of one InRegexp value

    def __post_init__(self) -> None:
        for name in (
            "max_bytes",
            "max_nodes",
            "max_depth",
            "max_alias_expansion",
            "max_scalar_len",
            "max_sets",
            "max_rules",
            "max_expressions",
            "max_values",
            "max_regex_len",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"SpecLimits.{name} must be at least 1")


class Kind(Enum):
    """What go-yaml v2 resolved a scalar to (uint64-range integers are ``INT`` too)."""

    NULL = "null"
    BOOL = "boolean"
    INT = "integer"
    FLOAT = "number"
    STR = "string"


@dataclass(frozen=True, slots=True)
class Scalar:
    kind: Kind
    value: ScalarValue  #: the resolved value (the text itself for ``STR``)
    text: str  #: the scalar as written (after YAML quoting/folding)
    line: int  #: 1-based position of the scalar in the input
    column: int


@dataclass(frozen=True, slots=True)
class Mapping:
    items: tuple[tuple[str, Node], ...]  #: keys unique, in order of first occurrence
    line: int
    column: int
    #: (key, text as written) for each key that YAML 1.1 resolved to something else (``0302:`` is the
    #: key ``"194"``); for linters, not part of the value
    key_texts: tuple[tuple[str, str], ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Sequence:
    items: tuple[Node, ...]
    line: int
    column: int


Node = Scalar | Mapping | Sequence


def describe(node: Node) -> str:
    """``"a string"``, ``"a list"``, ... for error messages."""
    if isinstance(node, Mapping):
        return "a mapping"
    if isinstance(node, Sequence):
        return "a list"
    if node.kind is Kind.NULL:
        return "null"
    return f"{'an' if node.kind is Kind.INT else 'a'} {node.kind.value} ({node.text!r})"


# ---------------------------------------------------------------------------------------------------
# YAML 1.1 resolution as go-yaml v2's resolve.go does it, with Go's strconv number syntax.

_RESOLVE_MAP: dict[str, tuple[Kind, bool | float | None]] = {"": (Kind.NULL, None)}
for _words, _res in (
    ("y Y yes Yes YES true True TRUE on On ON", (Kind.BOOL, True)),
    ("n N no No NO false False FALSE off Off OFF", (Kind.BOOL, False)),
    ("~ null Null NULL", (Kind.NULL, None)),
    (".nan .NaN .NAN", (Kind.FLOAT, math.nan)),
    (".inf .Inf .INF +.inf +.Inf +.INF", (Kind.FLOAT, math.inf)),
    ("-.inf -.Inf -.INF", (Kind.FLOAT, -math.inf)),
):
    for _w in _words.split():
        _RESOLVE_MAP[_w] = _res
_NUMBER_START = frozenset("+-0123456789")
# go-yaml's yamlStyleFloat, applied after removing every '_'.
_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
# strconv.ParseFloat syntax for text starting with '.': '_' only between digits.
_DOT_FLOAT = re.compile(r"\.[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+(?:_[0-9]+)*)?")
_DIGITS = {2: frozenset("01"), 8: frozenset("01234567"), 10: frozenset("0123456789")}
_DIGITS[16] = frozenset("0123456789abcdefABCDEF")


def _parse_uint(s: str, base: int) -> int | None:
    """``strconv.ParseUint(s, base, 64)`` for base 0 (prefixes ``0x``/``0o``/``0b``/``0``) or 2."""
    if base == 0:
        base = 10
        if s[:1] == "0":
            prefix = s[1:2].lower()
            if len(s) >= 3 and prefix in ("b", "o", "x"):
                base, s = {"b": 2, "o": 8, "x": 16}[prefix], s[2:]
            else:
                base, s = 8, s[1:]
                if not s:
                    return 0
    if not s or not set(s) <= _DIGITS[base]:
        return None
    n = int(s, base)
    return n if n < _UINT64_LIMIT else None


def _parse_int(s: str, base: int) -> int | None:
    """``strconv.ParseInt(s, base, 64)``: optional sign, then :func:`_parse_uint`, int64 range."""
    neg = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    n = _parse_uint(s, base) if s else None
    if n is None:
        return None
    n = -n if neg else n
    return n if INT64_MIN <= n <= INT64_MAX else None


def _finite_float(text: str) -> float | None:
    f = float(text)
    return None if math.isinf(f) else f  # strconv.ParseFloat reports overflow as an error


def resolve_plain(text: str) -> tuple[Kind, ScalarValue]:
    """go-yaml v2's ``resolve("", text)`` for an untagged plain scalar. Timestamps are left out: any
    text they match is kept as a string anyway (``sigs.k8s.io/yaml`` sees the original text)."""
    hit = _RESOLVE_MAP.get(text)
    if hit is not None:
        return hit
    first = text[0]
    if first == ".":
        if _DOT_FLOAT.fullmatch(text) and (f := _finite_float(text.replace("_", ""))) is not None:
            return Kind.FLOAT, f
    elif first in _NUMBER_START:
        plain = text.replace("_", "")
        for n in (_parse_int(plain, 0), _parse_uint(plain, 0)):
            if n is not None:
                return Kind.INT, n
        if _YAML_FLOAT.fullmatch(plain) and (f := _finite_float(plain)) is not None:
            return Kind.FLOAT, f
        if plain.startswith("0b"):  # base-2 fallbacks of resolve.go (they accept a sign after 0b)
            for n in (_parse_int(plain[2:], 2), _parse_uint(plain[2:], 2)):
                if n is not None:
                    return Kind.INT, n
        elif plain.startswith("-0b") and (n := _parse_int("-" + plain[3:], 2)) is not None:
            return Kind.INT, n
    return Kind.STR, text


_TAG_KINDS = {_TAG + "bool": Kind.BOOL, _TAG + "int": Kind.INT, _TAG + "float": Kind.FLOAT}
_TAG_KINDS[_TAG + "null"] = Kind.NULL


def _resolve_tagged(tag: str, text: str) -> tuple[Kind, ScalarValue] | None:
    """``resolve(tag, text)`` for an explicit core tag; ``None`` where go-yaml fails to decode."""
    if tag == _TAG + "str":
        return Kind.STR, text
    kind, value = resolve_plain(text) if text else (Kind.NULL, None)
    want = _TAG_KINDS[tag]
    if want is Kind.FLOAT and kind is Kind.INT and isinstance(value, int) and value <= INT64_MAX:
        return Kind.FLOAT, float(value)  # go-yaml converts int/int64 (not uint64) to float64
    return (kind, value) if kind is want else None


def format_float32(f: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'g', -1, 32)``: what ``sigs.k8s.io/yaml`` writes when a YAML
    float lands in a string field (``6.10`` -> ``6.1``, ``1e6`` -> ``1e+06``, ``.inf`` -> ``+Inf``).
    The value is first rounded to float32, then printed with the shortest float32 digits."""
    if math.isnan(f):
        return "NaN"
    import numpy as np  # only needed for floats in string fields; numpy has float32 Dragon4

    with np.errstate(over="ignore"):
        f32 = np.float32(f)
    if np.isinf(f32):
        return "+Inf" if f > 0 else "-Inf"
    sci = np.format_float_scientific(f32, unique=True, trim="-")
    sign = "-" if sci.startswith("-") else ""
    mantissa, _, exp_text = sci.lstrip("-").partition("e")
    digits = mantissa.replace(".", "")
    if digits == "0":
        return sign + "0"
    exp = int(exp_text)
    if exp < -4 or exp >= 6:  # %e, with the shortest digits and a two-digit minimum exponent
        frac = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{frac}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    point = exp + 1
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _key_string(node: Node) -> str:
    """A mapping key as ``sigs.k8s.io/yaml`` turns it into a JSON object key."""
    if not isinstance(node, Scalar):
        raise SpecError("", f"line {node.line}, column {node.column}: invalid map key: {describe(node)}")
    if node.kind is Kind.STR:
        return node.text
    if node.kind is Kind.BOOL:
        return "true" if node.value else "false"
    if node.kind is Kind.INT and isinstance(node.value, int) and node.value <= INT64_MAX:
        return str(node.value)
    if node.kind is Kind.FLOAT and isinstance(node.value, float):
        text = format_float32(node.value)
        return {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text)
    raise SpecError("", f"line {node.line}, column {node.column}: unsupported map key: {describe(node)}")


def contains_nonfinite(node: Node) -> bool:
    """True if a NaN/Inf float sits anywhere below ``node``: Go's ``json.Marshal`` fails on those
    unless a string field converted them first. Iterative; shared (aliased) values are revisited,
    which the node limit keeps bounded."""
    todo: list[Node] = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, Scalar):
            if n.kind is Kind.FLOAT and isinstance(n.value, float) and not math.isfinite(n.value):
                return True
        elif isinstance(n, Mapping):
            todo.extend(v for _, v in n.items)
        else:
            todo.extend(n.items)
    return False


# ---------------------------------------------------------------------------------------------------
# The event-driven builder.


# Per built value: (nodes after alias expansion, nesting height, go-yaml decode calls incl. alias nodes).
_Stats = tuple[int, int, int]


@dataclass(slots=True)
class _Frame:
    line: int
    column: int
    anchor: str | None
    mapping: bool
    values: list[Node] = field(default_factory=list)
    entries: dict[str, Node] = field(default_factory=dict)
    key_texts: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    expect_key: bool = True
    merge: bool = False
    size: int = 1
    height: int = 1
    visits: int = 1


class _Builder:
    def __init__(self, limits: SpecLimits) -> None:
        self.limits = limits
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Node, _Stats]] = {}
        self.open_anchors: dict[str, _Frame] = {}  # anchored collections still being built
        self.nodes = 0
        self.expanded = 0
        self.decodes = 1  # go-yaml's decodeCount / aliasCount (the document node counts once)
        self.alias_decodes = 0

    def where(self, event: yaml.Event) -> tuple[int, int]:
        mark = event.start_mark
        return (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)

    def fail(self, event: yaml.Event, message: str, error: type[SpecError] = SpecError) -> SpecError:
        line, column = self.where(event)
        return error("", f"line {line}, column {column}: {message}")

    def count(self, event: yaml.Event, stats: _Stats) -> None:
        size, height, visits = stats
        self.nodes += size
        self.decodes += visits
        if self.nodes > self.limits.max_nodes:
            raise SpecLimitError(
                "", f"spec has more than {self.limits.max_nodes} YAML nodes (limits.specYamlNodes)"
            )
        if len(self.stack) + height > self.limits.max_depth:
            raise self.fail(
                event,
                f"nesting deeper than {self.limits.max_depth} levels (limits.specYamlDepth)",
                SpecLimitError,
            )

    def alias(self, event: AliasEvent) -> tuple[Node, _Stats]:
        name = event.anchor or ""
        if name in self.open_anchors:
            raise self.fail(event, f"anchor {name!r} value contains itself")
        if name not in self.anchors:
            raise self.fail(event, f"unknown anchor {name!r} referenced")
        node, (size, height, visits) = self.anchors[name]
        self.expanded += size
        if self.expanded > self.limits.max_alias_expansion:
            raise SpecLimitError(
                "",
                f"aliases expand to more than {self.limits.max_alias_expansion} YAML nodes "
                "(limits.specYamlAliasNodes)",
            )
        stats = (size, height, visits + 1)
        self.count(event, stats)
        self.alias_decodes += visits
        # go-yaml's own guard (decode.go, allowedAliasRatio: 99% below 400,000 decodes); the ratio
        # only grows while an alias expands, so checking at its end is enough.
        if self.alias_decodes > 100 and self.decodes > 1000 and self.alias_decodes > 0.99 * self.decodes:
            raise self.fail(event, "document contains excessive aliasing", SpecLimitError)
        return node, stats

    def scalar(self, event: ScalarEvent) -> Node:
        text = event.value
        if len(text) > self.limits.max_scalar_len:
            raise SpecLimitError(
                "",
                f"a scalar is longer than {self.limits.max_scalar_len} characters (limits.specScalarChars)",
            )
        tag, line_col = event.tag, self.where(event)
        if tag is None:
            kind, value = resolve_plain(text) if event.implicit[0] else (Kind.STR, text)
        elif tag == "!":  # the non-specific tag: always a string in go-yaml v2
            kind, value = Kind.STR, text
        elif tag == _TAG + "str" or tag in _TAG_KINDS:
            resolved = _resolve_tagged(tag, text)
            if resolved is None:
                raise self.fail(event, f"cannot decode {text!r} as !!{tag[len(_TAG) :]}")
            kind, value = resolved
        else:
            raise self.fail(event, f"unsupported tag {tag!r}")
        return Scalar(kind, value, text, *line_col)

    def attach(self, event: yaml.Event, node: Node, stats: _Stats, merge_key: bool) -> None:
        frame = self.stack[-1]
        frame.size += stats[0]
        frame.height = max(frame.height, stats[1] + 1)
        frame.visits += stats[2]
        if not frame.mapping:
            frame.values.append(node)
        elif frame.expect_key:
            frame.expect_key = False
            frame.merge = merge_key
            frame.key = None if merge_key else _key_string(node)
            if isinstance(node, Scalar) and frame.key is not None and frame.key != node.text:
                frame.key_texts[frame.key] = node.text
            elif frame.key is not None:
                frame.key_texts.pop(frame.key, None)  # a later key written as it reads wins
        elif frame.merge:  # earlier mappings of a merge list take precedence: apply them last
            frame.expect_key = True
            for source in list(reversed(node.items)) if isinstance(node, Sequence) else [node]:
                if not isinstance(source, Mapping):
                    raise self.fail(event, "map merge requires map or sequence of maps as the value")
                frame.entries.update(source.items)
        else:
            frame.expect_key = True
            frame.entries[frame.key or ""] = node

    def build(self, loader: _Loader) -> Node | None:
        root: Node | None = None
        stack = self.stack
        while True:
            event = loader.get_event()
            merge_key = False
            if isinstance(event, ScalarEvent):
                stats: _Stats = (1, 0, 1)
                self.count(event, stats)
                node: Node = self.scalar(event)
                merge_key = event.value == "<<" and event.tag is None and event.implicit[0]
                if event.anchor is not None:  # go-yaml binds an anchor where its node starts
                    self.open_anchors.pop(event.anchor, None)
                    self.anchors[event.anchor] = (node, stats)
            elif isinstance(event, AliasEvent):
                node, stats = self.alias(event)
            elif isinstance(event, CollectionStartEvent):
                self.count(event, (1, 1, 1))
                mapping = isinstance(event, MappingStartEvent)
                if event.tag not in (None, "!", _TAG + ("map" if mapping else "seq")):
                    raise self.fail(event, f"unsupported tag {event.tag!r}")
                stack.append(_Frame(*self.where(event), event.anchor, mapping))
                if event.anchor is not None:
                    self.anchors.pop(event.anchor, None)
                    self.open_anchors[event.anchor] = stack[-1]
                continue
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                frame = stack.pop()
                if frame.mapping:
                    texts = tuple((k, t) for k, t in frame.key_texts.items() if k in frame.entries)
                    node = Mapping(tuple(frame.entries.items()), frame.line, frame.column, texts)
                else:
                    node = Sequence(tuple(frame.values), frame.line, frame.column)
                stats = (frame.size, frame.height, frame.visits)
                if frame.anchor is not None and self.open_anchors.get(frame.anchor) is frame:
                    del self.open_anchors[frame.anchor]  # (not if redefined inside: that one stays)
                    self.anchors[frame.anchor] = (node, stats)
            elif isinstance(event, (DocumentEndEvent, StreamEndEvent)):
                return root  # only the first document counts, like go-yaml's Unmarshal
            else:
                continue  # stream and document start
            if stack:
                self.attach(event, node, stats, merge_key)
            else:
                root = node


def _position(data: bytes, offset: int) -> str:
    line, line_start = data.count(b"\n", 0, offset) + 1, data.rfind(b"\n", 0, offset) + 1
    return f"line {line}, column {offset - line_start + 1}"


def _yaml_error(data: bytes, exc: yaml.YAMLError) -> SpecError:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark, context = exc.problem_mark, f" ({exc.context})" if exc.context else ""
        return SpecError(
            "", f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}{context}"
        )
    if isinstance(exc, yaml.reader.ReaderError):  # libyaml reports a byte offset
        return SpecError("", f"invalid YAML at {_position(data, exc.position)}: {exc.reason}")
    return SpecError("", f"invalid YAML: {exc}")


def decode_yaml(data: bytes, limits: SpecLimits | None = None) -> Node | None:
    """Decode the first YAML document of ``data``; ``None`` when there is no document at all.

    Raises :class:`SpecLimitError` over a limit and :class:`SpecError` for anything else wrong
    (invalid UTF-8, YAML syntax, unknown anchors, bad keys, unsupported tags)."""
    limits = limits or SpecLimits()
    if len(data) > limits.max_bytes:
        raise SpecLimitError(
            "", f"spec is {len(data)} bytes, over the limit of {limits.max_bytes} bytes (limits.specBytes)"
        )
    try:
        data.decode("utf-8")  # go-yaml would also take UTF-16 with a BOM; this project wants UTF-8
    except UnicodeDecodeError as exc:
        raise SpecError(
            "", f"spec is not valid UTF-8 at {_position(data, exc.start)}: {exc.reason}"
        ) from None
    loader = _Loader(data)
    try:
        return _Builder(limits).build(loader)
    except yaml.YAMLError as exc:
        raise _yaml_error(data, exc) from None
    finally:
        loader.dispose()
