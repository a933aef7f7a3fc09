"""The benchmarks' generators: specs of 1 to 50 expressions (benchmarks/specgen.py), the NodeFeature
cluster (benchmarks/cluster.py), the Node objects (benchmarks/nodes.py) and the hand-written
benchmark spec. Every generated spec must parse cleanly, have exactly the expressions asked for, and
be evaluated identically by the reference and the vectorized matcher on a generated cluster: the
benchmarks time both, and a disagreement would make the numbers meaningless. Generated objects must
be valid, deterministic and shaped like a real cluster's."""

from __future__ import annotations

import io
import json

import numpy as np
import orjson
import pytest
import yaml

from benchmarks.cluster import (
    MODULE_POOL,
    POOLS,
    average_json_size,
    cluster_shape,
    generate_cluster,
    iter_cluster,
    mutate_node,
)
from benchmarks.matcher import BENCH_SPEC, count_expressions, load_bench_spec, run_benchmark
from benchmarks.nodes import generate_node_object, generate_node_objects
from benchmarks.specgen import (
    ALL_KINDS_FROM,
    MAX_EXPRESSIONS,
    SIZES,
    generate_spec,
    spec_bytes,
    spec_document,
)
from extender import Status, evaluate, parse_nodefeature, parse_spec, table_from_nodefeatures
from extender.errors import NodeFeatureError
from extender.features.nodefeature import NODE_NAME_LABEL
from extender.http.wire import decode_args
from extender.match.table import FeatureTable
from extender.spec.model import FeatureTerm, Spec

SPEC_SIZES = (1, 2, 3, 5, 8, 13, 20, 31, 50)


@pytest.fixture(scope="module")
def table() -> FeatureTable:
    return table_from_nodefeatures(generate_cluster(160, seed=4))


def _terms(spec: Spec) -> list[FeatureTerm]:
    return [
        t
        for c in spec.compatibilities
        for r in c.rules
        for terms in (r.match_features, *r.match_any)
        for t in terms
    ]


def _kinds(spec: Spec) -> set[str]:
    kinds: set[str] = set()
    for c in spec.compatibilities:
        for r in c.rules:
            if r.match_any:
                kinds.add("matchAny")
    for t in _terms(spec):
        if t.match_name is not None:
            kinds.add("matchName")
        if t.feature in ("pci.device", "network.device", "storage.block"):
            kinds.add("instance")
        exprs = [e for _, e in t.match_expressions or ()]
        if t.match_name is not None:
            exprs.append(t.match_name)
        kinds.update("regexp" for e in exprs if e.op == "InRegexp")
        kinds.update("version" for e in exprs if e.value_type == "version")
    return kinds


@pytest.mark.parametrize("n", SPEC_SIZES)
def test_generated_specs_parse_with_the_exact_size(n: int) -> None:
    for seed in range(3):
        spec = generate_spec(n, seed)
        assert spec == parse_spec(spec_bytes(n, seed))
        assert not spec.warnings, spec.warnings
        assert count_expressions(spec) == n
        assert 1 <= len(spec.compatibilities) <= 4
        if n >= ALL_KINDS_FROM:
            assert _kinds(spec) == {"matchAny", "matchName", "instance", "regexp", "version"}


@pytest.mark.parametrize("n", SPEC_SIZES)
def test_reference_and_vectorized_agree_on_generated_specs(n: int, table: FeatureTable) -> None:
    for seed in range(3):
        spec = generate_spec(n, seed)
        ref = evaluate(spec, table, implementation="reference")
        vec = evaluate(spec, table, use_cache=False)
        assert ref.nodes == vec.nodes and ref.set_indexes == vec.set_indexes
        assert np.array_equal(ref.known, vec.known)
        assert np.array_equal(ref.status, vec.status), (n, seed)


