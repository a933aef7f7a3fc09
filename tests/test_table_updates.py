"""Updating a feature table node by node leaves exactly the cells a table built afresh from the same
features has: whatever was replaced, removed, re-added, or rewritten in part (an update whose
unchanged features are the very objects the node had, as parsing shares them, rewrites only the
others: extender/match/table.py, ``FeatureTable._rewrite``)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.features.nodefeature import NodeFeatures
from extender.match.table import FeatureTable
from tests.fuzz import examples
from tests.strategies import clusters, update_randomly

Cell = tuple[Any, ...]


def cells(table: FeatureTable) -> dict[str, set[Cell]]:
    """Per node, every cell the columns hold for its slot (read from the columns, not from the
    features the table keeps beside them), with attribute codes decoded to their values."""
    out: dict[str, set[Cell]] = {}
    for node in table.nodes():
        slot = table.slot(node)
        assert slot is not None
        mine: set[Cell] = set()
        for name, fc in table._features.items():
            for part, has in (
                ("flags", fc.has_flags),
                ("attrs", fc.has_attrs),
                ("instances", fc.has_instances),
            ):
                if has[slot]:
                    mine.add((name, part))
            mine |= {(name, "flag", el) for el, col in fc.flags.items() if col[slot]}
            mine |= {
                (name, "attr", key, col.vocab[col.codes[slot]])
                for key, col in fc.attrs.items()
                if col.codes[slot] >= 0
            }
            rows = [r for r in range(fc.n_rows) if fc.row_node[r] == slot]
            for r in rows:
                row = tuple(
                    sorted((k, c.vocab[c.codes[r]]) for k, c in fc.inst_attrs.items() if c.codes[r] >= 0)
                )
                mine.add((name, "row", row, sum(1 for q in rows if _row(fc, q) == row)))
        out[node] = mine
    return out


def _row(fc: Any, r: int) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, c.vocab[c.codes[r]]) for k, c in fc.inst_attrs.items() if c.codes[r] >= 0))


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), data=st.data())
def test_updated_table_has_the_cells_of_a_fresh_one(cluster: list[NodeFeatures], data: st.DataObject) -> None:
    table = FeatureTable.from_features(cluster)
    update_randomly(table, data, st.integers(1, 12))
    final = [nf for node in table.nodes() if (nf := table.node_features(node)) is not None]
    assert cells(table) == cells(FeatureTable.from_features(final))


def test_many_rewrites_of_instance_rows_compact_and_stay_exact() -> None:
    """Past 64 dead rows that are the majority, a feature's rows are compacted, renumbering the rows
    of every node, the one being rewritten included."""
    row = {"vendor": "10de"}
    keep = ({"class": "0300"},)
    nf = NodeFeatures(node="a", instances={"pci.device": (row,) * 3, "usb.device": keep})
    table = FeatureTable.from_features([nf, NodeFeatures(node="b", instances={"pci.device": (row,)})])
    for i in range(200):
        nf = NodeFeatures(
            node="a",
            instances={
                "pci.device": tuple({"vendor": f"{i}"} for _ in range(3)),
                "usb.device": nf.instances["usb.device"],
            },
        )
        table.set_node(nf)
    fc = table.feature("pci.device")
    assert fc is not None and fc.n_rows < 100  # compacted along the way (600 rows were written)
    assert cells(table) == cells(
        FeatureTable.from_features([nf, NodeFeatures(node="b", instances={"pci.device": (row,)})])
    )
