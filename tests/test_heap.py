"""The heap keeper (extender/sources/heap.py): the feature table frozen out of the garbage
collector's full collections while it loads and as it changes, as serve runs it."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from extender.features.nodefeature import NodeFeatures
from extender.match.table import FeatureTable
from extender.sources import heap as heap_module
from extender.sources.from_config import open_sources
from extender.sources.heap import HeapKeeper, freeze
from tests.helpers import example_files_config
from tests.waiting import until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class Source:
    def __init__(self, nodes: int) -> None:
        self.table = FeatureTable.from_features(NodeFeatures(node=f"n{i}") for i in range(nodes))
        self.ready = False


def test_freezes_while_loading_then_as_a_share_of_the_nodes_changes() -> None:
    calls: list[int] = []

    def counting() -> int:
        calls.append(1)
        return len(calls)

    old = [10]
    keeper = HeapKeeper(freeze_with=counting, count_with=lambda: old[0], share=0.05, floor=3, loading=50)
    assert not keeper.check()  # no source yet (files being read), little in the oldest generation
    old[0] = 50
    assert keeper.check()  # as much as ``loading``: frozen
    source = Source(100)
    keeper.features = source
    assert keeper.check()  # not ready yet (a list under way), still as much
    old[0] = 0
    assert not keeper.check()
    source.ready = True
    assert keeper.check()  # ready: what the load left, once
    assert not keeper.check()
    for i in range(4):  # 4 changes: past the floor (3), under 5% of 100 nodes
        source.table.set_node(NodeFeatures(node=f"n{i}", flags={"f": frozenset({"x"})}))
    assert not keeper.check()
    source.table.set_node(NodeFeatures(node="n5", flags={"f": frozenset({"x"})}))  # the 5th: 5%
    assert keeper.check()
    assert not keeper.check()
    ten = Source(10)
    ten.ready = True
    small = HeapKeeper(ten, freeze_with=counting, share=0.05, floor=3)
    assert small.check()
    ten.table.set_node(NodeFeatures(node="x"))
    ten.table.remove_node("x")
    assert not small.check()  # 2 changes: 5% of 10, but under the floor
    ten.table.set_node(NodeFeatures(node="y"))
    assert small.check()
    assert (keeper.freezes, small.freezes, len(calls)) == (4, 2, 6)
    assert keeper.checks == 9
    assert keeper.frozen == 4  # what the last freeze reported


def test_freeze_puts_what_lives_out_of_the_collectors_reach() -> None:
    held = [[i] for i in range(1000)]  # tracked containers, alive
    try:
        assert gc.is_tracked(held[0])
        before = gc.get_freeze_count()
        frozen = freeze()
        assert frozen == gc.get_freeze_count() >= before + len(held)
        tracked = {id(o) for o in gc.get_objects()}  # the generations a collection visits
        assert id(held) not in tracked and id(held[0]) not in tracked
        del held[500:]  # reference counting still frees frozen objects
        assert len(held) == 500
    finally:
        gc.unfreeze()
    assert id(held[0]) in {id(o) for o in gc.get_objects()}


async def test_serve_keeps_the_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    """open_sources (what serve runs) starts a keeper that freezes once the features are loaded."""
    calls: list[bool] = []
    monkeypatch.setattr(heap_module, "INTERVAL", 0.01)

    def counting() -> int:
        calls.append(True)
        return len(calls)

    monkeypatch.setattr(heap_module, "freeze", counting)
    async with open_sources(example_files_config()) as sources:
        keeper = sources.heap
        assert keeper is not None and sources.features.ready
        await until(lambda: keeper.generation >= 0, "a freeze once the features were loaded")
        assert calls and keeper.generation == sources.features.table.generation
        done, checks = keeper.freezes, keeper.checks
        await until(lambda: keeper.checks >= checks + 5, "five more checks")
        assert keeper.freezes == done  # nothing changed since: no freeze