def test_generated_specs_discriminate(table: FeatureTable) -> None:
    """Sets written for one pool match some nodes and not others (a spec that matches nothing or
    everything would time a degenerate case), and the version comparisons error on RHEL kernels."""
    partial = errors = 0
    for n in SIZES:
        status = evaluate(generate_spec(n), table, use_cache=False).status
        for col in range(status.shape[1]):
            matched = int((status[:, col] == Status.MATCHED).sum())
            partial += 0 < matched < status.shape[0]
        errors += int((status == Status.ERROR).sum())
    assert partial >= len(SIZES)
    assert errors > 0


def test_specgen_is_deterministic_and_bounded() -> None:
    assert spec_bytes(20, 3) == spec_bytes(20, 3)
    assert spec_bytes(20, 3) != spec_bytes(20, 4)
    assert json.loads(spec_bytes(7)) == spec_document(7)
    assert max(SIZES) == MAX_EXPRESSIONS
    for bad in (0, MAX_EXPRESSIONS + 1):
        with pytest.raises(ValueError):
            spec_document(bad)


def test_iter_cluster_streams_the_same_objects() -> None:
    assert list(iter_cluster(25, seed=5)) == generate_cluster(25, seed=5)
    with pytest.raises(ValueError):
        next(iter_cluster(-1))


def test_cluster_shape_is_realistic() -> None:
    """Shaped like a real cluster: a few hardware families, ≈100 cpu flags, ≈150 modules, ≈30 PCI
    functions per node (numbers chosen to look like real NodeFeatures, not random noise)."""
    shape = cluster_shape(generate_cluster(400, seed=0))
    assert shape["nodes"] == 400 and shape["pools"] == 7
    assert 60 <= shape["cpuid_flags_avg"] <= 120
    assert 120 <= shape["loaded_modules_avg"] <= 180
    assert 20 <= shape["pci_devices_avg"] <= 40
    assert shape["distinct_kernels"] >= 5
    assert 8 * 1024 <= shape["json_bytes_avg"] <= 32 * 1024
    assert cluster_shape([]) == {}


# ---------------------------------------------------------------------------------------------------
# The cluster, its Node objects and the hand-written benchmark spec.


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


def test_node_objects_are_realistic_and_deterministic() -> None:
    nfs = generate_cluster(40, seed=2)
    nodes = generate_node_objects(nfs, seed=2)
    assert nodes == generate_node_objects(nfs, seed=2)
    assert orjson.dumps(nodes[3]) == orjson.dumps(generate_node_object(nfs[3], seed=2))
    for nf, node in zip(nfs, nodes, strict=True):
        name = nf["metadata"]["labels"][NODE_NAME_LABEL]
        meta, status = node["metadata"], node["status"]
        assert meta["name"] == name == meta["labels"]["kubernetes.io/hostname"]
        assert nf["spec"]["labels"].items() <= meta["labels"].items()  # NFD's labels are on the node
        assert meta["annotations"]["nfd.node.kubernetes.io/feature-labels"]
        assert {m["manager"] for m in meta["managedFields"]} >= {"kubelet", "nfd-master"}
        kernel = nf["spec"]["features"]["attributes"]["kernel.version"]["elements"]["full"]
        assert status["nodeInfo"]["kernelVersion"] == kernel
        assert {"cpu", "memory", "pods"} <= status["capacity"].keys() == status["allocatable"].keys()
        assert [c["type"] for c in status["conditions"]][-1] == "Ready"
        images = status["images"]
        assert 10 <= len(images) <= 50
        sizes = [i["sizeBytes"] for i in images]
        assert sizes == sorted(sizes, reverse=True)
        assert all(i["names"][0].split("@", 1)[1].startswith("sha256:") for i in images)
        assert 10 * 1024 <= len(orjson.dumps(node)) <= 50 * 1024
    # the extender reads the names the way the scheduler sends them
    body = orjson.dumps({"Pod": {}, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None})
    assert decode_args(body).node_names == [nf["metadata"]["name"] for nf in nfs]
