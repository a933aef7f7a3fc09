"""Fuzzing the spec parser with spec-shaped documents, mostly valid with hostile values, otherwise with
a wrong value or a wrong type at any field: the parser raises SpecError and nothing else, and
whatever parses is evaluated by both matchers, which agree, and explained without error, on a small
table. Each document's outcome is a Hypothesis event (``--hypothesis-show-statistics``); a seeded
run checks that most documents get through to the matchers.

Bounded in ``make test``; ``COMPAT_FUZZ=long`` runs 100x the examples (see tests/fuzz.py)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, Phase, event, given, seed, settings
from hypothesis import strategies as st

from extender.errors import SpecError
from extender.features.nodefeature import NodeFeatures
from extender.match.evaluate import evaluate
from extender.match.explain import explain
from extender.match.table import FeatureTable
from extender.spec.model import NO_VALUE_OPS
from extender.spec.parse import SpecLimits, parse_spec
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
    "",
]
BAD_OPS = ["in", "exists"]  # unknown (op names are case-sensitive)
FEATURES = ["cpu.cpuid", "kernel.version", "pci.device", "kernel.loadedmodule", "rule.matched", ""]
BAD_VERSIONS = ["v1", "", "v1alpha2"]
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
    st.sampled_from([*HOSTILE, *OPS, *BAD_OPS, *FEATURES]),
)
junk = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


#: Text the parser takes as any string field (no control characters, which YAML refuses raw).
texts = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff"), max_size=20
)


@st.composite
def valid_docs(draw: st.DrawFn, wrong_values: bool = False) -> Any:
    """A spec document with the right shape and hostile values the parser accepts (regexes RE2
    refuses or that backtrack, numbers that overflow, odd versions, arbitrary names). With
    ``wrong_values`` its values may also be ones the parser refuses: unknown ops, values for ops
    that take none, regexes over the length limit, unsupported versions."""

    def often() -> bool:
        return bool(draw(st.integers(0, 3)))

    def expression() -> dict[str, Any]:
        op = draw(st.sampled_from([*OPS, *BAD_OPS] if wrong_values else OPS))
        count = 0 if op in NO_VALUE_OPS and not wrong_values else draw(st.integers(0, 3))
        pool = [*HOSTILE, "0", "5", "10de", "AVX2"]
        if op == "InRegexp" and not wrong_values:
            pool = [v for v in pool if len(v) <= SpecLimits().max_regex_len]
        values = [draw(st.one_of(st.sampled_from(pool), texts)) for _ in range(count)]
        e: dict[str, Any] = {"op": op, "value": values}
        if draw(st.booleans()):
            e["type"] = draw(st.sampled_from(["version", "", "int"]))
        return e

    def term() -> dict[str, Any]:
        t: dict[str, Any] = {"feature": draw(st.sampled_from(FEATURES))}
        if often():
            keys = draw(
                st.lists(
                    st.sampled_from(["AVX2", "major", "vendor", "x", "full"]) | texts,
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
        r: dict[str, Any] = {"name": draw(st.sampled_from(["r1", "r2", ""]) | texts)}
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
            "weight": draw(st.integers(-5, 100) | st.integers(-(2**63), 2**63 - 1)),
            "tag": draw(st.sampled_from(["", "a", "b"])),
            "description": "d",
        }
        for _ in range(draw(st.integers(1, 3)))
    ]
    version = draw(st.sampled_from(BAD_VERSIONS)) if wrong_values and not often() else "v1alpha1"
    return {"version": version, "compatibilities": sets}


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


#: What spec_docs() draws: mostly documents the parser accepts, so that the matchers get most of the
#: fuzzing; the rest test the parser's refusals.
KINDS = ["hostile values"] * 4 + ["wrong values", "wrong types"]


@st.composite
def spec_docs(draw: st.DrawFn) -> Any:
    """A document of one of the KINDS: valid with hostile values; with wrong values (see
    valid_docs); or valid with one or two of its values (any field, any depth) replaced by junk of
    any type, so that every field gets its turn at being wrong."""
    kind = draw(st.sampled_from(KINDS))
    doc = draw(valid_docs(wrong_values=kind == "wrong values"))
    if kind == "wrong types":
        for _ in range(draw(st.integers(1, 2))):
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


PARSED = "parsed and evaluated"


def _refusal(exc: SpecError) -> str:
    """The class of a refusal: its message without the quoted names, numbers and found types."""
    message = re.sub(r'"[^"]*"', '"…"', exc.message)
    message = re.sub(r"\d+", "N", message)
    return re.sub(r", got .*", "", message)


def _outcome(label: str) -> str:
    event(label)
    return label


def _send(doc: Any, as_yaml: bool) -> str:
    """Encode ``doc``, parse it and evaluate what parses with both matchers (which must agree), and
    explain it; returns (and records as a Hypothesis event) what became of the document."""
    try:
        data = yaml.safe_dump(doc).encode() if as_yaml else orjson.dumps(doc)
    except (TypeError, OverflowError, yaml.YAMLError, orjson.JSONEncodeError):
        return _outcome("not encodable")  # e.g. integers beyond 64 bits for orjson: nothing to send
    try:
        spec = parse_spec(data)
    except SpecError as exc:  # and nothing else
        return _outcome(f"refused by the parser: {_refusal(exc)}")
    vec = evaluate(spec, TABLE, use_cache=False)
    ref = evaluate(spec, TABLE, implementation="reference")
    assert (vec.status == ref.status).all()
    for node in ("a", "b", "c", "unknown"):
        explain(spec, TABLE.node_features(node), node=node).render_text()
    return _outcome(PARSED)


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=spec_docs(), as_yaml=st.booleans())
def test_spec_shaped_junk(doc: Any, as_yaml: bool) -> None:
    _send(doc, as_yaml)


def test_the_generator_reaches_the_matcher() -> None:
    """Not a fuzz test: most of what spec_docs() generates must get through the parser to the
    matchers, or the fuzz test above would mostly exercise the parser's error paths; and part of it
    must be refused for a wrong type, or it would not exercise those. Seeded, so the shares are
    those of a fixed sample: the verdict does not depend on the draw (the fuzz test is not seeded,
    so every run, and COMPAT_FUZZ=long, draws new documents)."""
    outcomes: Counter[str] = Counter()

    @seed(20240611)
    @settings(
        max_examples=300,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(doc=spec_docs(), as_yaml=st.booleans())
    def sample(doc: Any, as_yaml: bool) -> None:
        outcomes[_send(doc, as_yaml)] += 1

    sample()
    total = sum(outcomes.values())
    table = "\n".join(f"{n:5d} {label}" for label, n in outcomes.most_common())
    assert outcomes[PARSED] >= total / 2, f"under half of {total} documents reach the matchers:\n{table}"
    refused = sum(n for label, n in outcomes.items() if label.startswith("refused by the parser"))
    wrong_type = sum(
        n for label, n in outcomes.items() if label.startswith("refused by the parser: expected")
    )
    assert refused >= total / 10, f"too few documents the parser refuses:\n{table}"
    assert wrong_type >= total / 40, f"too few documents refused for a wrong type:\n{table}"
