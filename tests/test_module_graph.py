"""``python -m tests.module_graph``: the cycles it reports are the graph's, found on hand-made graphs."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import extender
from tests.module_graph import cycles, module_edges, part_edges, part_of


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


def test_the_package_has_no_import_cycles() -> None:
    edges = module_edges()
    assert len(edges) > 50  # the whole package was read
    assert cycles(part_edges(edges, 3)) == []
    assert cycles({m: t for m, t in edges.items() if m != "extender"}) == []


def test_every_part_of_the_package_is_in_a_layer_of_the_contract() -> None:
    """A new top-level module or package must be placed in the layers (pyproject.toml), or the
    contract would not check it."""
    config = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    contracts = {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}
    placed: set[str] = set()
    for layer in contracts["layers"]["layers"]:
        placed |= {name.strip() for name in layer.replace(":", "|").split("|")}
    parts = {info.name for info in pkgutil.iter_modules(extender.__path__)}
    assert placed == parts
    forbidden = set(contracts["pure-core"]["forbidden_modules"])
    assert {"aiohttp", "kubernetes_asyncio", "asyncio", "socket", "os"} <= forbidden
