"""Parse an image compatibility spec into the immutable model, the way NFD's client reads it.

NFD decodes the spec with ``sigs.k8s.io/yaml`` into Go structs (``api/image-compatibility/v1alpha1``
and the GroupRule of ``api/nfd/v1alpha1``) and validates nothing. This module reproduces that decode
on top of :mod:`extender.spec.yamlgo` and then adds the checks NFD leaves to evaluation time:

1. **Decode like Go.** Keys match field names case-insensitively (exact case preferred), unknown
   keys are ignored (with a warning here), and a YAML number or boolean in a string field becomes the
   string Go prints (``0200`` -> ``"128"``, ``6.10`` -> ``"6.1"``, ``yes`` -> ``"true"``). An integer
   field accepts a YAML integer, or a float that ``encoding/json`` prints as an integer (``10.0``,
   ``1e3``); a string (``"10"``), a fraction or an exponent-form float is an error, as is a number
   outside int64. Null leaves a string/int field untouched and clears a list/map. When several keys
   hit one field (``op`` and ``OP``), Go applies them in JSON (byte-sorted) key order, merging into
   maps and structs and reusing list elements; that is reproduced, so the result equals Go's.
2. **Reject** what NFD can never use: a non-mapping document, a missing or unknown ``version``, a
   missing ``compatibilities``, wrong types anywhere, an unknown op, values given to ``""``/``Exists``/
   ``DoesNotExist``, and a null expression inside ``matchExpressions`` (NFD dereferences it and panics).
3. **Warn** (``Spec.warnings``) about what fails only on nodes where a value is actually compared,
   and about what this project does not do (``varsTemplate``). Paths are exact, e.g.
   ``compatibilities[1].rules[0].matchFeatures[2].matchExpressions.vendor``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from difflib import get_close_matches
from typing import TypeVar

from extender.errors import SpecError, SpecLimitError
from extender.spec.model import (
    KNOWN_OPS,
    NO_VALUE_OPS,
    ORDERING_OPS,
    SPEC_VERSION,
    TYPE_INTEGER,
    TYPE_VERSION,
    CompatibilitySet,
    FeatureTerm,
    MatchExpression,
    Rule,
    Spec,
    SpecWarning,
)
from extender.spec.yamlgo import (
    Kind,
    Mapping,
    Node,
    Scalar,
    Sequence,
    SpecLimits,
    contains_nonfinite,
    decode_yaml,
    describe,
    format_float32,
)
from extender.values import INT64_MAX, INT64_MIN, compile_regexp, parse_go_int, parse_version

__all__ = ["SpecCheck", "SpecLimits", "check_spec", "parse_spec"]

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------
# Go-shaped intermediate values (mutable, because Go's decoder merges into existing values).


@dataclass(slots=True)
class _Expr:
    op: str = ""
    value: list[str] | None = None
    type: str = ""


@dataclass(slots=True)
class _Term:
    feature: str = ""
    exprs: dict[str, _Expr | None] | None = None
    name: _Expr | None = None


@dataclass(slots=True)
class _Any:
    terms: list[_Term] | None = None


@dataclass(slots=True)
class _Rule:
    name: str = ""
    vars: dict[str, str] | None = None
    vars_template: str = ""
    terms: list[_Term] | None = None
    any: list[_Any] | None = None


@dataclass(slots=True)
class _Compat:
    rules: list[_Rule] | None = None
    weight: int = 0
    tag: str = ""
    description: str = ""


@dataclass(slots=True)
class _Spec:
    version: str = ""
    compats: list[_Compat] | None = None


_MAX_WARNINGS = 100  # a hostile spec can have 50,000 unknown keys; nobody reads past the first few


@dataclass(slots=True)
class _Ctx:
    limits: SpecLimits = field(default_factory=SpecLimits)
    warnings: list[SpecWarning] = field(default_factory=list)
    dropped: int = 0
    rules: int = 0
    expressions: int = 0

    def count_rule(self, path: str) -> None:
        self.rules += 1
        if self.rules > self.limits.max_rules:
            raise SpecLimitError(
                path, f"more than {self.limits.max_rules} rules in the spec (limits.specRules)"
            )

    def count_expression(self, path: str) -> None:
        self.expressions += 1
        if self.expressions > self.limits.max_expressions:
            raise SpecLimitError(
                path,
                f"more than {self.limits.max_expressions} expressions in the spec (limits.specExpressions)",
            )

    def warn(self, path: str, message: str) -> None:
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(SpecWarning(path, message))
        else:
            self.dropped += 1

    def result(self) -> tuple[SpecWarning, ...]:
        more = [SpecWarning("", f"{self.dropped} more warnings not shown")] if self.dropped else []
        return tuple(self.warnings + more)


# ---------------------------------------------------------------------------------------------------
# Decoding (sigs.k8s.io/yaml's conversion + encoding/json into the typed structs).


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fold(name: str) -> str:
    # Go's case folding (bytes.EqualFold) for ASCII field names: also 'K' (Kelvin) ~ k, 'ſ' ~ s.
    return name.lower().replace("\u017f", "s")


def _fields(m: Mapping, names: tuple[str, ...], path: str, ctx: _Ctx) -> list[tuple[str, Node]]:
    """The (field, value) pairs of a JSON object decoded into a struct, in the order Go applies them:
    ``json.Marshal`` sorts object keys, so a later key (byte order) overwrites an earlier one."""
    folded = {_fold(n): n for n in names}
    hits: list[tuple[str, str, Node]] = []
    for key, node in m.items:
        name = key if key in names else folded.get(_fold(key))
        if name is not None:
            hits.append((key, name, node))
            continue
        kpath = _join(path, key)
        if contains_nonfinite(node):
            raise SpecError(kpath, "NaN/Inf outside a string field: Go cannot convert the spec to JSON")
        guess = get_close_matches(key, names, n=1)
        hint = f' (did you mean "{guess[0]}"?)' if guess else ""
        ctx.warn(kpath, f'unknown field "{key}" is ignored{hint}')
    hits.sort(key=lambda hit: hit[0])
    return [(name, node) for _, name, node in hits]


def _str(node: Node, path: str) -> str | None:
    """A string field; ``None`` for null (Go leaves the field as it was)."""
    if isinstance(node, Scalar):
        v = node.value
        if node.kind is Kind.STR or node.kind is Kind.NULL:
            return node.text if node.kind is Kind.STR else None
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return format_float32(v)
    raise SpecError(path, f"expected a string, got {describe(node)}")


def _json_int(f: float) -> int | None:
    """The integer Go reads from ``json.Marshal(f)`` into an int field, ``None`` if it errors: the
    float must print without fraction or exponent (1e-6 <= |f| < 1e21) and fit int64."""
    if f == 0:
        return 0
    if not math.isfinite(f) or not 1e-6 <= abs(f) < 1e21:
        return None
    exact = Decimal(repr(f))  # Go prints the same shortest digits as Python's repr
    if exact != exact.to_integral_value():
        return None
    n = int(exact)
    return n if INT64_MIN <= n <= INT64_MAX else None


def _int(node: Node, path: str) -> int | None:
    if isinstance(node, Scalar):
        v = node.value
        if node.kind is Kind.NULL:
            return None
        if node.kind is Kind.INT and isinstance(v, int):
            if INT64_MIN <= v <= INT64_MAX:
                return v
            raise SpecError(path, f"integer {node.text} overflows a Go int (64 bits)")
        if node.kind is Kind.FLOAT and isinstance(v, float):
            n = _json_int(v)
            if n is not None:
                return n
            raise SpecError(path, f"expected an integer, got the number {node.text}")
    raise SpecError(path, f"expected an integer, got {describe(node)}")


def _seq(node: Node, path: str) -> tuple[Node, ...] | None:
    if isinstance(node, Sequence):
        return node.items
    if isinstance(node, Scalar) and node.kind is Kind.NULL:
        return None
    raise SpecError(path, f"expected a list, got {describe(node)}")


def _map(node: Node, path: str) -> Mapping | None:
    if isinstance(node, Mapping):
        return node
    if isinstance(node, Scalar) and node.kind is Kind.NULL:
        return None
    raise SpecError(path, f"expected a mapping, got {describe(node)}")


def _str_list(node: Node, path: str, old: list[str] | None) -> list[str] | None:
    items = _seq(node, path)
    if items is None:
        return None
    out: list[str] = []
    for i, item in enumerate(items):
        v = _str(item, f"{path}[{i}]")
        # A null element leaves the element Go decodes into as it was: a reused one or "".
        out.append(v if v is not None else old[i] if old is not None and i < len(old) else "")
    return out


def _struct_list(
    node: Node,
    path: str,
    old: list[T] | None,
    new: Callable[[], T],
    decode: Callable[[T, Mapping, str, _Ctx], None],
    ctx: _Ctx,
) -> list[T] | None:
    items = _seq(node, path)
    if items is None:
        return None
    out: list[T] = []
    for i, item in enumerate(items):
        ipath = f"{path}[{i}]"
        current = old[i] if old is not None and i < len(old) else new()
        m = _map(item, ipath)
        if m is not None:
            decode(current, m, ipath, ctx)
        out.append(current)
    return out


def _dec_expr(e: _Expr, m: Mapping, path: str, ctx: _Ctx) -> None:
    for name, node in _fields(m, ("op", "value", "type"), path, ctx):
        p = _join(path, name)
        if name == "value":
            e.value = _str_list(node, p, e.value)
        elif (s := _str(node, p)) is not None:
            if name == "op":
                e.op = s
            else:
                e.type = s


def _dec_term(t: _Term, m: Mapping, path: str, ctx: _Ctx) -> None:
    for name, node in _fields(m, ("feature", "matchExpressions", "matchName"), path, ctx):
        p = _join(path, name)
        if name == "feature":
            t.feature = s if (s := _str(node, p)) is not None else t.feature
        elif name == "matchName":
            mm = _map(node, p)
            if mm is not None:
                t.name = t.name or _Expr()
                _dec_expr(t.name, mm, p, ctx)
            else:
                t.name = None
        elif (mm := _map(node, p)) is None:
            t.exprs = None
        else:
            exprs = t.exprs if t.exprs is not None else {}
            for key, value in mm.items:  # each map element is decoded into a fresh *MatchExpression
                kpath = _join(p, key)
                em = _map(value, kpath)
                e: _Expr | None = None
                if em is not None:
                    e = _Expr()
                    _dec_expr(e, em, kpath, ctx)
                exprs[key] = e
            t.exprs = exprs


def _dec_any(a: _Any, m: Mapping, path: str, ctx: _Ctx) -> None:
    for _, node in _fields(m, ("matchFeatures",), path, ctx):
        a.terms = _struct_list(node, _join(path, "matchFeatures"), a.terms, _Term, _dec_term, ctx)


def _dec_rule(r: _Rule, m: Mapping, path: str, ctx: _Ctx) -> None:
    names = ("name", "vars", "varsTemplate", "matchFeatures", "matchAny")
    for name, node in _fields(m, names, path, ctx):
        p = _join(path, name)
        if name == "matchFeatures":
            r.terms = _struct_list(node, p, r.terms, _Term, _dec_term, ctx)
        elif name == "matchAny":
            r.any = _struct_list(node, p, r.any, _Any, _dec_any, ctx)
        elif name == "vars":
            vm = _map(node, p)
            if vm is None:
                r.vars = None
                continue
            r.vars = r.vars if r.vars is not None else {}
            for key, value in vm.items:
                r.vars[key] = _str(value, _join(p, key)) or ""
        elif (s := _str(node, p)) is not None:
            if name == "name":
                r.name = s
            else:
                r.vars_template = s


def _dec_compat(c: _Compat, m: Mapping, path: str, ctx: _Ctx) -> None:
    for name, node in _fields(m, ("rules", "weight", "tag", "description"), path, ctx):
        p = _join(path, name)
        if name == "rules":
            c.rules = _struct_list(node, p, c.rules, _Rule, _dec_rule, ctx)
        elif name == "weight":
            c.weight = w if (w := _int(node, p)) is not None else c.weight
        elif (s := _str(node, p)) is not None:
            if name == "tag":
                c.tag = s
            else:
                c.description = s


def _dec_spec(m: Mapping, ctx: _Ctx) -> _Spec:
    spec = _Spec()
    for name, node in _fields(m, ("version", "compatibilities"), "", ctx):
        if name == "version":
            spec.version = s if (s := _str(node, name)) is not None else spec.version
        else:
            spec.compats = _struct_list(node, name, spec.compats, _Compat, _dec_compat, ctx)
    return spec


# ---------------------------------------------------------------------------------------------------
# Validation and the model.

_VALUE_OPS = frozenset({"In", "NotIn", "InRegexp"})
_ONE_VALUE_OPS = frozenset({"Gt", "Ge", "Lt", "Le"})
_ERR = "NFD reports an error on every node where it is compared"


def _expression(e: _Expr, path: str, ctx: _Ctx) -> MatchExpression:
    op, values, vtype = e.op, tuple(e.value or ()), e.type
    ctx.count_expression(path)
    if len(values) > ctx.limits.max_values:
        raise SpecLimitError(
            path, f"{len(values)} values, more than {ctx.limits.max_values} (limits.specValuesPerExpression)"
        )
    if op == "InRegexp":
        for i, v in enumerate(values):
            if len(v) > ctx.limits.max_regex_len:
                raise SpecLimitError(
                    f"{path}.value[{i}]",
                    f"regular expression of {len(v)} characters, more than {ctx.limits.max_regex_len} "
                    "(limits.specRegexChars)",
                )
    if op not in KNOWN_OPS:
        known = [k for k in sorted(KNOWN_OPS) if k and k.lower() == op.lower()]
        hint = f' (op names are case-sensitive: did you mean "{known[0]}"?)' if known else ""
        raise SpecError(path, f'unknown op "{op}"{hint}')
    if op in NO_VALUE_OPS and values:
        raise SpecError(path, f'op "{op}" takes no values but has {len(values)}: NFD fails on every node')
    if vtype and op not in ORDERING_OPS:
        ctx.warn(path, f'type "{vtype}" is ignored by op "{op}" (only ordering ops use it)')
    if op in _VALUE_OPS and not values:
        ctx.warn(path, f'op "{op}" has no values: {_ERR}')
    elif op == "InRegexp":
        for i, v in enumerate(values):
            if compile_regexp(v) is None:
                ctx.warn(path, f"value[{i}] {v!r} is not a valid RE2 regular expression: {_ERR}")
    elif op in ("IsTrue", "IsFalse") and values:
        ctx.warn(path, f'op "{op}" takes no values but has {len(values)}: {_ERR}')
    elif op in ORDERING_OPS:
        want = 1 if op in _ONE_VALUE_OPS else 2
        if len(values) != want:
            ctx.warn(path, f'op "{op}" needs exactly {want} value(s), has {len(values)}: {_ERR}')
        elif vtype not in (TYPE_INTEGER, TYPE_VERSION):
            ctx.warn(path, f'type "{vtype}" is not supported (use "" or "version"): {_ERR}')
        else:
            parse = parse_go_int if vtype == TYPE_INTEGER else parse_version
            what = "an integer" if vtype == TYPE_INTEGER else "a version"
            bad = [i for i, v in enumerate(values) if parse(v) is None]
            for i in bad:
                ctx.warn(path, f"value[{i}] {values[i]!r} is not {what}: {_ERR}")
            if not bad and want == 2 and vtype == TYPE_INTEGER:
                low, high = parse_go_int(values[0]), parse_go_int(values[1])
                if low is not None and high is not None and low >= high:
                    ctx.warn(path, f'op "{op}" needs value[0] < value[1] for integers: {_ERR}')
    return MatchExpression(op, values, vtype)


def _term(t: _Term, path: str, ctx: _Ctx) -> FeatureTerm:
    if not t.feature:
        ctx.warn(path, "feature is empty: this term never matches")
    exprs: tuple[tuple[str, MatchExpression], ...] | None = None
    if t.exprs is not None:
        built: list[tuple[str, MatchExpression]] = []
        for key, e in t.exprs.items():
            epath = f"{path}.matchExpressions.{key}"
            if e is None:
                raise SpecError(epath, "expression is null (NFD would crash evaluating it)")
            built.append((key, _expression(e, epath, ctx)))
        exprs = tuple(built)
    name = _expression(t.name, f"{path}.matchName", ctx) if t.name is not None else None
    return FeatureTerm(t.feature, exprs, name)


def _terms(terms: list[_Term] | None, path: str, ctx: _Ctx) -> tuple[FeatureTerm, ...]:
    return tuple(_term(t, f"{path}[{i}]", ctx) for i, t in enumerate(terms or ()))


def _rule(r: _Rule, path: str, ctx: _Ctx) -> Rule:
    ctx.count_rule(path)
    if r.vars_template:
        ctx.warn(
            f"{path}.varsTemplate",
            "varsTemplate is not executed by this extender: its variables never reach rule.matched",
        )
    any_of = tuple(
        _terms(a.terms, f"{path}.matchAny[{i}].matchFeatures", ctx) for i, a in enumerate(r.any or ())
    )
    terms = _terms(r.terms, f"{path}.matchFeatures", ctx)
    return Rule(r.name, terms, any_of, tuple((r.vars or {}).items()), r.vars_template)


def _compat(c: _Compat, path: str, ctx: _Ctx) -> CompatibilitySet:
    if not c.rules:
        ctx.warn(f"{path}.rules", "no rules: this compatibility set matches every node")
    rules = tuple(_rule(r, f"{path}.rules[{i}]", ctx) for i, r in enumerate(c.rules or ()))
    return CompatibilitySet(rules, c.weight, c.tag, c.description)


def parse_spec(data: bytes, *, limits: SpecLimits | None = None) -> Spec:
    """Parse and validate a spec (YAML or JSON bytes). Raises :class:`SpecError` (or its subclass
    :class:`SpecLimitError`) and nothing else; problems that only NFD's evaluation would hit are
    returned as ``Spec.warnings``. ``Spec.digest`` is ``sha256:`` + hex digest of ``data``."""
    root = decode_yaml(data, limits)
    if root is None or (isinstance(root, Scalar) and root.kind is Kind.NULL):
        raise SpecError("", "spec is empty: expected a mapping with version and compatibilities")
    if not isinstance(root, Mapping):
        raise SpecError("", f"spec must be a mapping, got {describe(root)}")
    ctx = _Ctx(limits or SpecLimits())
    spec = _dec_spec(root, ctx)
    if not spec.version:
        raise SpecError("version", f'required field is missing (expected "{SPEC_VERSION}")')
    if spec.version != SPEC_VERSION:
        raise SpecError("version", f'unsupported version "{spec.version}" (expected "{SPEC_VERSION}")')
    if spec.compats is None:
        raise SpecError("compatibilities", "required field is missing or null (use [] for no sets)")
    if len(spec.compats) > ctx.limits.max_sets:
        raise SpecLimitError(
            "compatibilities",
            f"{len(spec.compats)} compatibility sets, more than {ctx.limits.max_sets} (limits.specSets)",
        )
    sets = tuple(_compat(c, f"compatibilities[{i}]", ctx) for i, c in enumerate(spec.compats))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return Spec(spec.version, sets, digest, ctx.result())


@dataclass(frozen=True, slots=True)
class SpecCheck:
    """Everything :func:`check_spec` found in one document, for a linter that reports all problems.

    ``spec`` is what :func:`parse_spec` returns (``None`` when it raised). ``errors`` holds the error
    it raised, plus the ``version`` error and the first error of every other compatibility set (each
    set is decoded and validated on its own after a failure), in document order. ``warnings`` are the
    parser's warnings (of the whole spec, or of the sets that could be decoded). ``root`` is the
    decoded YAML (``None`` if it did not decode)."""

    spec: Spec | None
    errors: tuple[SpecError, ...]
    warnings: tuple[SpecWarning, ...]
    root: Node | None


def _sets_alone(root: Mapping, limits: SpecLimits) -> tuple[list[SpecError], tuple[SpecWarning, ...]]:
    """Decode and validate every compatibility set on its own, collecting the first error of each."""
    errors: list[SpecError] = []
    ctx = _Ctx(limits)
    try:  # the version alone (parse_spec checks it only once every set has decoded)
        version = _dec_spec(Mapping(tuple(kv for kv in root.items if _fold(kv[0]) == "version"), 0, 0), ctx)
        if not version.version:
            raise SpecError("version", f'required field is missing (expected "{SPEC_VERSION}")')
        if version.version != SPEC_VERSION:
            raise SpecError("version", f'unsupported version "{version.version}" (expected "{SPEC_VERSION}")')
    except SpecError as exc:
        errors.append(exc)
    for key, node in root.items:
        if _fold(key) != _fold("compatibilities") or not isinstance(node, Sequence):
            continue
        for i, item in enumerate(node.items):
            path = f"compatibilities[{i}]"
            try:
                m = _map(item, path)
                c = _Compat()
                if m is not None:
                    _dec_compat(c, m, path, ctx)
                _compat(c, path, ctx)
            except SpecError as exc:
                errors.append(exc)
    return errors, ctx.result()


def _set_index(error: SpecError) -> int:
    head, _, rest = error.path.partition("[")
    index = rest.partition("]")[0]
    return int(index) if head == "compatibilities" and index.isdigit() else -1


def check_spec(data: bytes, *, limits: SpecLimits | None = None) -> SpecCheck:
    """:func:`parse_spec`, but collecting problems instead of stopping at the first one where the
    decode can go on: after an error, each compatibility set is checked on its own (one error per set
    at most). An error in the YAML itself, or in the document's shape, stops everything."""
    limits = limits or SpecLimits()
    try:
        root = decode_yaml(data, limits)
    except SpecError as exc:
        return SpecCheck(None, (exc,), (), None)
    try:
        spec = parse_spec(data, limits=limits)
    except SpecError as exc:
        if not isinstance(root, Mapping):
            return SpecCheck(None, (exc,), (), root)
        more, warnings = _sets_alone(root, limits)
        errors = [exc, *(e for e in more if str(e) != str(exc))]
        errors.sort(key=_set_index)  # document order; errors outside the sets (version) first
        return SpecCheck(None, tuple(errors), warnings, root)
    return SpecCheck(spec, (), spec.warnings, root)
