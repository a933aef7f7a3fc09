"""The reference evaluator: one node at a time, short and written to be obviously correct.

It mirrors the control flow of NFD's Go evaluator (``pkg/apis/nfd/nodefeaturerule``) in the
*non-fail-fast* mode used by ``nfd compat validate-node``: everything is evaluated and an error
anywhere makes the rule an error. Every branch below cites the section of
``docs/nfd-semantics.md`` it implements. The vectorized matcher is tested against this module.

Two deliberate choices where NFD has no per-node answer (it aborts the whole validation; §7.2):
a rule that errors feeds no ``vars`` into ``rule.matched`` (the feature is still created, as after
any rule), and a set with an erroring rule is ERROR whatever its other rules did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from extender.errors import EvaluationError
from extender.features.nodefeature import NodeFeatures
from extender.match.result import SetResult, Status
from extender.spec.model import (
    KNOWN_OPS,
    NO_VALUE_OPS,
    RULE_BACKREF_FEATURE,
    TYPE_INTEGER,
    TYPE_VERSION,
    FeatureTerm,
    MatchExpression,
    Rule,
    Spec,
)
from extender.values import compile_regexp, parse_go_int, parse_version, regexp_search

T = TypeVar("T", int, tuple[int, int, int])


def _values(expr: MatchExpression) -> str:
    return "[" + " ".join(expr.value) + "]"


def eval_expression(expr: MatchExpression, present: bool, value: str | None) -> bool:
    """One expression on one element (semantics §2). ``value`` is None for flags (no value)."""
    op, vals = expr.op, expr.value
    if op not in KNOWN_OPS:  # §2.1: always an error
        raise EvaluationError(f"invalid Op {op!r}")
    if op in NO_VALUE_OPS:  # §2.2
        if vals:
            raise EvaluationError(
                f"invalid expression, 'value' field must be empty for Op {op!r} (have {_values(expr)})"
            )
        return True if op == "" else (present if op == "Exists" else not present)
    if not present or value is None:  # §2.3: nothing else is checked
        return False
    if op in ("In", "NotIn", "InRegexp") and not vals:
        raise EvaluationError(f"invalid expression, 'value' field must be non-empty for Op {op!r}")
    if op == "In":
        return value in vals
    if op == "NotIn":
        return value not in vals
    if op == "InRegexp":
        compiled = [compile_regexp(v) for v in vals]  # all compiled before any is tried
        if any(c is None for c in compiled):
            raise EvaluationError(
                f"invalid expression, 'value' field must only contain valid regexps for Op {op!r}"
            )
        return any(regexp_search(c, value) for c in compiled if c is not None)
    if op in ("IsTrue", "IsFalse"):
        if vals:
            raise EvaluationError(
                f"invalid expression, 'value' field must be empty for Op {op!r} (have {_values(expr)})"
            )
        return value == ("true" if op == "IsTrue" else "false")
    # Ordering ops: Gt Ge Lt Le (one value), GtLt GeLe (two values).
    want = 1 if op in ("Gt", "Ge", "Lt", "Le") else 2
    if len(vals) != want:
        raise EvaluationError(
            f"invalid expression, 'value' field must contain exactly {want} element(s) for Op {op!r}"
        )
    if expr.value_type == TYPE_VERSION:
        x = parse_version(value)
        if x is None:
            raise EvaluationError(f"not a version {value!r}")
        bounds = []
        for v in vals:
            b = parse_version(v)
            if b is None:
                raise EvaluationError(f"not a version {v!r} in {expr.render()}")
            bounds.append(b)
        # No lower<upper check for versions: an inverted range is simply false.
    elif expr.value_type == TYPE_INTEGER:
        xi = parse_go_int(value)
        if xi is None:
            raise EvaluationError(f"not a number {value!r}")
        ibounds = []
        for v in vals:
            b2 = parse_go_int(v)
            if b2 is None:
                raise EvaluationError(f"not a number {v!r} in {expr.render()}")
            ibounds.append(b2)
        if want == 2 and ibounds[0] >= ibounds[1]:
            raise EvaluationError(f"invalid expression, value[0] must be less than Value[1] for Op {op!r}")
        return _compare(op, xi, ibounds)
    else:
        raise EvaluationError(
            f"invalid expression, 'type' field only accepts \"version\" value for Op {op!r}"
        )
    return _compare(op, x, bounds)


def _compare(op: str, x: T, b: list[T]) -> bool:
    lo = b[0]
    if op == "Gt":
        return x > lo
    if op == "Ge":
        return x >= lo
    if op == "Lt":
        return x < lo
    if op == "Le":
        return x <= lo
    if op == "GtLt":
        return lo < x < b[1]
    return lo <= x <= b[1]  # GeLe


Flags = frozenset[str] | None
Attrs = Mapping[str, str] | None
Instances = tuple[Mapping[str, str], ...] | None


def match_multi(
    exprs: tuple[tuple[str, MatchExpression], ...], flags: Flags, attrs: Attrs, instances: Instances
) -> bool:
    """``matchExpressions`` on one feature (§3.2): flag/attribute union, OR one whole instance."""
    fa_match = flags is not None or attrs is not None
    for key, e in exprs:
        match_k = match_v = False
        if flags is not None:
            match_k = eval_expression(e, key in flags, None)
            if not match_k and e.op == "DoesNotExist":
                fa_match = False
                continue
        if attrs is not None:
            match_v = eval_expression(e, key in attrs, attrs.get(key))
            if not match_v and e.op == "DoesNotExist":
                fa_match = False
                continue
        if not match_k and not match_v:
            fa_match = False
    inst_match = False
    for inst in instances or ():
        # Every expression is evaluated on every instance: errors surface even after a failure.
        results = [eval_expression(e, key in inst, inst.get(key)) for key, e in exprs]
        inst_match = inst_match or all(results)
    return fa_match or inst_match


def match_names(expr: MatchExpression, flags: Flags, attrs: Attrs, instances: Instances) -> bool:
    """``matchName`` (§3.3): the expression on every name, each present with itself as value."""
    names: list[str] = list(flags or ()) + list(attrs or ())
    for inst in instances or ():
        names.extend(inst)
    results = [eval_expression(expr, True, n) for n in names]  # all evaluated: errors surface
    return any(results)


def match_terms(terms: tuple[FeatureTerm, ...], nf: NodeFeatures, backref: Mapping[str, str] | None) -> bool:
    """An AND-list of terms (§3, §4.1), including NFD's stale per-term flag: a term without
    ``matchExpressions`` inherits the previous evaluated term's result, which gates its
    ``matchName`` (§4.2, "The stale per-term flag")."""
    is_match = True
    term_match = True
    for term in terms:
        key = term.feature_key
        flags = nf.flags.get(key)
        attrs = backref if key == RULE_BACKREF_FEATURE and backref is not None else nf.attributes.get(key)
        instances = nf.instances.get(key)
        if flags is None and attrs is None and instances is None:
            is_match = False  # §3.1: missing feature: false, nothing evaluated
            continue
        if term.match_expressions is not None:
            term_match = match_multi(term.match_expressions, flags, attrs, instances)
        if term_match and term.match_name is not None:
            term_match = match_names(term.match_name, flags, attrs, instances)
        if not term_match:
            is_match = False
    return is_match


def eval_rule(rule: Rule, nf: NodeFeatures, backref: Mapping[str, str] | None) -> tuple[bool, bool]:
    """ExecuteGroupRule without fail-fast (§4.1, §4.3). Returns (matched, returns_vars)."""
    any_match = False
    for element in rule.match_any:
        if match_terms(element, nf, backref):
            any_match = True
    features_match = True
    if rule.match_features:
        features_match = match_terms(rule.match_features, nf, backref)
        if not features_match:
            return False, False
    # Quirk: vars are returned when matchFeatures matched (or is empty), even if matchAny failed.
    return (not rule.match_any or any_match) and features_match, True


def evaluate_node(spec: Spec, nf: NodeFeatures, set_indexes: tuple[int, ...]) -> tuple[SetResult, ...]:
    """Every selected set on one node, in order, threading ``rule.matched`` through (§4.3, §6.2)."""
    backref: dict[str, str] | None = None
    base = nf.attributes.get(RULE_BACKREF_FEATURE)
    out = []
    for idx in set_indexes:
        status, error = Status.MATCHED, ""
        for rule in spec.compatibilities[idx].rules:
            try:
                matched, returns_vars = eval_rule(rule, nf, backref)
            except EvaluationError as exc:
                matched, returns_vars = False, False
                if not error:
                    error = f"rule {rule.name!r}: {exc}"
            if backref is None:
                backref = dict(base or {})  # rule.matched exists after the first rule
            if returns_vars:
                backref.update(rule.vars)
            if not matched and status == Status.MATCHED:
                status = Status.NOT_MATCHED
        out.append(SetResult(idx, Status.ERROR if error else status, error))
    return tuple(out)
