"""Honest readiness: until the node features are synced, and while their watch has been failing for
longer than ``features.maxStaleSeconds``, a pod with spec'd images is answered with the filter's
``Error`` (kube-scheduler retries it with backoff) and prioritize's 503, never with every node
rejected as "no NodeFeature"; a pod without spec'd images needs no features and is answered as
usual. Through aiohttp's test client, with the real :class:`KubeFeatures` on a scripted transport
and a clock the test moves (no sleeping), and with a source that has no watch at all."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from extender.errors import KubeError
from extender.http.app import AppSettings, build_app
from extender.http.metrics import Metrics
from extender.match.table import FeatureTable
from extender.sources.base import Freshness, StaticFeatures, StaticSpecs, Watching, freshness, unavailable
from extender.sources.kube import NODEFEATURES_PATH, Backoff, KubeFeatures, ListResult, WatchEvent
from extender.spec.model import CompatibilitySet
from tests.helpers import R, S, T, X, node
from tests.kube_objects import nodefeature_object
from tests.kube_scripted import FakeClock, Scripted, refused
from tests.waiting import eventually

VFIO = S(CompatibilitySet(rules=(R(T("kernel.loadedmodule", {"vfio-pci": X("Exists")}), name="vfio"),)))
SPECS = StaticSpecs({"reg/dpdk:1": VFIO}, failing={"reg/broken:1": "registry answered 503"})
NAMES = ["node-a", "node-b"]


def pod(*images: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]},
    }


WITH_SPEC = {"Pod": pod("reg/dpdk:1", "docker.io/library/busybox:1"), "NodeNames": NAMES}
WITHOUT_SPEC = {"Pod": pod("docker.io/library/nginx:1"), "NodeNames": NAMES}


async def post(client: TestClient[Any, Any], path: str, body: Any) -> tuple[int, Any]:
    resp = await client.post(path, data=orjson.dumps(body))
    return resp.status, orjson.loads(await resp.read())


async def metric(client: TestClient[Any, Any], name: str) -> float | None:
    text = await (await client.get("/metrics")).text()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


async def answered_normally(client: TestClient[Any, Any]) -> None:
    status, out = await post(client, "/filter", WITH_SPEC)
    assert status == 200 and out["Error"] == "" and out["NodeNames"] == ["node-a"], out
    status, out = await post(client, "/prioritize", WITH_SPEC)
    assert status == 200 and out == [{"Host": "node-a", "Score": 0}, {"Host": "node-b", "Score": 0}]


async def answered_with_error(client: TestClient[Any, Any], *fragments: str) -> str:
    """Both verbs answer the pod with spec'd images with an error, the same message; the message."""
    status, out = await post(client, "/filter", WITH_SPEC)
    assert status == 200 and out["NodeNames"] is None and out["Nodes"] is None, out
    message = out["Error"]
    assert all(f in message for f in fragments), message
    status, out = await post(client, "/prioritize", WITH_SPEC)
    assert status == 503 and out == {"Error": message}
    return str(message)


async def unrelated_pods_flow(client: TestClient[Any, Any]) -> None:
    """A pod without spec'd images needs no features: every node passes, scores are 0."""
    status, out = await post(client, "/filter", WITHOUT_SPEC)
    assert status == 200 and out["Error"] == "" and out["NodeNames"] == NAMES
    assert out["FailedAndUnresolvableNodes"] == {}
    status, out = await post(client, "/prioritize", WITHOUT_SPEC)
    assert status == 200 and [h["Score"] for h in out] == [0, 0]


# -- a source with no watch: not ready, then ready ---------------------------------------------------


class Syncing(StaticFeatures):
    """A feature source whose initial sync has not completed yet (and that has no watch to tell
    more): ``synced`` flips it."""

    def __init__(self, table: FeatureTable) -> None:
        super().__init__(table)
        self.synced = False

    @property
    def ready(self) -> bool:
        return self.synced


