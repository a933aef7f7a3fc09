"""Hypothesis strategies for random specs and node features.

Small alphabets on purpose: feature names, keys and values must collide often so that every branch
(present/absent, flag/attribute/instance, multi-type features, rule.matched back-references,
unparsable integers and versions, broken regexps) is reached in a few thousand examples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

from extender.features.nodefeature import NodeFeatures
from extender.match.table import FeatureTable
from extender.spec.model import CompatibilitySet, FeatureTerm, MatchExpression, Rule, Spec

FEATURES = ["f.x", "f.y", "f.z", "rule.matched", "F.X", "nodot"]
NODE_FEATURES = ["f.x", "f.y", "f.z", "rule.matched", "F.X", "nodot"]
KEYS = ["a", "b", "vendor", "true", "10", "-1"]
VALUES = [
    "",
    "0",
    "1",
    "007",
    "-3",
    "+5",
    "10",
    "abc",
    "true",
    "false",
    "5.15.0",
    "5.15.0-91-generic",
    "v1.2",
    "1.2.3.4",
    "5.14.0-427.el9_4",
    "10de",
    "0300",
    "9223372036854775808",
    "1.0.0-01",
    " 1",
]
PATTERNS = ["^1", "a|b", "(", "(a+)+$", "\\d+", "^$", "e$", "(?i)ABC", "(?=x)"]
OPS = [
    "",
    "In",
    "NotIn",
    "InRegexp",
    "Exists",
    "DoesNotExist",
    "Gt",
    "Ge",
    "Lt",
    "Le",
    "GtLt",
    "GeLe",
    "IsTrue",
    "IsFalse",
]


@st.composite
def expressions(draw: st.DrawFn, allow_invalid: bool = True) -> MatchExpression:
    ops = [*OPS, "Bogus"] if allow_invalid else OPS
    op = draw(st.sampled_from(ops))
    pool = PATTERNS + VALUES if op == "InRegexp" else VALUES
    if op in ("", "Exists", "DoesNotExist", "IsTrue", "IsFalse"):
        # mostly well-formed, sometimes with (invalid) values
        n = draw(st.sampled_from([0, 0, 0, 0, 1])) if allow_invalid else 0
    elif op in ("Gt", "Ge", "Lt", "Le"):
        n = draw(st.sampled_from([1, 1, 1, 0, 2]))
    elif op in ("GtLt", "GeLe"):
        n = draw(st.sampled_from([2, 2, 2, 1, 3]))
    else:
        n = draw(st.sampled_from([1, 1, 2, 3, 0]))
    value = tuple(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))
    vtype = draw(st.sampled_from(["", "", "version", "version", "bogus"]))
    return MatchExpression(op=op, value=value, value_type=vtype)


@st.composite
def terms(draw: st.DrawFn) -> FeatureTerm:
    feature = draw(st.sampled_from(FEATURES))
    exprs = None
    if draw(st.integers(0, 2)) > 0:
        keys = draw(st.lists(st.sampled_from(KEYS), max_size=3, unique=True))
        exprs = tuple((k, draw(expressions())) for k in keys)
    name = draw(expressions()) if draw(st.integers(0, 2)) == 0 else None
    return FeatureTerm(feature=feature, match_expressions=exprs, match_name=name)


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    mf = tuple(draw(st.lists(terms(), max_size=3)))
    ma = tuple(tuple(draw(st.lists(terms(), max_size=2))) for _ in range(draw(st.integers(0, 2))))
    var_keys = draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True))
    vars_ = tuple((k, draw(st.sampled_from(VALUES))) for k in var_keys)
    return Rule(name=draw(st.sampled_from(["r1", "r2"])), match_features=mf, match_any=ma, vars=vars_)


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    sets = tuple(
        CompatibilitySet(
            rules=tuple(draw(st.lists(rules(), max_size=3))),
            weight=draw(st.integers(0, 3)),
            tag=draw(st.sampled_from(["", "a", "b"])),
        )
        for _ in range(draw(st.integers(1, 3)))
    )
    body = repr(sets).encode()
    return Spec(version="v1alpha1", compatibilities=sets, digest="sha256:" + hashlib.sha256(body).hexdigest())


@st.composite
def node_features(draw: st.DrawFn, node: str) -> NodeFeatures:
    flags = {
        f: frozenset(draw(st.lists(st.sampled_from(KEYS), max_size=3)))
        for f in draw(st.lists(st.sampled_from(NODE_FEATURES), max_size=3, unique=True))
    }
    attrs = {
        f: draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=4))
        for f in draw(st.lists(st.sampled_from(NODE_FEATURES), max_size=3, unique=True))
    }
    insts = {
        f: tuple(
            draw(
                st.lists(
                    st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3), max_size=3
                )
            )
        )
        for f in draw(st.lists(st.sampled_from(NODE_FEATURES), max_size=2, unique=True))
    }
    return NodeFeatures(node=node, flags=flags, attributes=attrs, instances=insts)


@st.composite
def clusters(draw: st.DrawFn) -> list[NodeFeatures]:
    n = draw(st.integers(1, 6))
    return [draw(node_features(f"n{i}")) for i in range(n)]


def partly_updated(old: NodeFeatures, drawn: NodeFeatures, data: st.DataObject) -> NodeFeatures:
    """An update as parsing makes them: per feature, the very object the node had (parsing shares
    equal values; instance tuples are new, their rows the same objects), the drawn value, or none;
    or, one time in ten, the node's own features object again (a resync). The table rewrites only
    what is not the same object (``FeatureTable._rewrite``)."""

    def pick(old_part: Mapping[str, Any], new_part: Mapping[str, Any], rows: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in sorted({*old_part, *new_part}):
            choice = data.draw(st.sampled_from(["keep", "new", "drop"]))
            if choice == "keep" and name in old_part:
                out[name] = tuple(old_part[name]) if rows else old_part[name]
            elif choice == "new" and name in new_part:
                out[name] = new_part[name]
        return out

    if data.draw(st.integers(0, 9)) == 0:
        return old
    return NodeFeatures(
        node=old.node,
        flags=pick(old.flags, drawn.flags, False),
        attributes=pick(old.attributes, drawn.attributes, False),
        instances=pick(old.instances, drawn.instances, True),
    )


def update_randomly(table: FeatureTable, data: st.DataObject, steps: st.SearchStrategy[int]) -> None:
    """Apply a drawn number of updates to ``table``, each a node replaced by drawn features, updated
    in part (:func:`partly_updated`), removed (the last one is kept), or added."""
    for step in range(data.draw(steps)):
        names = sorted(table.nodes())
        action = data.draw(st.sampled_from(["partly", "replace", "remove", "add"]))
        if action == "remove" and len(names) > 1:
            table.remove_node(data.draw(st.sampled_from(names)))
        elif action == "replace" and names:
            table.set_node(data.draw(node_features(data.draw(st.sampled_from(names)))))
        elif action == "partly" and names:
            old = table.node_features(data.draw(st.sampled_from(names)))
            assert old is not None
            table.set_node(partly_updated(old, data.draw(node_features(old.node)), data))
        else:
            table.set_node(data.draw(node_features(f"new{step}")))


# Long names and values, long value lists, many instances: for the report's width (tests/test_report.py).
# The small alphabets above make short lines; these make every cell of a report too wide.
LONG_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=120)
LONG_VALUES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._- /:", max_size=160)


@st.composite
def wide_cases(draw: st.DrawFn) -> tuple[Spec, NodeFeatures]:
    """A spec and a node whose feature names, keys and values (a pool of each, so that they meet)
    are long, with long value lists and many instances."""
    features = draw(st.lists(LONG_NAMES, min_size=1, max_size=3, unique=True))
    keys = draw(st.lists(LONG_NAMES, min_size=1, max_size=4, unique=True))
    values = draw(st.lists(LONG_VALUES, min_size=1, max_size=6, unique=True))

    def expression() -> MatchExpression:
        op = draw(st.sampled_from(OPS))
        n = draw(st.integers(0, 30))
        return MatchExpression(
            op=op, value=tuple(draw(st.lists(st.sampled_from(values), min_size=n, max_size=n)))
        )

    def term() -> FeatureTerm:
        chosen = draw(st.lists(st.sampled_from(keys), max_size=3, unique=True))
        name = expression() if draw(st.booleans()) else None
        return FeatureTerm(
            feature=draw(st.sampled_from(features)),
            match_expressions=tuple((k, expression()) for k in chosen),
            match_name=name,
        )

    def rule() -> Rule:
        any_of = tuple(
            tuple(term() for _ in range(draw(st.integers(1, 2)))) for _ in range(draw(st.integers(0, 4)))
        )
        return Rule(
            name=draw(LONG_NAMES),
            match_features=tuple(term() for _ in range(draw(st.integers(0 if any_of else 1, 2)))),
            match_any=any_of,
        )

    sets = tuple(
        CompatibilitySet(
            rules=tuple(rule() for _ in range(draw(st.integers(1, 2)))),
            weight=draw(st.integers(0, 100)),
            tag=draw(st.sampled_from(["", "t"])) + draw(LONG_VALUES),
            description=draw(LONG_VALUES) * draw(st.integers(0, 3)),
        )
        for _ in range(draw(st.integers(1, 2)))
    )
    spec = Spec(
        version="v1alpha1",
        compatibilities=sets,
        digest="sha256:" + hashlib.sha256(repr(sets).encode()).hexdigest(),
    )
    element = st.dictionaries(st.sampled_from(keys), st.sampled_from(values), max_size=4)
    nf = NodeFeatures(
        node=draw(LONG_NAMES),
        flags={f: frozenset(draw(st.lists(st.sampled_from(keys)))) for f in features if draw(st.booleans())},
        attributes={f: draw(element) for f in features if draw(st.booleans())},
        instances={f: tuple(draw(st.lists(element, max_size=12))) for f in features if draw(st.booleans())},
    )
    return spec, nf
