"""Updating a feature table node by node leaves exactly the cells a table built afresh from the same
features has: whatever was replaced, removed, re-added, or rewritten in part (an update whose
unchanged features are the very objects the node had, as parsing shares them, rewrites only the
others: extender/match/table.py, ``FeatureTable._rewrite``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.features.nodefeature import NodeFeatures
from extender.match.table import FeatureTable
from tests.fuzz import examples
from tests.strategies import clusters, node_features

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


def _partly(old: NodeFeatures, drawn: NodeFeatures, data: st.DataObject) -> NodeFeatures:
    """Per feature: the very object the node had (instance tuples new, their rows the same
    objects), the drawn value, or none; or the node's own features object again."""

    def pick(old_part: Mapping[str, Any], new_part: Mapping[str, Any], rows: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in sorted({*old_part, *new_part}):
            choice = data.draw(st.sampled_from(["keep", "new", "drop"]))
            if choice == "keep" and name in old_part:
                out[name] = tuple(old_part[name]) if rows else old_part[name]
            elif choice == "new" and name in new_part:
                out[name] = new_part[name]
        return out

    if data.draw(st.integers(0, 9)) == 0:
        return old
    return NodeFeatures(
        node=old.node,
        flags=pick(old.flags, drawn.flags, False),
        attributes=pick(old.attributes, drawn.attributes, False),
        instances=pick(old.instances, drawn.instances, True),
    )


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), data=st.data())
def test_updated_table_has_the_cells_of_a_fresh_one(cluster: list[NodeFeatures], data: st.DataObject) -> None:
    table = FeatureTable.from_features(cluster)
    for step in range(data.draw(st.integers(1, 12))):
        names = sorted(table.nodes())
        action = data.draw(st.sampled_from(["partly", "partly", "replace", "remove", "add"]))
        if action == "remove" and names:
            table.remove_node(data.draw(st.sampled_from(names)))
        elif action == "replace" and names:
            table.set_node(data.draw(node_features(data.draw(st.sampled_from(names)))))
        elif action == "partly" and names:
            old = table.node_features(data.draw(st.sampled_from(names)))
            assert old is not None
            table.set_node(_partly(old, data.draw(node_features(old.node)), data))
        else:
            table.set_node(data.draw(node_features(f"new{step}")))
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
