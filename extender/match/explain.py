"""Why a spec does or does not match one node: a structured account, per set, rule, term and
expression, ready for JSON (``to_dict``, with each failing set's ``failures`` grouped per block) and
for people (``render_text``: the report of :mod:`extender.match.report`; ``summary``: one line).

The verdicts come from the reference evaluator's own functions (``match_multi``, ``match_names``,
``eval_rule``), so an explanation can never disagree with the matchers; this module only adds what
was found on the node for each expression (the value, a missing key, how many instances matched).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from extender.errors import EvaluationError
from extender.features.nodefeature import NodeFeatures
from extender.match.reference import eval_expression, eval_rule, evaluate_node, match_multi, match_names
from extender.match.report import ERROR, FAILED, MATCHED, SKIPPED, failures, render
from extender.match.result import Status
from extender.spec.model import RULE_BACKREF_FEATURE, FeatureTerm, MatchExpression, Rule, Spec

__all__ = ["ERROR", "FAILED", "MATCHED", "SKIPPED", "Explanation", "explain"]


@dataclass(slots=True)
class ExpressionAccount:
    key: str  # the matchExpressions key; "" for matchName
    matcher: str  # "matchExpressions" | "matchName"
    expression: MatchExpression
    status: str
    found: str
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        e = self.expression
        expr: dict[str, Any] = {"op": e.op}
        if e.value:
            expr["value"] = list(e.value)
        if e.value_type:
            expr["type"] = e.value_type
        d: dict[str, Any] = {"matcher": self.matcher, "key": self.key, "expression": expr}
        d.update(status=self.status, found=self.found)
        if self.error:
            d["error"] = self.error
        return d


@dataclass(slots=True)
class TermAccount:
    feature: str
    status: str
    parts: list[str]  # which of flags / attributes / instances the node has for this feature
    note: str = ""
    error: str = ""
    expressions: list[ExpressionAccount] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"feature": self.feature, "status": self.status, "parts": self.parts}
        if self.note:
            d["note"] = self.note
        if self.error:
            d["error"] = self.error
        d["expressions"] = [e.to_dict() for e in self.expressions]
        return d


@dataclass(slots=True)
class RuleAccount:
    name: str
    status: str
    error: str
    match_features: list[TermAccount]
    match_any: list[list[TermAccount]]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "status": self.status}
        if self.error:
            d["error"] = self.error
        d["matchFeatures"] = [t.to_dict() for t in self.match_features]
        if self.match_any:
            d["matchAny"] = [[t.to_dict() for t in el] for el in self.match_any]
        return d


@dataclass(slots=True)
class SetAccount:
    index: int
    tag: str
    weight: int
    description: str
    status: str
    error: str
    rules: list[RuleAccount]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"index": self.index, "status": self.status, "weight": self.weight}
        if self.tag:
            d["tag"] = self.tag
        if self.description:
            d["description"] = self.description
        if self.error:
            d["error"] = self.error
        d["rules"] = [r.to_dict() for r in self.rules]
        d["failures"] = failures(d)
        return d


@dataclass(slots=True)
class Explanation:
    node: str
    spec_digest: str
    known: bool
    sets: list[SetAccount]

    @property
    def compatible(self) -> bool:
        return any(s.status == MATCHED for s in self.sets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "spec": self.spec_digest,
            "known": self.known,
            "compatible": self.compatible,
            "sets": [s.to_dict() for s in self.sets],
        }

    def summary(self) -> str:
        """One line: the first failing expression of the first set, with what was found."""
        if not self.sets:
            return "no compatibility set selected"
        for s in self.sets:
            if s.status == MATCHED:
                return f"set #{s.index} matched"
        s = self.sets[0]
        label = f"set #{s.index}" + (f" (tag {s.tag})" if s.tag else "")
        more = f"; {len(self.sets) - 1} other set(s) failed too" if len(self.sets) > 1 else ""
        return f"{label}: {_first_failure(s)}{more}"

    def render_text(self) -> str:
        """The report people read (:func:`extender.match.report.render`), as the server's
        ``format=text`` and the CLI print it."""
        return render(self.to_dict())


def _first_failure(s: SetAccount) -> str:
    if s.error:
        return f"evaluation error in {s.error}"
    for r in s.rules:
        if r.status == MATCHED:
            continue
        for t in [*r.match_features, *[t for el in r.match_any for t in el]]:
            if t.status in (FAILED, ERROR):
                for e in t.expressions:
                    if e.status in (FAILED, ERROR):
                        where = f"{t.feature}.{e.key}" if e.key else f"{t.feature} (name)"
                        return f"rule {r.name!r}: {where} {e.expression.render()}: {e.found}"
                return f"rule {r.name!r}: {t.feature}: {t.note or t.status}"
        return f"rule {r.name!r} did not match"
    return "did not match"


def _quote(v: str) -> str:
    return repr(v) if len(v) <= 64 else repr(v[:61] + "...")


def _more(n: int) -> str:
    """The end of a value list cut after its first values: how many were left out."""
    return f", ... {n} more" if n > 0 else ""


def _try(expr: MatchExpression, present: bool, value: str | None) -> tuple[str, str]:
    try:
        return (MATCHED if eval_expression(expr, present, value) else FAILED), ""
    except EvaluationError as exc:
        return ERROR, str(exc)


def _explain_expression(
    key: str,
    expr: MatchExpression,
    flags: frozenset[str] | None,
    attrs: Mapping[str, str] | None,
    insts: tuple[Mapping[str, str], ...] | None,
) -> ExpressionAccount:
    found: list[str] = []
    statuses: list[tuple[str, str]] = []
    if flags is not None:
        statuses.append(_try(expr, key in flags, None))
        found.append("flag present" if key in flags else "flag absent")
    if attrs is not None:
        statuses.append(_try(expr, key in attrs, attrs.get(key)))
        found.append(f"value {_quote(attrs[key])}" if key in attrs else "key absent")
    if insts:
        results = [_try(expr, key in i, i.get(key)) for i in insts]
        statuses.extend(results)
        seen = sorted({i[key] for i in insts if key in i})
        n_ok = sum(r[0] == MATCHED for r in results)
        vals = ", ".join(_quote(v) for v in seen[:8]) + _more(len(seen) - 8)
        found.append(
            f"{n_ok} of {len(insts)} instances match" + (f" (values: {vals})" if seen else " (key on none)")
        )
    errors = [e for s, e in statuses if s == ERROR]
    if errors:
        status, error = ERROR, errors[0]
    elif expr.op == "DoesNotExist" and (flags is not None or attrs is not None) and not insts:
        status, error = (MATCHED if all(s == MATCHED for s, _ in statuses) else FAILED), ""
    else:
        status, error = (MATCHED if any(s == MATCHED for s, _ in statuses) else FAILED), ""
    return ExpressionAccount(key, "matchExpressions", expr, status, "; ".join(found) or "nothing", error)


def _explain_name(
    expr: MatchExpression,
    flags: frozenset[str] | None,
    attrs: Mapping[str, str] | None,
    insts: tuple[Mapping[str, str], ...] | None,
) -> ExpressionAccount:
    names = sorted(set(flags or ()) | set(attrs or ()) | {k for i in insts or () for k in i})
    hits, error = [], ""
    for n in names:
        st, err = _try(expr, True, n)
        if st == MATCHED:
            hits.append(n)
        elif st == ERROR and not error:
            error = err
    status = ERROR if error else (MATCHED if hits else FAILED)
    shown = ", ".join(_quote(h) for h in hits[:8]) + _more(len(hits) - 8)
    found = f"{len(hits)} of {len(names)} names match" + (f": {shown}" if hits else "")
    return ExpressionAccount("", "matchName", expr, status, found, error)


def _explain_terms(
    terms: tuple[FeatureTerm, ...], nf: NodeFeatures, backref: Mapping[str, str] | None
) -> list[TermAccount]:
    out: list[TermAccount] = []
    stale = True  # NFD's per-term flag, as in reference.match_terms
    for term in terms:
        key = term.feature_key
        flags = nf.flags.get(key)
        attrs = backref if key == RULE_BACKREF_FEATURE and backref is not None else nf.attributes.get(key)
        insts = nf.instances.get(key)
        parts = [
            p for p, v in (("flags", flags), ("attributes", attrs), ("instances", insts)) if v is not None
        ]
        acct = TermAccount(term.feature, FAILED, parts)
        out.append(acct)
        exprs = term.match_expressions or ()
        if not parts:
            acct.note = "feature not found on the node"
            acct.expressions = [
                ExpressionAccount(k, "matchExpressions", e, SKIPPED, "feature absent") for k, e in exprs
            ]
            continue
        acct.expressions = [_explain_expression(k, e, flags, attrs, insts) for k, e in exprs]
        try:
            if term.match_expressions is not None:
                stale = match_multi(term.match_expressions, flags, attrs, insts)
                if not stale and insts and all(e.status == MATCHED for e in acct.expressions):
                    acct.note = "no single instance satisfies every expression"
            if term.match_name is not None:
                if stale:
                    acct.expressions.append(_explain_name(term.match_name, flags, attrs, insts))
                    stale = match_names(term.match_name, flags, attrs, insts)
                else:
                    acct.expressions.append(
                        ExpressionAccount(
                            "", "matchName", term.match_name, SKIPPED, "earlier expressions failed"
                        )
                    )
            acct.status = MATCHED if stale else FAILED
        except EvaluationError as exc:
            acct.status, acct.error = ERROR, str(exc)
    return out


def _rule_account(
    rule: Rule, nf: NodeFeatures, backref: Mapping[str, str] | None
) -> tuple[RuleAccount, bool]:
    returns_vars = False
    try:
        matched, returns_vars = eval_rule(rule, nf, backref)
        status, error = (MATCHED if matched else FAILED), ""
    except EvaluationError as exc:
        status, error = ERROR, str(exc)
    account = RuleAccount(
        name=rule.name,
        status=status,
        error=error,
        match_features=_explain_terms(rule.match_features, nf, backref),
        match_any=[_explain_terms(el, nf, backref) for el in rule.match_any],
    )
    return account, returns_vars


def explain(
    spec: Spec, nf: NodeFeatures | None, node: str = "", tags: frozenset[str] | None = None
) -> Explanation:
    """The full account for one node (``nf`` None: a node without NodeFeature, empty features)."""
    known = nf is not None
    features = nf if nf is not None else NodeFeatures(node=node)
    set_indexes = spec.selected_sets(tags)
    verdicts = evaluate_node(spec, features, set_indexes)
    sets: list[SetAccount] = []
    backref: dict[str, str] | None = None
    base = features.attributes.get(RULE_BACKREF_FEATURE)
    for idx, verdict in zip(set_indexes, verdicts, strict=True):
        cset = spec.compatibilities[idx]
        rules = []
        for rule in cset.rules:
            acct, returns_vars = _rule_account(rule, features, backref)
            rules.append(acct)
            if backref is None:
                backref = dict(base or {})
            if returns_vars:
                backref.update(rule.vars)
        status = {Status.MATCHED: MATCHED, Status.NOT_MATCHED: FAILED, Status.ERROR: ERROR}[verdict.status]
        sets.append(SetAccount(idx, cset.tag, cset.weight, cset.description, status, verdict.error, rules))
    return Explanation(node=features.node or node, spec_digest=spec.digest, known=known, sets=sets)
