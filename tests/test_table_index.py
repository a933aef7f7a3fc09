"""The table's node-name index: ``slots_of`` (which compacts the index as nodes join) answers exactly
what a plain dict of the live names answers, through any sequence of inserts, removals and lookups."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.match.table import FeatureTable, _compact_index, _SlotIndex
from tests.helpers import node

# Node names as a source could hand them over: DNS-like, but also empty, non-ASCII and holding NUL
# (the compaction splits a NUL-joined string and must notice when that cannot work).
names = st.one_of(
    st.sampled_from(["n0", "n1", "n2", "node-a", "node-b", "gpu-00001", "gpu-00002"]),
    st.text(min_size=0, max_size=6),
    st.text(alphabet="a\x00é-", min_size=0, max_size=4),
)
ops = st.lists(
    st.tuples(st.sampled_from(["set", "set", "remove", "lookup"]), names, st.lists(names, max_size=12)),
    max_size=40,
)


def _expected(live: dict[str, int], query: list[str]) -> list[int]:
    return [live.get(n, -1) for n in query]


@settings(max_examples=300, deadline=None)
@given(ops=ops)
def test_slots_of_agrees_with_a_plain_dict(ops: list[tuple[str, str, list[str]]]) -> None:
    table = FeatureTable()
    live: dict[str, int] = {}
    for op, name, query in ops:
        if op == "set":
            table.set_node(node(name, flags={"f": [name]}))
            slot = table.slot(name)
            assert slot is not None
            live[name] = slot
        elif op == "remove":
            assert table.remove_node(name) == (name in live)
            live.pop(name, None)
        probe = [*query, name, *live]
        got = table.slots_of(probe)
        assert got.dtype == np.int64
        assert got.tolist() == _expected(live, probe)
        assert list(table.node_names()) == list(live)
        assert table.all_slots().tolist() == list(live.values())
        assert len(table) == len(live)
        for n in probe:
            assert (n in table) == (n in live)
            assert table.slot(n) == live.get(n)
            nf = table.node_features(n)
            assert (nf is None) == (n not in live)
            if nf is not None:
                assert nf.node == n


@given(st.lists(names, unique=True, max_size=30))
def test_compaction_keeps_the_mapping_and_its_order(keys: list[str]) -> None:
    index = _SlotIndex(zip(keys, [7 * i + 300 for i in range(len(keys))], strict=True))
    compact = _compact_index(index)
    assert type(compact) is _SlotIndex
    assert list(compact.items()) == list(index.items())
    assert compact["surely not a node \x00"] == -1


def test_compaction_copies_keys_and_slots() -> None:
    keys = [f"node-{i:05d}" for i in range(1000)]
    index = _SlotIndex(zip(keys, range(1000, 2000), strict=True))
    compact = _compact_index(index)
    assert compact == index
    assert all(a is not b for a, b in zip(compact, index, strict=True))
    assert all(a is not b for a, b in zip(compact.values(), index.values(), strict=True))


def test_compaction_happens_as_nodes_join() -> None:
    table = FeatureTable.from_features(node(f"n{i}") for i in range(100))
    before = table._slot_of
    assert table.slots_of(["n1", "n99", "nope"]).tolist() == [1, 99, -1]
    assert table._slot_of is not before  # compacted on the first lookup after the build
    compacted = table._slot_of
    for i in range(100, 110):  # a tenth more: not yet
        table.set_node(node(f"n{i}"))
    assert table.slots_of(["n105"]).tolist() == [105]
    assert table._slot_of is compacted
    for i in range(110, 140):  # past a quarter: compacted again
        table.set_node(node(f"n{i}"))
    assert table.slots_of(["n139", "n0"]).tolist() == [139, 0]
    assert table._slot_of is not compacted
