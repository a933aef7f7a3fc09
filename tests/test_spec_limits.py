"""The limits on what a spec may describe (sets, rules, expressions, values, regex length) and their
config keys: over a limit, a SpecLimitError naming the key; at the limit, a spec that parses and
evaluates (vectorized and reference agree)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extender.config import Limits, load_config
from extender.errors import SpecLimitError
from extender.features.nodefeature import NodeFeatures
from extender.match.evaluate import evaluate
from extender.match.table import FeatureTable
from extender.spec.parse import SpecLimits, parse_spec


def _spec(sets: int = 1, rules: int = 1, exprs: int = 1, values: int = 1, regex: str = "") -> bytes:
    def expressions(r: int) -> dict[str, object]:
        out: dict[str, object] = {
            f"k{r}-{e}": {"op": "In", "value": [f"v{i}" for i in range(values)]} for e in range(exprs)
        }
        if regex:
            out["re"] = {"op": "InRegexp", "value": [regex]}
        return out

    doc = {
        "version": "v1alpha1",
        "compatibilities": [
            {
                "rules": [
                    {
                        "name": f"r{r}",
                        "matchFeatures": [{"feature": "f.a", "matchExpressions": expressions(r)}],
                    }
                    for r in range(rules)
                ]
            }
            for _ in range(sets)
        ],
    }
    return json.dumps(doc).encode()


SMALL = SpecLimits(max_sets=3, max_rules=4, max_expressions=10, max_values=5, max_regex_len=20)


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        (_spec(sets=4), "limits.specSets"),
        (_spec(sets=2, rules=3), "limits.specRules"),
        (_spec(rules=2, exprs=6), "limits.specExpressions"),
        (_spec(values=6), "limits.specValuesPerExpression"),
        (_spec(regex="a" * 21), "limits.specRegexChars"),
    ],
)
def test_over_a_limit_names_it(doc: bytes, key: str) -> None:
    with pytest.raises(SpecLimitError, match=key.replace(".", r"\.")):
        parse_spec(doc, limits=SMALL)


def test_at_the_limits_parses() -> None:
    for doc in (
        _spec(sets=3),
        _spec(sets=2, rules=2),
        _spec(rules=2, exprs=5),
        _spec(values=5),
        _spec(regex="a" * 20, exprs=1),
    ):
        parse_spec(doc, limits=SMALL)


def test_yaml_limits_name_their_keys() -> None:
    with pytest.raises(SpecLimitError, match=r"limits\.specBytes"):
        parse_spec(b"#" * 2000, limits=SpecLimits(max_bytes=1024))
    aliases = b"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: [*a, *a, *a, *a, *a, *a]\n"  # 60+ nodes via aliases
    with pytest.raises(SpecLimitError, match=r"limits\.specYamlAliasNodes"):
        parse_spec(aliases, limits=SpecLimits(max_alias_expansion=50))
    with pytest.raises(SpecLimitError, match=r"limits\.specYamlDepth"):
        parse_spec(b"[" * 100 + b"]" * 100)


def test_config_section_maps_onto_the_parser(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("limits: {specSets: 2, specRegexChars: 64}\n")
    limits = load_config(path).limits.spec_limits()
    assert limits.max_sets == 2 and limits.max_regex_len == 64
    assert limits.max_rules == Limits().specRules
    path.write_text("limits: {specSets: 0}\n")
    with pytest.raises(Exception, match=r"limits\.specSets"):
        load_config(path)


def test_a_spec_at_the_expression_limit_evaluates() -> None:
    # 512 rules x 8 expressions with 3 values each: ~40,000 YAML nodes, near what the default
    # limits let through; over 300 nodes it must finish and both implementations must agree.
    doc = _spec(rules=512, exprs=8, values=3)
    spec = parse_spec(doc)
    nodes = [
        NodeFeatures(
            node=f"n{i}",
            attributes={"f.a": {f"k{r}-{e}": f"v{(i + r) % 4}" for r in range(0, 512, 7) for e in range(8)}},
        )
        for i in range(300)
    ]
    table = FeatureTable.from_features(nodes)
    vec = evaluate(spec, table, use_cache=False)
    ref = evaluate(spec, table, [n.node for n in nodes[:20]], implementation="reference")
    assert (vec.status[:20] == ref.status).all()
    with pytest.raises(SpecLimitError, match=r"limits\.specExpressions"):
        parse_spec(doc, limits=SpecLimits(max_expressions=4095))
    with pytest.raises(SpecLimitError, match=r"limits\.specYamlNodes"):
        parse_spec(_spec(rules=2048, exprs=8, values=3))
