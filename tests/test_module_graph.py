"""``python -m tests.module_graph``: the cycles it reports are the graph's, found on hand-made graphs."""

from __future__ import annotations

from tests.module_graph import cycles, part_edges, part_of


def test_cycles_are_the_strongly_connected_components() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"f"}, "g": set()}
    assert cycles(edges) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_parts_fold_modules_and_ignore_the_own_package_init() -> None:
    assert part_of("extender.match.table", 2) == "extender.match"
    assert part_of("extender.sources.registry.client", 3) == "extender.sources.registry"
    assert part_of("extender.sources.files", 3) == "extender.sources"
    edges = {
        "extender.sources.registry.client": {"extender.sources", "extender.errors"},
        "extender.sources.files": {"extender.sources.registry.client"},
    }
    assert part_edges(edges, 3) == {
        "extender.sources.registry": {"extender.errors"},
        "extender.sources": {"extender.sources.registry"},
    }
