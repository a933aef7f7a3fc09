"""Fuzzing the spec parser with spec-shaped documents that have a wrong type (or a hostile value) at
any field: the parser raises SpecError and nothing else, and whatever parses is evaluated by both
matchers, which agree, and explained without error, on a small table.

Bounded in ``make test``; ``COMPAT_FUZZ=long`` runs 100x the examples (see tests/fuzz.py)."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.errors import SpecError
from extender.features.nodefeature import NodeFeatures
from extender.match.evaluate import evaluate
from extender.match.explain import explain
from extender.match.table import FeatureTable
from extender.spec.parse import parse_spec
from tests.fuzz import examples

OPS = [
    "In",
    "NotIn",
    "InRegexp",
    "Exists",
    "DoesNotExist",
    "Gt",
    "Lt",
    "GtLt",
    "Ge",
    "Le",
    "GeLe",
    "IsTrue",
    "IsFalse",
    "in",
    "",
]
FEATURES = ["cpu.cpuid", "kernel.version", "pci.device", "kernel.loadedmodule", "rule.matched", ""]
VERSIONS = ["v1alpha1"] * 8 + ["v1", ""]
HOSTILE = [
    "(a+)+$",
    "(?i)" + "a?" * 200 + "a" * 200,
    "[",
    "\\p{Greek}+",
    "1.2.3-rc.1+meta",
    "9223372036854775808",
    "-0x10",
    "v5.15",
    "a" * 5000,
]

leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from([*HOSTILE, *OPS, *FEATURES]),
)
junk = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def valid_docs(draw: st.DrawFn) -> Any:
    """A spec document with the right shape (values may still be odd: hostile regexes, bad versions)."""

    def often() -> bool:
        return bool(draw(st.integers(0, 3)))

    def expression() -> dict[str, Any]:
        values = [
            draw(st.sampled_from([*HOSTILE, "0", "5", "10de", "AVX2"]))
            for _ in range(draw(st.integers(0, 3)))
        ]
        e: dict[str, Any] = {"op": draw(st.sampled_from(OPS)), "value": values}
        if draw(st.booleans()):
            e["type"] = draw(st.sampled_from(["version", "", "int"]))
        return e

    def term() -> dict[str, Any]:
        t: dict[str, Any] = {"feature": draw(st.sampled_from(FEATURES))}
        if often():
            keys = draw(
                st.lists(
                    st.sampled_from(["AVX2", "major", "vendor", "x", "full"]),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            )
            t["matchExpressions"] = {k: expression() for k in keys}
        if not often():
            t["matchName"] = expression()
        return t

    def rule() -> dict[str, Any]:
        r: dict[str, Any] = {"name": draw(st.sampled_from(["r1", "r2", ""]))}
        if often():
            r["matchFeatures"] = [term() for _ in range(draw(st.integers(1, 3)))]
        if not often():
            r["matchAny"] = [
                {"matchFeatures": [term() for _ in range(draw(st.integers(1, 2)))]}
                for _ in range(draw(st.integers(1, 2)))
            ]
        if not often():
            r["vars"] = {"k": "v"}
        return r

    sets = [
        {
            "rules": [rule() for _ in range(draw(st.integers(1, 3)))],
            "weight": draw(st.integers(-5, 100)),
            "tag": draw(st.sampled_from(["", "a", "b"])),
            "description": "d",
        }
        for _ in range(draw(st.integers(1, 3)))
    ]
    return {"version": draw(st.sampled_from(VERSIONS)), "compatibilities": sets}


def _slots(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``doc`` a value could be replaced: the root, each mapping value, each list item."""
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _slots(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _slots(v, (*path, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[head] = _replace(doc[head], rest, value)
    return copy


@st.composite
def spec_docs(draw: st.DrawFn) -> Any:
    """A valid document with zero, one or two of its values (any field, any depth) replaced by junk
    of any type: every field gets its turn at being wrong."""
    doc = draw(valid_docs())
    for _ in range(draw(st.integers(0, 2))):
        doc = _replace(doc, draw(st.sampled_from(_slots(doc))), draw(junk))
    return doc


def _table() -> FeatureTable:
    return FeatureTable.from_features(
        [
            NodeFeatures(
                node="a",
                flags={"cpu.cpuid": frozenset({"AVX2", "x"}), "kernel.loadedmodule": frozenset({"vfio_pci"})},
                attributes={"kernel.version": {"major": "6", "minor": "5", "full": "6.5.0-rc1"}},
                instances={"pci.device": ({"vendor": "10de", "x": "aaa"}, {"vendor": "8086"})},
            ),
            NodeFeatures(node="b", attributes={"kernel.version": {"major": "x", "full": "v5.15"}}),
            NodeFeatures(node="c"),
        ]
    )


TABLE = _table()


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=spec_docs(), as_yaml=st.booleans())
def test_spec_shaped_junk(doc: Any, as_yaml: bool) -> None:
    try:
        data = yaml.safe_dump(doc).encode() if as_yaml else orjson.dumps(doc)
    except (TypeError, OverflowError, yaml.YAMLError, orjson.JSONEncodeError):
        return  # not encodable (e.g. integers beyond 64 bits for orjson): nothing to send
    spec = None
    with contextlib.suppress(SpecError):
        spec = parse_spec(data)
    if spec is None:
        return
    vec = evaluate(spec, TABLE, use_cache=False)
    ref = evaluate(spec, TABLE, implementation="reference")
    assert (vec.status == ref.status).all()
    for node in ("a", "b", "c", "unknown"):
        explain(spec, TABLE.node_features(node), node=node).render_text()


def test_the_generator_reaches_the_matcher() -> None:
    """Not a fuzz test: spec_docs() must be able to produce specs that parse and have expressions,
    or the fuzz test above would only ever exercise the error paths."""

    def parses_with_expressions(doc: Any) -> bool:
        try:
            spec = parse_spec(orjson.dumps(doc))
        except (SpecError, TypeError, OverflowError, orjson.JSONEncodeError):
            return False
        return any(
            t.match_expressions for c in spec.compatibilities for r in c.rules for t in r.match_features
        )

    hits: list[bool] = []

    @settings(max_examples=200, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(spec_docs())
    def sample(doc: Any) -> None:
        hits.append(parses_with_expressions(doc))

    sample()
    assert sum(hits) >= 10, f"only {sum(hits)} of {len(hits)} generated documents parse with expressions"
