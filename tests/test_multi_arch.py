"""Multi-arch images end to end: a node's platform (Node labels, else its features, else the
default), the feature table's platform column, the file source's per-platform mapping, and the
filter and debug answers when an arm64 node and an amd64 node are judged by different variants.
The registry side is in tests/test_registry_client.py (referrers API stand-in) and
tests/test_registry_distribution.py (Debian's registry); the decision against a node-by-node
reference on random mixed tables in tests/test_decide_property.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from extender.errors import ExtenderError
from extender.features.nodefeature import NodeFeatures
from extender.features.platform import VARIANT_LABEL, platform_from_features, platform_from_labels
from extender.http.app import build_app
from extender.match.table import FeatureTable
from extender.sources.base import StaticFeatures, StaticSpecs
from extender.sources.files import FileSpecs, read_image_map
from extender.sources.kube import NODEFEATURES_PATH, NODES_PATH
from extender.spec.parse import parse_spec
from extender.spec.variants import Child, ImageSpec, Variant, resolve_variants
from tests.kube_apiserver import FakeApiServer
from tests.kube_objects import node_object, nodefeature_object
from tests.kube_watching import watching
from tests.waiting import eventually, finishes

AMD64, ARM64, S390X = "linux/amd64/v1", "linux/arm64/v8", "linux/s390x"
NEEDS_AVX512 = parse_spec(
    b"version: v1alpha1\ncompatibilities:\n- rules:\n  - name: avx512\n    matchFeatures:\n"
    b"    - feature: cpu.cpuid\n      matchExpressions: {AVX512F: {op: Exists}}\n"
)
NEEDS_SVE = parse_spec(
    b"version: v1alpha1\ncompatibilities:\n- rules:\n  - name: sve\n    matchFeatures:\n"
    b"    - feature: cpu.cpuid\n      matchExpressions: {SVE: {op: Exists}}\n"
)


def x86(node: str, *flags: str) -> NodeFeatures:
    return NodeFeatures(node=node, flags={"cpu.cpuid": frozenset({"SSE2", "CMOV", *flags})})


def arm(node: str, *flags: str) -> NodeFeatures:
    return NodeFeatures(node=node, flags={"cpu.cpuid": frozenset({"ASIMD", "FP", *flags})})


# -- a node's platform ---------------------------------------------------------------------------


def test_platform_from_features() -> None:
    assert platform_from_features(x86("a", "AVX2")) == AMD64
    assert platform_from_features(arm("b", "SVE")) == ARM64
    by_vendor = NodeFeatures(node="c", attributes={"cpu.model": {"vendor_id": "Ampere"}})
    assert platform_from_features(by_vendor) == ARM64
    intel = NodeFeatures(node="d", attributes={"cpu.model": {"vendor_id": "Intel"}})
    assert platform_from_features(intel) == AMD64
    # nothing tells: the caller's default
    assert platform_from_features(NodeFeatures(node="e")) == "linux/amd64"
    assert platform_from_features(NodeFeatures(node="e"), default=S390X) == S390X


def test_platform_from_labels() -> None:
    assert platform_from_labels({"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux"}) == ARM64
    assert platform_from_labels({"kubernetes.io/arch": "aarch64"}) == ARM64  # aliases fold
    assert platform_from_labels({"kubernetes.io/arch": "arm", VARIANT_LABEL: "v6"}) == "linux/arm/v6"
    assert platform_from_labels({"kubernetes.io/os": "linux"}) is None
    assert platform_from_labels({"kubernetes.io/arch": ""}) is None
    assert platform_from_labels({"kubernetes.io/arch": "a/b"}) is None
    assert platform_from_labels(None) is None


def test_table_keeps_a_platform_per_node_across_growth_and_reuse() -> None:
    table = FeatureTable()
    for i in range(100):  # past the initial capacity: the column grows with the table
        table.set_node(arm(f"arm{i}") if i % 2 else x86(f"x{i}"))
    assert table.platforms() == (AMD64, ARM64)
    assert table.platform_of("arm1") == ARM64 and table.platform_of("x0") == AMD64
    assert table.platform_of("nope") is None
    table.set_node(x86("arm1"), S390X)  # a source that knows better (Node labels) says so
    assert table.platform_of("arm1") == S390X and table.platforms() == (AMD64, ARM64, S390X)
    table.remove_node("arm1")
    assert table.platforms() == (AMD64, ARM64)
    table.set_node(x86("fresh"))  # reuses arm1's slot: its platform is its own
    assert table.platform_of("fresh") == AMD64
    assert table.platform_codes()[-1] == 0  # slot -1 (an unknown node) reads the default's code
    assert table.platform_vocab[0] == "linux/amd64"


def test_the_childs_own_spec_wins_over_the_index() -> None:
    item = resolve_variants(
        "img",
        NEEDS_AVX512,
        {AMD64: Child("sha256:a", None), ARM64: Child("sha256:b", NEEDS_SVE, "sha256:art"), S390X: None},
        digest="sha256:idx",
        index_artifact="sha256:iart",
    )
    assert item.variant(ARM64) == Variant(ARM64, NEEDS_SVE, "platform", "sha256:b", "sha256:art")
    assert item.variant(AMD64) == Variant(AMD64, NEEDS_AVX512, "index", "sha256:a", "sha256:iart")
    assert item.variant(S390X) is None and item.variant("linux/riscv64") is None
    assert item.has_spec and {s.digest for s in item.specs} == {NEEDS_AVX512.digest, NEEDS_SVE.digest}
    bare = resolve_variants("img", None, {AMD64: Child("sha256:a", None), S390X: None})
    assert not bare.has_spec and bare.variant(AMD64) == Variant(AMD64, None, "none", "sha256:a")
    # an index with an artifact, asked only about platforms it lacks: it still has a spec, so those
    # nodes fail as the rule says instead of passing as if the image imposed nothing
    lacking = resolve_variants("img", NEEDS_AVX512, {S390X: None})
    assert lacking.has_spec and lacking.variant(S390X) is None


# -- the file source's mapping ------------------------------------------------------------------


def write_mapping(tmp_path: Path, entry: str) -> Path:
    (tmp_path / "avx512.yaml").write_bytes(
        b"version: v1alpha1\ncompatibilities:\n- rules:\n  - name: avx512\n    matchFeatures:\n"
        b"    - feature: cpu.cpuid\n      matchExpressions: {AVX512F: {op: Exists}}\n"
    )
    (tmp_path / "sve.yaml").write_bytes(
        b"version: v1alpha1\ncompatibilities:\n- rules:\n  - name: sve\n    matchFeatures:\n"
        b"    - feature: cpu.cpuid\n      matchExpressions: {SVE: {op: Exists}}\n"
    )
    mapping = tmp_path / "images.yaml"
    mapping.write_text("images:\n  reg.example/app:1:\n" + entry)
    return mapping


async def test_file_mapping_per_platform(tmp_path: Path) -> None:
    mapping = write_mapping(
        tmp_path,
        "    platforms:\n      linux/amd64: avx512.yaml\n      linux/aarch64: sve.yaml\n"
        "      linux/ppc64le: null\n",
    )
    specs = FileSpecs(mapping)
    assert await specs.refresh()
    found = await specs.lookup_variants("reg.example/app:1", (AMD64, ARM64, "linux/ppc64le", S390X))
    assert found is not None and found.variants is not None
    assert found.variant(AMD64) == Variant(AMD64, NEEDS_AVX512, "platform")
    assert found.variant(ARM64) == Variant(ARM64, NEEDS_SVE, "platform")  # aarch64 is arm64/v8
    assert found.variant("linux/ppc64le") == Variant("linux/ppc64le", None, "none")
    assert found.variants[S390X] is None
    assert await specs.lookup("reg.example/app:1") == NEEDS_AVX512  # one platform: linux/amd64


async def test_file_mapping_with_an_index_spec(tmp_path: Path) -> None:
    mapping = write_mapping(
        tmp_path,
        "    index: avx512.yaml\n    platforms:\n      linux/amd64: null\n      linux/arm64: sve.yaml\n",
    )
    specs = FileSpecs(mapping)
    await specs.refresh()
    found = await specs.lookup_variants("reg.example/app:1", (AMD64, ARM64))
    assert found is not None
    assert found.variant(AMD64) == Variant(AMD64, NEEDS_AVX512, "index")
    assert found.variant(ARM64) == Variant(ARM64, NEEDS_SVE, "platform")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("    platforms: {}\n", "platforms: expected a mapping"),
        ("    platforms:\n      amd64: avx512.yaml\n", "expected os/arch[/variant]"),
        ("    platforms:\n      linux/arm64: sve.yaml\n      linux/aarch64: sve.yaml\n", "same platform"),
        ("    platforms:\n      linux/arm64: 3\n", "expected a spec file or null"),
        ("    index: avx512.yaml\n    platform:\n      linux/arm64: sve.yaml\n", "unknown key(s) platform"),
    ],
)
def test_file_mapping_errors_name_the_entry(tmp_path: Path, entry: str, message: str) -> None:
    mapping = write_mapping(tmp_path, entry)
    with pytest.raises(ExtenderError, match=r"images\.reg\.example/app:1") as err:
        read_image_map(mapping)
    assert message in str(err.value)


# -- the filter and the debug endpoints -----------------------------------------------------------

MULTI = ImageSpec(
    "reg.example/app:1",
    None,
    {
        AMD64: Variant(AMD64, NEEDS_AVX512, "platform", "sha256:amd"),
        ARM64: Variant(ARM64, NEEDS_SVE, "platform", "sha256:arm"),
        S390X: None,
    },
    digest="sha256:index",
)


def mixed_table() -> FeatureTable:
    table = FeatureTable()
    table.set_node(x86("x-avx512", "AVX512F"))
    table.set_node(x86("x-old", "AVX2"))
    table.set_node(arm("a-sve", "SVE"))
    table.set_node(arm("a-old"))
    table.set_node(x86("z-mainframe"), S390X)
    return table


def pod(image: str) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{"image": image}]}}


@pytest.fixture
async def http() -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(StaticFeatures(mixed_table()), StaticSpecs({MULTI.image: MULTI}))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_filter_judges_each_node_by_its_platforms_variant(http: TestClient[Any, Any]) -> None:
    names = ["x-avx512", "x-old", "a-sve", "a-old", "z-mainframe"]
    resp = await http.post("/filter", data=orjson.dumps({"Pod": pod(MULTI.image), "NodeNames": names}))
    body = await resp.json()
    # the AVX-512 amd64 node and the SVE arm64 node: the arm64 one is NOT judged by the amd64 build
    assert body["NodeNames"] == ["x-avx512", "a-sve"]
    failed = body["FailedAndUnresolvableNodes"]
    assert failed["x-old"].startswith(f"image {MULTI.image} ({AMD64}): ") and "AVX512F" in failed["x-old"]
    assert failed["a-old"].startswith(f"image {MULTI.image} ({ARM64}): ") and "SVE" in failed["a-old"]
    assert failed["z-mainframe"] == (
        f"image {MULTI.image}: the image index has no {S390X} variant "
        "(the kubelet could not pull it on this node)"
    )


async def test_missing_platform_pass_leaves_it_to_the_kubelet() -> None:
    from extender.http.context import AppSettings

    app = build_app(
        StaticFeatures(mixed_table()), StaticSpecs({MULTI.image: MULTI}), AppSettings(missing_platform="pass")
    )
    async with TestClient(TestServer(app)) as client:
        resp = await client.post(
            "/filter", data=orjson.dumps({"Pod": pod(MULTI.image), "NodeNames": ["z-mainframe", "a-old"]})
        )
        body = await resp.json()
    assert body["NodeNames"] == ["z-mainframe"] and list(body["FailedAndUnresolvableNodes"]) == ["a-old"]


async def test_explain_says_which_variant_judged_each_node(http: TestClient[Any, Any]) -> None:
    resp = await http.get("/debug/explain", params={"image": MULTI.image})
    doc = await resp.json()
    rows = {r["node"]: r for r in doc["nodes"]}
    assert rows["a-sve"]["platform"] == ARM64 and rows["a-sve"]["verdict"] == "compatible"
    assert rows["a-sve"]["variant"] == {
        "origin": "platform",
        "manifest": "sha256:arm",
        "artifact": None,
        "spec": NEEDS_SVE.digest,
    }
    assert (
        rows["x-old"]["variant"]["spec"] == NEEDS_AVX512.digest and rows["x-old"]["verdict"] == "incompatible"
    )
    assert rows["z-mainframe"]["variant"] is None and rows["z-mainframe"]["explanation"] is None
    assert doc["spec"]["variants"][S390X] is None
    text = await (await http.get("/debug/explain", params={"image": MULTI.image, "format": "text"})).text()
    assert f"judged by {ARM64}: the platform manifest's own artifact, manifest sha256:arm" in text
    assert f"has no {S390X} variant" in text


async def test_whatif_tells_the_platform_from_the_features(http: TestClient[Any, Any]) -> None:
    node = nodefeature_object("new-arm", "new-arm", [])
    node["spec"]["features"]["flags"]["cpu.cpuid"] = {"elements": {"ASIMD": {}, "SVE": {}}}
    resp = await http.post("/debug/whatif", data=orjson.dumps({"nodeFeature": node, "images": [MULTI.image]}))
    doc = await resp.json()
    assert doc["platform"] == ARM64 and doc["runnable"] == [MULTI.image]
    assert doc["images"][0]["variant"]["manifest"] == "sha256:arm"


# -- the Kubernetes source: Node labels --------------------------------------------------------------


async def test_kube_source_reads_the_platform_from_node_labels() -> None:
    server = FakeApiServer()
    labelled = node_object("n-arm")
    labelled["metadata"]["labels"] = {"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux"}
    await server.put(NODES_PATH, labelled)
    await server.put(NODES_PATH, node_object("n-plain"))
    # both NodeFeatures look x86: the label wins where there is one
    for name in ("n-arm", "n-plain"):
        nf = nodefeature_object(name, name, [])
        nf["spec"]["features"]["flags"]["cpu.cpuid"] = {"elements": {"SSE2": {}}}
        await server.put(NODEFEATURES_PATH, nf)
    async with watching(server) as source:
        await finishes(source.wait_ready(), "ready after the initial lists")
        await eventually(lambda: source.table.platform_of("n-arm") == ARM64)
        assert source.table.platform_of("n-plain") == AMD64  # told from its features
        relabelled = node_object("n-plain")
        relabelled["metadata"]["labels"] = {"kubernetes.io/arch": "s390x"}
        await server.put(NODES_PATH, relabelled)
        await eventually(lambda: source.table.platform_of("n-plain") == "linux/s390x")


async def test_an_index_spec_with_only_missing_platforms_asked_is_still_a_spec(tmp_path: Path) -> None:
    """The nodes of a platform the index lacks fail (missingPlatform) even when no platform asked
    has a child: the index's artifact is what makes the image one with a spec."""
    mapping = write_mapping(tmp_path, "    index: avx512.yaml\n    platforms:\n      linux/ppc64le: null\n")
    specs = FileSpecs(mapping)
    await specs.refresh()
    found = await specs.lookup_variants("reg.example/app:1", (AMD64,))
    assert found is not None and found.variant(AMD64) is None
    table = FeatureTable()
    table.set_node(x86("x"))
    app = build_app(StaticFeatures(table), specs)
    async with TestClient(TestServer(app)) as client:
        resp = await client.post(
            "/filter", data=orjson.dumps({"Pod": pod("reg.example/app:1"), "NodeNames": ["x"]})
        )
        body = await resp.json()
    assert (
        body["NodeNames"] == [] and "has no linux/amd64/v1 variant" in body["FailedAndUnresolvableNodes"]["x"]
    )