TABLE = FeatureTable.from_features(
    [node("node-a", flags={"kernel.loadedmodule": ["vfio-pci"]}), node("node-b", flags={})]
)


async def test_before_the_initial_sync_pods_with_specs_get_an_error() -> None:
    features = Syncing(TABLE)
    async with TestClient(TestServer(build_app(features, SPECS))) as client:
        message = await answered_with_error(client, "node features are not synced yet")
        assert message == "node features are not synced yet: the initial NodeFeature sync is not complete"
        await unrelated_pods_flow(client)
        assert (await client.get("/readyz")).status == 503
        # a failed spec lookup is still reported as what it is
        status, out = await post(client, "/filter", {"Pod": pod("reg/broken:1"), "NodeNames": NAMES})
        assert status == 200 and out["Error"].startswith("spec lookup failed for image reg/broken:1")
        # bad input is still a 400 naming the field
        status, out = await post(client, "/filter", {"Pod": pod("reg/dpdk:1"), "NodeNames": [1]})
        assert status == 400 and "NodeNames[0]" in out["Error"]
        filtered = 'compat_extender_features_unavailable_total{reason="not_synced",verb="filter"}'
        prioritized = 'compat_extender_features_unavailable_total{reason="not_synced",verb="prioritize"}'
        assert await metric(client, filtered) == 1.0 and await metric(client, prioritized) == 1.0
        assert await metric(client, "compat_extender_ready") == 0.0
        # no node was judged: the verdict counters saw nothing
        assert await metric(client, 'compat_extender_node_verdicts_total{outcome="no_features"}') is None

        features.synced = True
        await answered_normally(client)
        assert (await client.get("/readyz")).status == 200


def test_sources_without_a_watch_are_never_stale() -> None:
    static = StaticFeatures(TABLE)
    assert not isinstance(static, Watching)
    assert freshness(static) == Freshness() and not Freshness().stale
    assert unavailable(static) is None
    from extender.sources.files import FileFeatures  # the file source, re-read from disk

    assert not isinstance(FileFeatures.__new__(FileFeatures), Watching)


@pytest.mark.parametrize(
    ("failing", "bound", "stale"), [(0, 300, False), (300, 300, False), (300.5, 300, True), (1e9, 0, False)]
)
def test_stale_only_past_a_bound_that_is_set(failing: float, bound: float, stale: bool) -> None:
    assert Freshness(failing, bound).stale is stale


# -- the Kubernetes source on a scripted transport and a hand-moved clock ----------------------------


@dataclass
class Kube:
    client: TestClient[Any, Any]
    source: KubeFeatures
    transport: Scripted
    clock: FakeClock

    async def synced(self) -> None:
        items = [
            nodefeature_object("node-a", "node-a", ["vfio-pci"]),
            nodefeature_object("node-b", "node-b", ["nvidia"]),
        ]
        for i, obj in enumerate(items):
            obj["metadata"]["resourceVersion"] = str(10 + i)
        self.transport.lists.put_nowait(ListResult(items, "20"))
        await eventually(lambda: self.source.ready and self.transport.calls[-1:] == ["watch"])

    async def break_watch(self) -> float:
        """The open watch fails, and so does every reconnection (it waits for the next step): the
        clock time of the failure."""
        errors = self.source.features.errors
        at = self.clock.now
        self.transport.watches.put_nowait(refused())
        await eventually(lambda: self.source.features.errors > errors)
        return at

    async def debug_sources(self) -> Any:
        return orjson.loads(await (await self.client.get("/debug/sources")).read())


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    transport = Scripted()
    clock = FakeClock()
    source = KubeFeatures(
        transport,
        watch_nodes=False,
        max_stale_seconds=300,
        clock=clock,
        backoff=lambda: Backoff(initial=0.001, maximum=0.004),
    )
    metrics = Metrics()
    sources = [("features", source)]
    metrics.watch(source, sources=sources)
    app = build_app(source, SPECS, AppSettings(), metrics=metrics, sources=sources)
    task = asyncio.create_task(source.run())
    try:
        async with TestClient(TestServer(app)) as client:
            yield Kube(client, source, transport, clock)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_crd_that_is_not_installed_is_named_in_the_error(kube: Kube) -> None:
    missing = KubeError(f"GET {NODEFEATURES_PATH}: 404 the server could not find the requested resource", 404)
    kube.transport.lists.put_nowait(missing)
    await eventually(lambda: kube.source.features.errors == 1)
    message = await answered_with_error(kube.client, "node features are not synced yet")
    assert message.endswith(f"; last error: KubeError: {missing}") and "404" in message
    await unrelated_pods_flow(kube.client)
    assert (await kube.debug_sources())["ready"] is False
    await kube.synced()
    await answered_normally(kube.client)


