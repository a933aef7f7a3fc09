"""NodeFeature objects -> node features: shape checks, nfd-master's merge, the object store and
incremental table updates (docs/nfd-semantics.md §1.2, §1.3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from extender.errors import NodeFeatureError
from extender.features.nodefeature import (
    NODE_NAME_LABEL,
    NodeFeatures,
    merge_features,
    node_features_from_objects,
    parse_nodefeature,
)
from extender.features.objects import NodeFeatureObjects
from extender.match.evaluate import evaluate
from extender.match.table import FeatureTable, table_from_nodefeatures
from tests.helpers import R, S, T, X, node


def obj(
    name: str, node_name: str, features: dict[str, Any], namespace: str = "node-feature-discovery"
) -> dict[str, Any]:
    return {
        "apiVersion": "nfd.k8s-sigs.io/v1alpha1",
        "kind": "NodeFeature",
        "metadata": {"name": name, "namespace": namespace, "labels": {NODE_NAME_LABEL: node_name}},
        "spec": {"features": features},
    }


REAL = obj(
    "worker-1",
    "worker-1",
    {
        "flags": {
            "cpu.cpuid": {"elements": {"AVX2": {}, "AVX512F": {}}},
            "kernel.loadedmodule": {"elements": {}},
        },
        "attributes": {"kernel.version": {"elements": {"full": "6.8.0-45-generic", "major": "6"}}},
        "instances": {"pci.device": {"elements": [{"attributes": {"vendor": "10de", "class": "0300"}}]}},
    },
)


def test_parse_real_object() -> None:
    parsed = parse_nodefeature(REAL)
    assert (parsed.namespace, parsed.name, parsed.node) == ("node-feature-discovery", "worker-1", "worker-1")
    f = parsed.features
    assert f.flags == {"cpu.cpuid": frozenset({"AVX2", "AVX512F"}), "kernel.loadedmodule": frozenset()}
    assert f.attributes == {"kernel.version": {"full": "6.8.0-45-generic", "major": "6"}}
    assert f.instances == {"pci.device": ({"vendor": "10de", "class": "0300"},)}


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda o: o["metadata"]["labels"].clear(), "metadata.labels"),
        (lambda o: o["metadata"]["labels"].update({NODE_NAME_LABEL: ""}), "metadata.labels"),
        (lambda o: o.pop("spec"), "spec"),
        (lambda o: o.update(kind="Node"), "kind"),
        (lambda o: o["spec"].update(features=[]), "spec.features"),
        (lambda o: o["spec"]["features"]["flags"].update({"x": "y"}), "spec.features.flags.x"),
        (
            lambda o: o["spec"]["features"]["attributes"]["kernel.version"]["elements"].update(major=6),
            "spec.features.attributes.kernel.version.elements.major",
        ),
        (
            lambda o: o["spec"]["features"]["instances"]["pci.device"].update(elements={}),
            "spec.features.instances.pci.device.elements",
        ),
        (
            lambda o: o["spec"]["features"]["instances"]["pci.device"]["elements"].append(
                {"attributes": [1]}
            ),
            "spec.features.instances.pci.device.elements[1].attributes",
        ),
    ],
)
def test_malformed_objects_name_the_field(mutate: Any, path: str) -> None:
    import copy

    bad = copy.deepcopy(REAL)
    mutate(bad)
    with pytest.raises(NodeFeatureError) as info:
        parse_nodefeature(bad)
    assert info.value.path == path


def test_not_an_object() -> None:
    with pytest.raises(NodeFeatureError):
        parse_nodefeature([1, 2])


def test_null_elements_read_as_empty() -> None:
    o = obj("a", "n", {"flags": {"f.x": {"elements": None}}, "instances": {"f.y": {"elements": None}}})
    f = parse_nodefeature(o).features
    assert f.flags == {"f.x": frozenset()} and f.instances == {"f.y": ()}


def test_merge_like_nfd_master() -> None:
    objs = [
        obj(
            "b", "n", {"attributes": {"f.a": {"elements": {"k": "from-b", "only-b": "1"}}}}, namespace="other"
        ),
        obj("z", "n", {"attributes": {"f.a": {"elements": {"k": "from-own-ns"}}}}),
        obj("a", "n", {"attributes": {"f.a": {"elements": {"k": "from-a"}}}}, namespace="other"),
        obj("b", "n", {"flags": {"f.f": {"elements": {"x": {}}}}}, namespace="aaa"),
        obj(
            "c", "n", {"flags": {"f.f": {"elements": {"y": {}}}}, "instances": {"f.i": {"elements": []}}}, "x"
        ),
        obj("d", "n", {"instances": {"f.i": {"elements": [{"attributes": {"v": "1"}}]}}}, namespace="x"),
        obj("e", "n", {"instances": {"f.i": {"elements": [{"attributes": {"v": "1"}}]}}}, namespace="x"),
    ]
    merged = node_features_from_objects(objs)["n"]
    # own namespace first, then by name (a < b), then namespace: later objects win per key
    assert merged.attributes["f.a"] == {"k": "from-b", "only-b": "1"}
    assert merged.flags["f.f"] == frozenset({"x", "y"})
    assert merged.instances["f.i"] == ({"v": "1"}, {"v": "1"})  # appended, not de-duplicated


def test_empty_set_in_later_object_makes_feature_exist() -> None:
    objs = [obj("a", "n", {}), obj("b", "n", {"attributes": {"f.e": {"elements": {}}}})]
    merged = node_features_from_objects(objs)["n"]
    assert merged.attributes == {"f.e": {}}


def test_object_store_tracks_moves_and_deletes() -> None:
    store = NodeFeatureObjects()
    assert store.upsert(parse_nodefeature(obj("a", "n1", {"flags": {"f": {"elements": {"x": {}}}}}))) == {
        "n1"
    }
    assert store.upsert(parse_nodefeature(obj("b", "n1", {"flags": {"f": {"elements": {"y": {}}}}}))) == {
        "n1"
    }
    merged = store.merged("n1")
    assert merged is not None and merged.flags["f"] == {"x", "y"}
    # object "a" now belongs to n2: both nodes change
    assert store.upsert(parse_nodefeature(obj("a", "n2", {}))) == {"n1", "n2"}
    merged = store.merged("n1")
    assert merged is not None and merged.flags["f"] == {"y"}
    assert store.delete("node-feature-discovery", "b") == {"n1"}
    assert store.merged("n1") is None and sorted(store.nodes()) == ["n2"]
    assert store.delete("node-feature-discovery", "missing") == set()


def test_table_updates_slots_and_generation() -> None:
    table = table_from_nodefeatures([REAL])
    g = table.generation
    assert "worker-1" in table and len(table) == 1
    table.set_node(node("worker-2", flags={"cpu.cpuid": ["AVX2"]}))
    assert table.generation == g + 1
    assert table.remove_node("worker-1") and not table.remove_node("worker-1")
    table.set_node(node("worker-3"))
    assert table.slot("worker-3") == 0  # freed slot reused
    assert sorted(table.nodes()) == ["worker-2", "worker-3"]
    nf = table.node_features("worker-2")
    assert nf is not None and nf.flags["cpu.cpuid"] == {"AVX2"}


def test_growth_and_instance_row_compaction_stay_exact() -> None:
    spec = S(
        [R(T("pci.device", {"vendor": X("In", "10de"), "class": X("In", "0300")}))],
        [R(T("pci.device", name=X("In", "sriov")))],
    )

    def gpu_node(name: str, gpus: int, sriov: bool) -> NodeFeatures:
        devices = [{"vendor": "8086", "class": "0200"} for _ in range(100)]
        devices += [{"vendor": "10de", "class": "0300"} for _ in range(gpus)]
        if sriov:
            devices.append({"sriov": "8"})
        return node(name, instances={"pci.device": devices})

    table = FeatureTable.from_features(gpu_node(f"n{i}", i % 2, i % 3 == 0) for i in range(150))
    for round_ in range(4):  # rewrite every node: dead rows pile up and get compacted
        for i in range(0, 150, 2):
            table.set_node(gpu_node(f"n{i}", (i + round_) % 2, (i + round_) % 3 == 0))
        for i in range(5):
            table.remove_node(f"n{i + round_ * 5}")
        names = sorted(table.nodes())
        ref = evaluate(spec, table, names, implementation="reference")
        vec = evaluate(spec, table, names)
        np.testing.assert_array_equal(vec.status, ref.status)
    fc = table.feature("pci.device")
    assert fc is not None and fc.dead_rows * 2 <= fc.n_rows  # compaction happened


def test_parsed_features_share_equal_values_across_nodes() -> None:
    """Memory: nodes of a pool repeat each other; equal flag sets, attribute maps and instance rows
    are one object, and a node with a single NodeFeature is not copied when merged."""

    def obj(name: str, node: str, modules: list[str], kernel: str) -> dict[str, object]:
        return {
            "metadata": {
                "name": name,
                "namespace": "node-feature-discovery",
                "labels": {NODE_NAME_LABEL: node},
            },
            "spec": {
                "features": {
                    "flags": {"kernel.loadedmodule": {"elements": {m: {} for m in modules}}},
                    "attributes": {"kernel.version": {"elements": {"major": kernel}}},
                    "instances": {"pci.device": {"elements": [{"attributes": {"vendor": "10de"}}]}},
                }
            },
        }

    a = parse_nodefeature(obj("a", "a", ["x", "y"], "6"))
    b = parse_nodefeature(obj("b", "b", ["y", "x"], "6"))
    c = parse_nodefeature(obj("c", "c", ["x"], "5"))
    fa, fb, fc = a.features, b.features, c.features
    assert fa.flags["kernel.loadedmodule"] is fb.flags["kernel.loadedmodule"]
    assert fa.attributes["kernel.version"] is fb.attributes["kernel.version"]
    assert fa.instances["pci.device"][0] is fb.instances["pci.device"][0]
    assert fa.flags["kernel.loadedmodule"] != fc.flags["kernel.loadedmodule"]
    assert fc.attributes["kernel.version"] == {"major": "5"}
    assert merge_features([a], "a") is fa
    # merging two objects builds a new value and leaves the shared ones untouched
    a2 = parse_nodefeature(obj("a2", "a", ["z"], "7"))
    merged = merge_features([a, a2], "a")
    assert merged.flags["kernel.loadedmodule"] == {"x", "y", "z"}
    assert merged.attributes["kernel.version"] == {"major": "7"}
    assert fb.flags["kernel.loadedmodule"] == {"x", "y"} and fb.attributes["kernel.version"] == {"major": "6"}
    assert len(merged.instances["pci.device"]) == 2 and len(fb.instances["pci.device"]) == 1


def _text_with_an_int_twin() -> tuple[str, int]:
    """A string and an int of the same hash (the int is the string's hash, which an int keeps when
    it is small enough): a row or flag set holding the int hashes like the shared one."""
    for n in range(1000):
        text = f"v{n}"
        if hash(hash(text)) == hash(text):
            return text, hash(text)
    raise AssertionError("no string hashes within int range")  # 1000 tries: (3/4)**1000


@pytest.mark.parametrize("part", ["attributes", "instances", "flags"])
def test_a_value_hashing_like_a_shared_one_but_not_a_string_is_still_refused(part: str) -> None:
    """Parsing finds a row or flag set that another node already has by its hash, without
    re-checking its types (equal to strings means strings). A number of the very same hash as the
    shared text is not equal to it, so it is checked, and refused, as before."""
    text, twin = _text_with_an_int_twin()

    def features(value: object) -> dict[str, Any]:
        if part == "attributes":
            return {"attributes": {"kernel.version": {"elements": {"major": value}}}}
        if part == "instances":
            return {"instances": {"pci.device": {"elements": [{"attributes": {"vendor": value}}]}}}
        return {"flags": {"kernel.loadedmodule": {"elements": {value: {}}}}}

    first = parse_nodefeature(obj("a", "a", features(text)))  # kept alive: its values are the shared ones
    with pytest.raises(NodeFeatureError, match=f"spec.features.{part}"):
        parse_nodefeature(obj("b", "b", features(twin)))
    again = parse_nodefeature(obj("c", "c", features(text)))
    assert (
        again.features.flags == first.features.flags and again.features.instances == first.features.instances
    )
    if part == "attributes":
        assert again.features.attributes["kernel.version"] is first.features.attributes["kernel.version"]
    elif part == "instances":
        assert again.features.instances["pci.device"][0] is first.features.instances["pci.device"][0]
    else:
        assert again.features.flags["kernel.loadedmodule"] is first.features.flags["kernel.loadedmodule"]
