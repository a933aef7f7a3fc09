"""Smoke test of the matcher benchmark harness (benchmarks/): it runs end to end on tiny clusters,
its generator is deterministic and produces valid NodeFeature objects, and its spec is the one the
report describes. It never looks at a time: wall-clock numbers are for humans, not for CI."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.cluster import (
    MODULE_POOL,
    POOLS,
    average_json_size,
    generate_cluster,
    mutate_node,
)
from benchmarks.matcher import BENCH_SPEC, count_expressions, load_bench_spec, main, run_benchmark
from extender import NodeFeatureError, parse_nodefeature, parse_spec
from extender.features.nodefeature import NODE_NAME_LABEL


def test_harness_produces_a_row_per_size() -> None:
    out = io.StringIO()
    report = run_benchmark((20, 60), repeat=2, out=out)
    assert [r.nodes for r in report.sizes] == [20, 60]
    for row in report.sizes:
        assert row.reference.runs == 2
        assert row.vectorized.runs >= 2 and row.cached.runs >= 2 and row.update_eval.runs >= 2
        assert [s.index for s in row.sets] == [0, 1, 2]
        assert all(s.matched + s.not_matched + s.error == row.nodes for s in row.sets)
    text = out.getvalue()
    assert "### 20 nodes" in text and "### 60 nodes" in text
    assert "verified: vectorized == reference" in text


def test_main_writes_markdown_and_json(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "bench.json"
    assert main(["--nodes", "15,40", "--repeat", "2", "--json", str(path)], out=out) == 0
    table_rows = [line for line in out.getvalue().splitlines() if line.startswith(("| 15 |", "| 40 |"))]
    assert len(table_rows) == 4  # main table + details table, one row per size in each
    data: dict[str, Any] = json.loads(path.read_text())
    assert [row["nodes"] for row in data["sizes"]] == [15, 40]
    assert data["spec_expressions"] == 20
    for row in data["sizes"]:
        for key in ("reference", "vectorized", "cached", "update_eval", "set_node"):
            assert row[key]["runs"] == len(row[key]["samples_ns"])
        assert row["vectorized_speedup"] > 0 and row["cached_speedup"] > 0


def test_reference_sampling_path() -> None:
    report = run_benchmark((30,), repeat=1, reference_max_nodes=10, reference_sample=10, out=io.StringIO())
    (row,) = report.sizes
    assert row.reference.sample_nodes == 10
    assert row.reference.scale == pytest.approx(3.0)


def test_generator_is_deterministic() -> None:
    a = generate_cluster(40, seed=7)
    b = generate_cluster(40, seed=7)
    assert a == b
    assert json.dumps(a) == json.dumps(b)  # same key order too
    assert generate_cluster(40, seed=8) != a
    assert generate_cluster(10, seed=7) == a[:10]  # a bigger cluster extends a smaller one


def test_generated_objects_are_valid_nodefeatures() -> None:
    objs = generate_cluster(60, seed=1)
    names = set()
    for obj in objs:
        parsed = parse_nodefeature(obj)
        assert parsed.node == obj["metadata"]["labels"][NODE_NAME_LABEL] == parsed.name
        assert obj["apiVersion"] == "nfd.k8s-sigs.io/v1alpha1" and obj["kind"] == "NodeFeature"
        f = parsed.features
        assert {"cpu.cpuid", "kernel.loadedmodule"} <= set(f.flags)
        assert {"cpu.model", "kernel.version", "system.osrelease", "memory.numa"} <= set(f.attributes)
        assert set(f.flags["kernel.loadedmodule"]) <= set(MODULE_POOL)
        assert len(f.instances["pci.device"]) >= 10
        for inst in f.instances["pci.device"]:
            assert len(inst["class"]) == 4 and len(inst["vendor"]) == 4
        names.add(parsed.node)
        parse_nodefeature(mutate_node(obj))
    assert len(names) == len(objs)
    avg, smallest, largest = average_json_size(objs)
    assert 0 < smallest <= avg <= largest


def test_generator_cluster_shape() -> None:
    objs = generate_cluster(300, seed=0)
    pools = {o["metadata"]["name"].rsplit("-", 1)[0] for o in objs}
    assert pools == {p.name for p in POOLS}
    kernels = {o["spec"]["features"]["attributes"]["kernel.version"]["elements"]["full"] for o in objs}
    assert 5 <= len(kernels) <= 20  # few distinct values, many nodes
    assert any(k.endswith(".x86_64") for k in kernels)  # RHEL kernels are not semver


def test_mutate_node_changes_features_only_of_a_copy() -> None:
    (obj,) = generate_cluster(1, seed=3)
    before = json.dumps(obj)
    changed = mutate_node(obj)
    assert json.dumps(obj) == before
    assert changed != obj
    assert changed["metadata"]["name"] == obj["metadata"]["name"]


def test_bench_spec_parses_with_twenty_expressions() -> None:
    spec = load_bench_spec()
    assert not spec.warnings
    assert count_expressions(spec) == 20
    assert len(spec.compatibilities) == 3

    # Count again on the raw document, independently of the parser.
    raw = yaml.safe_load(BENCH_SPEC.read_bytes())
    total = 0
    for cset in raw["compatibilities"]:
        for rule in cset["rules"]:
            lists = [rule.get("matchFeatures") or []] + [
                a["matchFeatures"] for a in rule.get("matchAny") or []
            ]
            for terms in lists:
                for term in terms:
                    total += len(term.get("matchExpressions") or {}) + ("matchName" in term)
    assert total == 20
    ops = {
        (e.op, e.value_type)
        for c in spec.compatibilities
        for r in c.rules
        for terms in (r.match_features, *r.match_any)
        for t in terms
        for e in [*(x for _, x in t.match_expressions or ()), *([t.match_name] if t.match_name else [])]
    }
    assert {
        ("In", ""),
        ("InRegexp", ""),
        ("Gt", ""),
        ("Ge", "version"),
        ("Exists", ""),
        ("DoesNotExist", ""),
    } <= ops


def test_every_set_matches_a_partial_share() -> None:
    report = run_benchmark((200,), repeat=1, out=io.StringIO())
    for s in report.sizes[0].sets:
        assert 0 < s.matched < 200, s


def test_bad_object_is_rejected_by_parser() -> None:
    # guards the premise of test_generated_objects_are_valid_nodefeatures: the parser does check
    (obj,) = generate_cluster(1)
    del obj["metadata"]["labels"][NODE_NAME_LABEL]
    with pytest.raises(NodeFeatureError):
        parse_nodefeature(obj)
    assert parse_spec(BENCH_SPEC.read_bytes()).digest.startswith("sha256:")
