"""Results kept up to date under churn (extender/match/evaluate.py ``_entry``): after a few nodes
change, the cached status matrix and verdicts are patched row by row (one reference walk per changed
node) instead of re-walking the whole table, and equal what a fresh evaluation gives; past the
threshold, or once the table's change log no longer reaches back, the entry is computed afresh."""

from __future__ import annotations

import random

import numpy as np
import pytest

from extender.features.nodefeature import NodeFeatures
from extender.match import evaluate as evaluate_module
from extender.match import table as table_module
from extender.match.evaluate import evaluate, slot_verdicts
from extender.match.table import FeatureTable
from extender.match.vector import evaluate_table as vector_evaluate_table
from extender.spec.model import Spec
from extender.spec.parse import parse_spec

SPEC = parse_spec(
    b"""version: v1alpha1
compatibilities:
- weight: 10
  rules:
  - name: avx512
    matchFeatures:
    - feature: cpu.cpuid
      matchExpressions: {AVX512F: {op: Exists}}
- weight: 3
  rules:
  - name: kernel
    matchFeatures:
    - feature: kernel.version
      matchExpressions: {major: {op: Gt, value: ["5"]}}
"""
)


def node(name: str, rng: random.Random) -> NodeFeatures:
    flags = {"cpu.cpuid": frozenset({"SSE2", "AVX512F"} if rng.random() < 0.5 else {"SSE2"})}
    return NodeFeatures(
        node=name, flags=flags, attributes={"kernel.version": {"major": str(rng.randint(4, 6))}}
    )


def fresh_verdicts(table: FeatureTable, spec: Spec) -> tuple[list[bool], list[int]]:
    copy = FeatureTable.from_features(nf for n in table.node_names() if (nf := table.node_features(n)))
    v = slot_verdicts(spec, copy)
    slots = copy.slots_of(table.node_names())
    return v.ok[slots].tolist(), v.best[slots].tolist()


@pytest.fixture
def walked(monkeypatch: pytest.MonkeyPatch) -> list[FeatureTable]:
    """The tables a whole-table walk was made over, one entry per walk. Patching is allowed up to
    one changed node in 8 slots here (the tables are small; the real bound is cost-based)."""
    monkeypatch.setattr(evaluate_module, "PATCH_SHARE", 8)
    monkeypatch.setattr(evaluate_module, "PATCH_FLOOR", 0)
    monkeypatch.setattr(evaluate_module, "PATCH_ROWS", 2)  # 3 or more: the walk over the changed slots
    tables: list[FeatureTable] = []
    real = vector_evaluate_table

    def counting(spec: Spec, table: FeatureTable, set_indexes: tuple[int, ...]) -> object:
        tables.append(table)
        return real(spec, table, set_indexes)

    monkeypatch.setattr(evaluate_module, "evaluate_table", counting)
    return tables


def walks(walked: list[FeatureTable], table: FeatureTable) -> int:
    return sum(t is table for t in walked)


def test_a_few_changes_are_patched_row_by_row(walked: list[FeatureTable]) -> None:
    rng = random.Random(1)
    table = FeatureTable.from_features(node(f"n{i}", rng) for i in range(500))
    slot_verdicts(SPEC, table)
    assert walks(walked, table) == 1
    for round_ in range(5):
        for i in rng.sample(range(500), 7):
            table.set_node(node(f"n{i}", rng))
        table.remove_node(f"n{rng.randrange(500)}")
        table.set_node(node(f"new{round_}", rng))  # a new node, in a freed slot or a new one
        v = slot_verdicts(SPEC, table)
        slots = table.slots_of(table.node_names())
        assert (v.ok[slots].tolist(), v.best[slots].tolist()) == fresh_verdicts(table, SPEC)
    assert walks(walked, table) == 1  # never re-walked: every update was a row patch
    # the status matrix too, cell for cell, against the reference
    got = evaluate(SPEC, table)
    ref = evaluate(SPEC, table, implementation="reference")
    assert np.array_equal(got.status, ref.status)


def test_many_changes_or_growth_past_the_log_are_computed_afresh(
    walked: list[FeatureTable], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(2)
    table = FeatureTable.from_features(node(f"n{i}", rng) for i in range(100))
    slot_verdicts(SPEC, table)
    for i in range(table.capacity // 8 + 1):  # more than the patch bound: one walk is cheaper
        table.set_node(node(f"n{i % 100}", rng))
    v = slot_verdicts(SPEC, table)
    assert walks(walked, table) == 2
    slots = table.slots_of(table.node_names())
    assert (v.ok[slots].tolist(), v.best[slots].tolist()) == fresh_verdicts(table, SPEC)
    monkeypatch.setattr(table_module, "_CHANGE_LOG", 4)
    for i in range(10):  # the log forgets: the entry cannot be patched
        table.set_node(node(f"n{i}", rng))
    assert table.changed_since(table.generation - 10) is None
    assert table.changed_since(table.generation - 2) is not None
    v = slot_verdicts(SPEC, table)
    assert walks(walked, table) == 3
    slots = table.slots_of(table.node_names())
    assert (v.ok[slots].tolist(), v.best[slots].tolist()) == fresh_verdicts(table, SPEC)


def test_growth_beyond_the_capacity_is_patched_too(walked: list[FeatureTable]) -> None:
    rng = random.Random(3)
    table = FeatureTable.from_features(node(f"n{i}", rng) for i in range(60))
    slot_verdicts(SPEC, table)
    capacity = table.capacity
    for i in range(60, 70):  # past 64 slots: the table doubles, the matrix grows with it
        table.set_node(node(f"n{i}", rng))
    assert table.capacity > capacity
    v = slot_verdicts(SPEC, table)
    slots = table.slots_of(table.node_names())
    assert (v.ok[slots].tolist(), v.best[slots].tolist()) == fresh_verdicts(table, SPEC)
    assert len(v.ok) == table.capacity + 1
    assert walks(walked, table) == 1  # the new rows were patched in
