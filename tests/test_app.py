"""The HTTP service end to end with aiohttp's test client, payloads shaped like the captures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from extender.http.app import AppSettings, build_app
from extender.match.table import FeatureTable
from extender.sources.base import StaticFeatures, StaticSpecs
from extender.spec.model import CompatibilitySet
from tests.helpers import R, S, T, X, node

CAPTURE = orjson.loads(
    (Path(__file__).parent / "data" / "captures" / "filter-args.nodecachecapable-false.json").read_bytes()
)
TABLE = FeatureTable.from_features(
    [
        node("node-a", flags={"kernel.loadedmodule": ["vfio-pci"]}),
        node("node-b", flags={"kernel.loadedmodule": ["nvidia"]}),
    ]
)  # node-c has no NodeFeature
VFIO = S(
    CompatibilitySet(rules=(R(T("kernel.loadedmodule", {"vfio-pci": X("Exists")}), name="vfio"),), weight=3)
)
SPECS = StaticSpecs(
    {"registry.local/dpdk:1": VFIO}, failing={"registry.local/broken:1": "registry answered 503"}
)


def pod(*images: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    p = dict(CAPTURE["Pod"])
    p["metadata"] = {**p["metadata"], "annotations": annotations or {}}
    p["spec"] = {**p["spec"], "containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]}
    return p


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(StaticFeatures(TABLE), SPECS, AppSettings(max_body_bytes=200_000))
    async with TestClient(TestServer(app)) as c:
        yield c


async def post(client: TestClient[Any, Any], path: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = await client.post(path, data=data, headers={"Content-Type": "application/json"})
    return resp.status, orjson.loads(await resp.read())


async def test_filter_with_node_names(client: TestClient[Any, Any]) -> None:
    names = ["node-a", "node-c", "node-b"]
    status, out = await post(
        client, "/filter", {"Pod": pod("registry.local/dpdk:1"), "Nodes": None, "NodeNames": names}
    )
    assert status == 200
    assert out["NodeNames"] == ["node-a"] and out["Error"] == ""
    assert out["FailedAndUnresolvableNodes"] == {
        "node-c": "node has no NodeFeature: its features are unknown",
        "node-b": "image registry.local/dpdk:1: set #0: rule 'vfio': "
        'kernel.loadedmodule.vfio-pci {op: "Exists"}: flag absent',
    }


async def test_filter_with_full_nodes_echoes_survivors(client: TestClient[Any, Any]) -> None:
    args = dict(CAPTURE, Pod=pod("registry.local/dpdk:1"))
    status, out = await post(client, "/filter", args)
    assert status == 200 and out["NodeNames"] is None
    assert out["Nodes"]["items"] == [
        i for i in CAPTURE["Nodes"]["items"] if i["metadata"]["name"] == "node-a"
    ]


async def test_pod_without_specs_passes_everything(client: TestClient[Any, Any]) -> None:
    status, out = await post(
        client, "/filter", {"Pod": pod("docker.io/library/nginx:1"), "NodeNames": ["node-c"]}
    )
    assert status == 200 and out["NodeNames"] == ["node-c"] and out["FailedAndUnresolvableNodes"] == {}


async def test_prioritize_scores(client: TestClient[Any, Any]) -> None:
    status, out = await post(
        client, "/prioritize", {"Pod": pod("registry.local/dpdk:1"), "NodeNames": ["node-a", "node-b"]}
    )
    assert status == 200 and out == [{"Host": "node-a", "Score": 10}, {"Host": "node-b", "Score": 0}]


async def test_lookup_failure_policy(client: TestClient[Any, Any]) -> None:
    body = {"Pod": pod("registry.local/broken:1"), "NodeNames": ["node-a"]}
    status, out = await post(client, "/filter", body)
    assert status == 200
    assert out["Error"] == "spec lookup failed for image registry.local/broken:1: registry answered 503"
    body["Pod"] = pod(
        "registry.local/broken:1", annotations={"compat-extender.nfd.io/failure-policy": "Ignore"}
    )
    status, out = await post(client, "/filter", body)
    assert status == 200 and out["Error"] == "" and out["NodeNames"] == ["node-a"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty request body"),
        (b"{nope", "invalid JSON"),
        (b'{"Pod": {}, "Nodes": "node-a"}', "expected a NodeList object"),
        (b'{"Pod": {}, "NodeNames": [1, 2]}', "NodeNames[0]: expected a string"),
        (b'{"NodeNames": ["a"]}', "ExtenderArgs.Pod: required"),
        (b'{"Pod": {"spec": {"containers": "x"}}, "NodeNames": []}', "Pod.spec.containers: expected a list"),
    ],
)
async def test_bad_input_is_a_clear_400_and_the_server_keeps_serving(
    client: TestClient[Any, Any], body: bytes, fragment: str
) -> None:
    for path in ("/filter", "/prioritize"):
        status, out = await post(client, path, body)
        assert status == 400 and fragment in out["Error"]
    status, _ = await post(client, "/filter", {"Pod": pod(), "NodeNames": ["node-a"]})
    assert status == 200


async def test_oversized_body_is_413(client: TestClient[Any, Any]) -> None:
    huge = orjson.dumps({"Pod": {}, "NodeNames": ["n" * 100] * 3000})
    resp = await client.post("/filter", data=huge)
    assert resp.status == 413 and "over the 200000-byte limit" in await resp.text()
    resp = await client.get("/healthz")
    assert resp.status == 200


async def test_unknown_paths_and_health(client: TestClient[Any, Any]) -> None:
    assert (await client.post("/nope", data=b"{}")).status == 404
    assert (await client.get("/filter")).status == 405
    assert (await client.get("/readyz")).status == 200


async def test_not_ready_until_synced() -> None:
    class Syncing(StaticFeatures):
        @property
        def ready(self) -> bool:
            return False

    async with TestClient(TestServer(build_app(Syncing(TABLE), SPECS))) as c:
        assert (await c.get("/readyz")).status == 503


NVIDIA = S(
    CompatibilitySet(
        rules=(R(T("kernel.loadedmodule", {"nvidia": X("Exists")}), name="nv"),), weight=2, tag="gpu"
    ),
    CompatibilitySet(
        rules=(R(T("kernel.loadedmodule", {"vfio-pci": X("Exists")}), name="vf"),), weight=6, tag="vm"
    ),
)


async def test_multi_container_pod_tags_weights_and_prefix() -> None:
    specs = StaticSpecs({"registry.local/dpdk:1": VFIO, "registry.local/gpu:1": NVIDIA})
    table = FeatureTable.from_features(
        [
            node("node-a", flags={"kernel.loadedmodule": ["vfio-pci"]}),
            node("node-b", flags={"kernel.loadedmodule": ["nvidia"]}),
            node("node-ab", flags={"kernel.loadedmodule": ["nvidia", "vfio-pci"]}),
        ]
    )
    settings = AppSettings(prefix="/compat/", missing_features="pass")
    async with TestClient(TestServer(build_app(StaticFeatures(table), specs, settings))) as c:
        names = ["node-a", "node-b", "node-ab", "node-new"]
        p = pod("registry.local/gpu:1")
        p["spec"]["initContainers"] = [{"name": "init", "image": "registry.local/dpdk:1"}]
        # the init container needs vfio-pci, the main one nvidia or vfio-pci: both images must fit
        status, out = await post(c, "/compat/filter", {"Pod": p, "NodeNames": names})
        assert status == 200 and out["NodeNames"] == ["node-a", "node-ab", "node-new"]  # node-new: pass
        assert out["FailedAndUnresolvableNodes"]["node-b"].startswith("image registry.local/dpdk:1: set #0")
        # weights add up over images: node-a 3 (dpdk) + 6 (gpu, vm set) = 9, node-ab 3 + 6 = 9
        status, out = await post(c, "/compat/prioritize", {"Pod": p, "NodeNames": names})
        assert out == [
            {"Host": "node-a", "Score": 10},
            {"Host": "node-b", "Score": 0},
            {"Host": "node-ab", "Score": 10},
            {"Host": "node-new", "Score": 0},
        ]
        # tag "gpu" keeps only the weight-2 nvidia set of the gpu image: node-a no longer fits it
        tagged = pod("registry.local/gpu:1", annotations={"compat-extender.nfd.io/tags": "gpu"})
        status, out = await post(c, "/compat/filter", {"Pod": tagged, "NodeNames": names})
        assert out["NodeNames"] == ["node-b", "node-ab", "node-new"]
        assert "set #0 (tag gpu): rule 'nv'" in out["FailedAndUnresolvableNodes"]["node-a"]
        assert (await c.post("/filter", data=b"{}")).status == 404  # only under the prefix


async def test_prioritize_with_full_nodes(client: TestClient[Any, Any]) -> None:
    args = dict(CAPTURE, Pod=pod("registry.local/dpdk:1"))
    status, out = await post(client, "/prioritize", args)
    names = [i["metadata"]["name"] for i in CAPTURE["Nodes"]["items"]]
    assert status == 200 and [h["Host"] for h in out] == names
    assert {h["Host"]: h["Score"] for h in out}["node-a"] == 10
