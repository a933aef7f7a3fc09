"""The benchmarks' generators: specs of 1 to 50 expressions (benchmarks/specgen.py) and the cluster's
streaming and shape helpers (benchmarks/cluster.py). Every generated spec must parse cleanly, have
exactly the expressions asked for, and be evaluated identically by the reference and the vectorized
matcher on a generated cluster: the benchmarks time both, and a disagreement would make the numbers
meaningless."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.cluster import cluster_shape, generate_cluster, iter_cluster
from benchmarks.matcher import count_expressions
from benchmarks.specgen import (
    ALL_KINDS_FROM,
    MAX_EXPRESSIONS,
    SIZES,
    generate_spec,
    spec_bytes,
    spec_document,
)
from extender import Status, evaluate, parse_spec, table_from_nodefeatures
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
    """Item 2 of the issue: a few hardware families, ≈100 cpu flags, ≈150 modules, ≈30 PCI functions."""
    shape = cluster_shape(generate_cluster(400, seed=0))
    assert shape["nodes"] == 400 and shape["pools"] == 7
    assert 60 <= shape["cpuid_flags_avg"] <= 120
    assert 120 <= shape["loaded_modules_avg"] <= 180
    assert 20 <= shape["pci_devices_avg"] <= 40
    assert shape["distinct_kernels"] >= 5
    assert 8 * 1024 <= shape["json_bytes_avg"] <= 32 * 1024
    assert cluster_shape([]) == {}