async def test_a_watch_failing_longer_than_the_bound_makes_the_features_stale(kube: Kube) -> None:
    await kube.synced()
    await answered_normally(kube.client)
    assert kube.source.last_healthy == kube.clock.now
    failed_at = await kube.break_watch()

    kube.clock.now += 299  # failing, but not for longer than the bound: decisions go on
    await answered_normally(kube.client)
    assert await metric(kube.client, "compat_extender_features_stale") == 0.0
    assert await metric(kube.client, "compat_extender_features_watch_failing_seconds") == 299.0
    assert kube.source.last_healthy == failed_at

    kube.clock.now += 2
    message = await answered_with_error(kube.client)
    assert message == (
        "node features may be stale: the NodeFeature watch has been failing for 301s, longer than "
        "features.maxStaleSeconds (300s); last error: KubeError: GET /apis: ClientConnectorError: "
        "Connection refused"
    )
    await unrelated_pods_flow(kube.client)
    assert (await kube.client.get("/readyz")).status == 200  # stale is not unready (see http/app.py)
    assert await metric(kube.client, "compat_extender_features_stale") == 1.0
    assert await metric(kube.client, "compat_extender_features_watch_failing_seconds") == 301.0
    stale = 'compat_extender_features_unavailable_total{reason="stale",verb="filter"}'
    assert await metric(kube.client, stale) == 1.0
    doc = await kube.debug_sources()
    assert doc["ready"] is True
    assert doc["sources"]["features"]["errors"] == {
        f"watch {NODEFEATURES_PATH}": "failing for 301s (stale: over features.maxStaleSeconds): "
        "KubeError: GET /apis: ClientConnectorError: Connection refused"
    }
    assert await metric(kube.client, 'compat_extender_source_errors{source="features"}') == 1.0

    # the watch works again (an event arrives): fresh at once, whatever the clock says
    event = nodefeature_object("node-b", "node-b", ["vfio-pci"])
    event["metadata"]["resourceVersion"] = "21"
    kube.transport.watches.put_nowait([WatchEvent(type="MODIFIED", object=event)])
    await eventually(lambda: kube.source.features.broken_since is None)
    status, out = await post(kube.client, "/filter", WITH_SPEC)
    assert status == 200 and out["Error"] == "" and out["NodeNames"] == NAMES  # node-b has vfio-pci now
    assert await metric(kube.client, "compat_extender_features_stale") == 0.0
    assert await metric(kube.client, "compat_extender_features_watch_failing_seconds") == 0.0
    assert kube.source.last_healthy == kube.clock.now
    assert (await kube.debug_sources())["sources"]["features"]["errors"] == {}


async def test_no_bound_means_never_stale(kube: Kube) -> None:
    kube.source.max_stale_seconds = 0
    await kube.synced()
    await kube.break_watch()
    kube.clock.now += 10**6
    await answered_normally(kube.client)
    assert await metric(kube.client, "compat_extender_features_stale") == 0.0
    assert await metric(kube.client, "compat_extender_features_watch_failing_seconds") == 10**6


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_stale_seconds"):
        KubeFeatures(Scripted(), max_stale_seconds=-1)
