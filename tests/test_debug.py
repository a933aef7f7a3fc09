"""The debug endpoints and /metrics, through aiohttp's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from extender.features.nodefeature import NODE_NAME_LABEL
from extender.http.app import AppSettings, build_app, build_debug_app
from extender.http.metrics import Metrics
from extender.match.table import FeatureTable
from extender.sources.base import StaticFeatures, StaticSpecs
from extender.sources.specs import SharedLookups
from extender.spec.model import CompatibilitySet, Spec
from tests.debug_bodies import nodefeature, pod
from tests.helpers import R, S, T, X, node


def make_table() -> FeatureTable:
    return FeatureTable.from_features(
        [
            node("node-a", flags={"kernel.loadedmodule": ["vfio-pci", "nvidia"]}),
            node("node-b", flags={"kernel.loadedmodule": ["nvidia"]}),
            node("node-c", flags={"kernel.loadedmodule": []}),
        ]
    )


TABLE = make_table()
GPU = S(
    CompatibilitySet(
        rules=(R(T("kernel.loadedmodule", {"vfio-pci": X("Exists")}), name="vfio"),),
        weight=8,
        tag="passthrough",
    ),
    CompatibilitySet(
        rules=(R(T("kernel.loadedmodule", {"nvidia": X("Exists")}), name="driver"),), weight=4, tag="driver"
    ),
)
IMAGES = {"reg/gpu:1": GPU}
FAILING = {"reg/broken:1": "registry answered 503"}


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    features = StaticFeatures(make_table())  # fresh: its evaluation cache counts start at 0
    lookups = SharedLookups(StaticSpecs(IMAGES, failing=FAILING))
    metrics = Metrics()
    metrics.watch(features, lookups)
    app = build_app(features, lookups, AppSettings(debug_max_nodes=2), metrics=metrics)
    async with TestClient(TestServer(app)) as c:
        yield c


async def get_json(client: TestClient[Any, Any], url: str, status: int = 200) -> Any:
    resp = await client.get(url)
    assert resp.status == status, await resp.text()
    return orjson.loads(await resp.read())


async def post_json(client: TestClient[Any, Any], url: str, body: Any, status: int = 200) -> Any:
    resp = await client.post(url, data=body if isinstance(body, bytes) else orjson.dumps(body))
    assert resp.status == status, await resp.text()
    return orjson.loads(await resp.read())


async def test_explain_one_node(client: TestClient[Any, Any]) -> None:
    out = await get_json(client, "/debug/explain?image=reg/gpu:1&node=node-b")
    assert out["image"] == "reg/gpu:1" and out["spec"]["sets"] == 2 and out["spec"]["digest"] == GPU.digest
    (row,) = out["nodes"]
    assert row["node"] == "node-b" and row["verdict"] == "compatible" and row["score"] == 10
    sets = row["explanation"]["sets"]
    assert [s["status"] for s in sets] == ["not matched", "matched"]
    expr = sets[0]["rules"][0]["matchFeatures"][0]["expressions"][0]
    assert expr["key"] == "vfio-pci" and expr["status"] == "not matched" and expr["found"] == "flag absent"


async def test_explain_every_node_is_capped_and_says_so(client: TestClient[Any, Any]) -> None:
    out = await get_json(client, "/debug/explain?image=reg/gpu:1")
    assert [r["node"] for r in out["nodes"]] == ["node-a", "node-b"]
    assert out["truncated"] is True and out["nodesTotal"] == 3
    # node-a matches the weight-8 set, node-b only the weight-4 one: scores normalised to the best
    assert [r["score"] for r in out["nodes"]] == [10, 5]


async def test_explain_with_tags_and_unknown_node(client: TestClient[Any, Any]) -> None:
    out = await get_json(client, "/debug/explain?image=reg/gpu:1&node=node-b&tags=passthrough")
    assert out["tags"] == ["passthrough"]
    assert out["nodes"][0]["verdict"] == "incompatible"
    assert [s["index"] for s in out["nodes"][0]["explanation"]["sets"]] == [0]
    # a node the table does not know: 404 naming it (a typo would otherwise read as "no NodeFeature")
    out = await get_json(client, "/debug/explain?image=reg/gpu:1&node=node-z", status=404)
    assert out["error"].startswith("node 'node-z' is not known to the extender: no NodeFeature for it")
    # in a pod's own candidate list it is still explained, as the verbs treat it
    body = {"Pod": pod("reg/gpu:1"), "NodeNames": ["node-z"]}
    out = await post_json(client, "/debug/explain", body)
    assert out["nodes"][0]["verdict"] == "no NodeFeature"
    assert out["nodes"][0]["images"][0]["explanation"]["known"] is False


async def test_explain_text(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/debug/explain?image=reg/gpu:1&node=node-c&format=text")
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert "== node-c: INCOMPATIBLE, score 0" in text
    assert "COMPATIBILITY SET #0 Weight: 8; Tag: passthrough - FAIL" in text
    assert "kernel.loadedmodule.vfio-pci" in text


@pytest.mark.parametrize(
    ("url", "status", "fragment"),
    [
        ("/debug/explain", 400, "'image' is required"),
        ("/debug/explain?image=reg/none:1", 404, "has no compatibility spec"),
        ("/debug/explain?image=reg/broken:1", 502, "registry answered 503"),
        ("/debug/explain?image=reg/gpu:1&format=xml", 400, "format: expected json or text"),
    ],
)
async def test_explain_errors(client: TestClient[Any, Any], url: str, status: int, fragment: str) -> None:
    out = await get_json(client, url, status)
    assert fragment in out["error"]


async def test_explain_pod(client: TestClient[Any, Any]) -> None:
    body = pod(
        "reg/gpu:1", "docker.io/library/busybox:1", annotations={"compat-extender.nfd.io/tags": "passthrough"}
    )
    out = await post_json(client, "/debug/explain?node=node-b", body)
    assert out["pod"] == "default/p" and out["tags"] == ["passthrough"]
    assert out["images"][0]["spec"]["digest"] == GPU.digest and out["images"][1]["spec"] is None
    (row,) = out["nodes"]
    assert row["verdict"] == "incompatible"
    assert row["reason"].startswith("image reg/gpu:1: set #0 (tag passthrough): rule 'vfio'")
    assert row["images"][0]["image"] == "reg/gpu:1"


async def test_explain_pod_with_extender_args_uses_its_nodes(client: TestClient[Any, Any]) -> None:
    body = {"Pod": pod("reg/gpu:1"), "NodeNames": ["node-c", "node-a"]}
    out = await post_json(client, "/debug/explain", body)
    assert [(r["node"], r["verdict"]) for r in out["nodes"]] == [
        ("node-c", "incompatible"),
        ("node-a", "compatible"),
    ]
    assert out["truncated"] is False


async def test_explain_pod_lookup_policies(client: TestClient[Any, Any]) -> None:
    out = await post_json(client, "/debug/explain", pod("reg/broken:1"), status=502)
    assert "failure policy Fail" in out["error"]
    ignoring = pod("reg/broken:1", annotations={"compat-extender.nfd.io/failure-policy": "Ignore"})
    out = await post_json(client, "/debug/explain?node=node-a", ignoring)
    assert "ignored: failure policy Ignore" in out["images"][0]["lookupError"]
    assert out["nodes"][0]["verdict"] == "compatible"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"[1]", "expected a v1.Pod object"),
        (b'{"spec": {"containers": 5}}', "Pod.spec.containers: expected a list"),
        (b'{"Pod": {}, "NodeNames": [1]}', "NodeNames[0]: expected a string"),
    ],
)
async def test_explain_pod_bad_input(client: TestClient[Any, Any], body: bytes, fragment: str) -> None:
    out = await post_json(client, "/debug/explain", body, status=400)
    assert fragment in out["error"]


async def test_whatif(client: TestClient[Any, Any]) -> None:
    body = {
        "nodeFeature": nodefeature("new-gpu-box", ["nvidia"]),
        "images": ["reg/gpu:1", "reg/plain:1", "reg/broken:1"],
    }
    out = await post_json(client, "/debug/whatif", body)
    assert out["node"] == "new-gpu-box"
    assert out["runnable"] == ["reg/gpu:1", "reg/plain:1"] and out["notRunnable"] == ["reg/broken:1"]
    gpu, plain, broken = out["images"]
    assert gpu["verdict"] == "compatible" and gpu["bestSet"] == 1 and gpu["weight"] == 4
    assert plain["reason"] == "no compatibility spec: imposes nothing"
    assert broken["verdict"] == "unknown" and "503" in broken["reason"]
    # the imagined node never enters the table
    assert (
        await post_json(client, "/debug/explain", {"Pod": pod("reg/gpu:1"), "NodeNames": ["new-gpu-box"]})
    )["nodes"][0]["verdict"] == "no NodeFeature"


async def test_whatif_merges_several_objects_and_honours_tags(client: TestClient[Any, Any]) -> None:
    objs = [
        nodefeature("box", ["nvidia"]),
        {
            **nodefeature("box", ["vfio-pci"]),
            "metadata": {"name": "box-extra", "namespace": "nfd", "labels": {NODE_NAME_LABEL: "box"}},
        },
    ]
    out = await post_json(
        client, "/debug/whatif", {"nodeFeature": objs, "images": ["reg/gpu:1"], "tags": ["passthrough"]}
    )
    assert out["images"][0]["verdict"] == "compatible" and out["images"][0]["bestSet"] == 0
    resp = await client.post(
        "/debug/whatif?format=text",
        data=orjson.dumps({"nodeFeature": nodefeature("box", []), "images": ["reg/gpu:1"]}),
    )
    text = await resp.text()
    assert "WHAT IF node box" in text and "== reg/gpu:1: INCOMPATIBLE" in text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"images": ["a"]}, "nodeFeature: required"),
        ({"nodeFeature": {"kind": "Pod"}, "images": ["a"]}, "expected NodeFeature"),
        ({"nodeFeature": [], "images": ["a"]}, "non-empty list"),
        ({"nodeFeature": {"metadata": {}, "spec": {}}, "images": ["a"]}, "missing or empty label"),
        (
            {"nodeFeature": [nodefeature("a", []), nodefeature("b", [])], "images": ["x"]},
            "several nodes: a, b",
        ),
        ({"nodeFeature": nodefeature("a", []), "images": []}, "non-empty list of image references"),
        ({"nodeFeature": nodefeature("a", []), "images": [3]}, "non-empty list of image references"),
        ({"nodeFeature": nodefeature("a", []), "images": ["x"] * 101}, "at most 100"),
        ({"nodeFeature": nodefeature("a", []), "images": ["x"], "tags": "a"}, "tags: expected a list"),
        ([1, 2], "expected {"),
    ],
)
async def test_whatif_bad_input(client: TestClient[Any, Any], body: Any, fragment: str) -> None:
    out = await post_json(client, "/debug/whatif", body, status=400)
    assert fragment in out["error"]


async def test_debug_off_and_on_a_separate_app() -> None:
    features = StaticFeatures(TABLE)
    specs = StaticSpecs(IMAGES)
    settings = AppSettings(debug=False)
    metrics = Metrics()
    async with TestClient(TestServer(build_app(features, specs, settings, metrics=metrics))) as main:
        assert (await main.get("/debug/explain?image=reg/gpu:1")).status == 404
        assert (await main.post("/debug/whatif", data=b"{}")).status == 404
    async with TestClient(TestServer(build_debug_app(features, specs, settings, metrics=metrics))) as dbg:
        assert (await dbg.get("/debug/explain?image=reg/gpu:1&node=node-a")).status == 200
        assert (await dbg.post("/filter", data=b"{}")).status == 404  # the verbs live on the main app only
        assert (await dbg.get("/debug/sources")).status == 200


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


async def test_metrics(client: TestClient[Any, Any]) -> None:
    names = {"NodeNames": ["node-a", "node-b", "node-z"]}
    for _ in range(3):
        await post_json(
            client,
            "/filter",
            {"Pod": pod("reg/gpu:1", annotations={"compat-extender.nfd.io/tags": "passthrough"}), **names},
        )
    await post_json(client, "/filter", {"Pod": pod("reg/plain:1"), **names})
    await post_json(client, "/prioritize", {"Pod": pod("reg/gpu:1"), **names})
    out = await post_json(client, "/filter", {"Pod": pod("reg/broken:1"), **names})
    assert "503" in out["Error"]
    await post_json(client, "/filter", b"{", status=400)
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    text = await resp.text()
    assert metric(text, 'compat_extender_request_duration_seconds_count{verb="filter"}') == 6
    assert metric(text, 'compat_extender_request_duration_seconds_count{verb="prioritize"}') == 1
    assert metric(text, 'compat_extender_requests_total{code="200",verb="filter"}') == 5
    assert metric(text, 'compat_extender_requests_total{code="400",verb="filter"}') == 1
    assert metric(text, 'compat_extender_node_verdicts_total{outcome="compatible"}') == 3
    assert metric(text, 'compat_extender_node_verdicts_total{outcome="incompatible"}') == 3
    assert metric(text, 'compat_extender_node_verdicts_total{outcome="no_features"}') == 3
    assert metric(text, 'compat_extender_pods_without_specs_total{verb="filter"}') == 1
    assert metric(text, 'compat_extender_spec_lookup_errors_total{policy="Fail"}') == 1
    assert metric(text, 'compat_extender_spec_lookups_total{result="spec"}') == 4
    assert metric(text, 'compat_extender_spec_lookups_total{result="no_spec"}') == 1
    assert metric(text, 'compat_extender_spec_lookups_total{result="error"}') == 1
    assert metric(text, "compat_extender_nodes_known") == 3
    assert metric(text, "compat_extender_feature_table_generation") == make_table().generation
    assert metric(text, "compat_extender_ready") == 1
    # (gpu, tag passthrough) evaluated once then hit twice; (gpu, all sets) for prioritize once
    assert metric(text, 'compat_extender_cache_lookups_total{cache="results",result="hit"}') == 2
    assert metric(text, 'compat_extender_cache_lookups_total{cache="results",result="miss"}') == 2
    assert metric(text, 'compat_extender_cache_entries{cache="results"}') == 2
    assert metric(text, 'compat_extender_cache_max_entries{cache="results"}') == 256
    # the one incompatible node of the three filter calls: explained once, then read from the cache
    assert metric(text, 'compat_extender_cache_lookups_total{cache="explanations",result="miss"}') == 1
    assert metric(text, 'compat_extender_cache_lookups_total{cache="explanations",result="hit"}') == 2
    assert metric(text, 'compat_extender_cache_entries{cache="explanations"}') == 1
    assert metric(text, 'compat_extender_cache_bytes{cache="explanations"}') > 0


async def test_two_apps_side_by_side_keep_their_caches_apart() -> None:
    """Caches belong to each app's table, not to a module: one app's work never shows in the other."""
    apps = []
    for _ in range(2):
        features = StaticFeatures(make_table())
        lookups = SharedLookups(StaticSpecs(IMAGES))
        metrics = Metrics()
        metrics.watch(features, lookups)
        apps.append((features, build_app(features, lookups, AppSettings(), metrics=metrics)))
    (first_features, first), (second_features, second) = apps
    body = {"Pod": pod("reg/gpu:1"), "NodeNames": ["node-a", "node-b", "node-c"]}
    async with TestClient(TestServer(first)) as one, TestClient(TestServer(second)) as two:
        for _ in range(2):
            await post_json(one, "/filter", body)
        sources_one = await get_json(one, "/debug/sources")
        sources_two = await get_json(two, "/debug/sources")
        text_two = await (await two.get("/metrics")).text()
    assert sources_one["caches"]["results"] == {**sources_one["caches"]["results"], "misses": 1, "hits": 1}
    assert sources_one["caches"]["explanations"]["entries"] == 1  # node-c, the one failing node
    assert all(c["entries"] == c["hits"] == c["misses"] == 0 for c in sources_two["caches"].values())
    assert metric(text_two, 'compat_extender_cache_entries{cache="results"}') == 0
    assert len(first_features.table.caches.results) == 1 and len(second_features.table.caches.results) == 0


async def test_whatif_without_images_evaluates_every_known_one(client: TestClient[Any, Any]) -> None:
    body = {"nodeFeature": nodefeature("new-box", ["nvidia"])}
    out = await post_json(client, "/debug/whatif", body)
    assert [r["image"] for r in out["images"]] == ["reg/gpu:1"]  # what the spec source holds
    assert out["runnable"] == ["reg/gpu:1"] and out["notRunnable"] == []
    assert out["imagesFrom"].startswith("every image whose spec is known")
    resp = await client.post("/debug/whatif?format=text", data=orjson.dumps(body))
    assert "(every image whose spec is known: 1)" in await resp.text()
    # an explicit list is answered as before, without the note
    out = await post_json(client, "/debug/whatif", {**body, "images": ["reg/gpu:1"]})
    assert "imagesFrom" not in out
    for bad in ([], "reg/gpu:1", [""]):
        await post_json(client, "/debug/whatif", {**body, "images": bad}, status=400)


async def test_known_images_are_the_listed_then_the_recently_found() -> None:
    lookups = SharedLookups(StaticSpecs({"reg/a:1": GPU, "reg/b:1": GPU}))
    assert lookups.known_images() == ["reg/a:1", "reg/b:1"]

    class Unlisted:
        async def lookup(self, image: str) -> Spec | None:
            return GPU if image.startswith("reg/") else None

    found = SharedLookups(Unlisted())
    assert found.known_images() == []
    await found.lookup("reg/x:1")
    await found.lookup("other/y:1")  # no spec: not known
    assert found.known_images() == ["reg/x:1"]
