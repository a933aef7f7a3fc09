"""The pod prefetcher against the API server stand-in, through the real HTTP client: which pods it
follows (field selectors, one watch per scheduler name), one lookup per image however many pods name
it, failures and a full queue counted without stopping anything, watch cuts and 410 losing no pod,
clean cancellation. The spec source is a counting fake: it is not what is under test here."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from kubernetes_asyncio import client as k8s

from extender.errors import KubeError, SpecLookupError
from extender.features.nodefeature import NodeFeatures
from extender.http.app import build_app
from extender.http.context import AppSettings
from extender.match.table import FeatureTable
from extender.sources.base import StaticFeatures
from extender.sources.kube import Backoff, KubeTransport, ListResult, WatchEvent
from extender.sources.kubeclient import ApiClientTransport
from extender.sources.prefetch import PODS_PATH, Prefetcher, pod_selector
from extender.sources.registry.client import RegistryClient
from extender.sources.registry.lookup import RegistrySpecs
from extender.sources.registry.transport import AiohttpTransport
from extender.sources.specs import SharedLookups
from extender.spec.model import Spec
from extender.spec.variants import ImageSpec
from tests.kube_apiserver import FakeApiServer
from tests.oci_registry import FakeRegistry, serve_registry
from tests.waiting import eventually, finishes

OURS = "compat-scheduler"


def pod(
    name: str,
    images: list[str],
    *,
    scheduler: str = OURS,
    node: str = "",
    init: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedulerName": scheduler,
        "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)],
    }
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": image} for i, image in enumerate(init)]
    if node:
        spec["nodeName"] = node
    meta = {"name": name, "namespace": "default", "labels": labels or {}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


class CountingSpecs:
    """Counts lookups per image; ``gate`` holds them while clear; ``failing`` images raise."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.failing: set[str] = set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def lookup(self, image: str) -> Spec | None:
        self.calls[image] += 1
        await self.gate.wait()
        if image in self.failing:
            raise SpecLookupError(f"{image}: registry unavailable")
        return None


@dataclass
class Env:
    server: FakeApiServer
    transport: KubeTransport
    specs: CountingSpecs = field(default_factory=CountingSpecs)
    running: list[tuple[Prefetcher, asyncio.Task[None]]] = field(default_factory=list)

    async def start(
        self, names: Collection[str] = (OURS,), *, wait: bool = True, **kw: Any
    ) -> tuple[Prefetcher, asyncio.Task[None]]:
        p = Prefetcher(self.transport, self.specs, names, backoff=lambda: Backoff(0.01, 0.05), **kw)
        task = asyncio.create_task(p.run())
        self.running.append((p, task))
        if wait:
            await eventually(lambda: p.synced)
        return p, task

    async def put(self, obj: dict[str, Any]) -> None:
        await self.server.put(PODS_PATH, obj)

    async def settled(self, p: Prefetcher, sentinel: str) -> None:
        """Wait until a pod naming ``sentinel`` has been created, seen and resolved with nothing left
        in flight: every pod event before it has then been handled (one stream, in order)."""
        await self.put(pod(f"sentinel-{sentinel}", [sentinel]))
        await eventually(lambda: self.specs.calls[sentinel] > 0 and p.in_flight == 0)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    server = FakeApiServer()
    async with TestServer(server.app) as ts:
        api = k8s.ApiClient(configuration=k8s.Configuration(host=str(ts.make_url("")).rstrip("/")))
        e = Env(server, ApiClientTransport(api, page_size=3, watch_seconds=1, request_timeout=60))
        try:
            yield e
        finally:
            e.specs.gate.set()
            for _, task in e.running:
                task.cancel()
            await asyncio.gather(*(t for _, t in e.running), return_exceptions=True)
            await api.close()


def prefetch_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("prefetch-") and not t.done()]


# -- the transport and the stand-in: field selectors ----------------------------------------------


async def test_field_selected_list_and_watch(env: Env) -> None:
    t = env.transport
    await env.put(pod("a", ["img/a"]))
    await env.put(pod("other", ["img/o"], scheduler="default-scheduler"))
    await env.put(pod("bound", ["img/b"], node="n1"))
    res = await t.list(PODS_PATH, field_selector=pod_selector(OURS))
    assert [p["metadata"]["name"] for p in res.items] == ["a"]
    res_not = await t.list(PODS_PATH, field_selector=f"spec.schedulerName!={OURS}")
    assert sorted(p["metadata"]["name"] for p in res_not.items) == ["other"]
    assert len((await t.list(PODS_PATH, field_selector="spec.nodeName==n1")).items) == 1
    with pytest.raises(KubeError) as bad:
        await t.list(PODS_PATH, field_selector="spec.nodeName")
    assert bad.value.code == 400

    stream = t.watch(PODS_PATH, res.resource_version, field_selector=pod_selector(OURS))
    assert isinstance(stream, AsyncGenerator)
    try:
        await env.put(pod("a", ["img/a"], labels={"x": "1"}))  # still matches
        await env.put(pod("other", ["img/o2"], scheduler="default-scheduler"))  # never matched
        await env.put(pod("a", ["img/a"], node="n2", labels={"x": "1"}))  # bound: stops matching
        await env.put(pod("c", ["img/c"]))
        got = [await finishes(anext(stream), "a watch event") for _ in range(3)]
    finally:
        await stream.aclose()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [
        ("MODIFIED", "a"),
        ("DELETED", "a"),
        ("ADDED", "c"),
    ]
    deleted = got[1]["object"]
    assert "nodeName" not in deleted["spec"]  # the last content that matched ...
    assert int(deleted["metadata"]["resourceVersion"]) > int(got[0]["object"]["metadata"]["resourceVersion"])


# -- the prefetcher ---------------------------------------------------------------------------------


async def test_existing_and_new_pods_get_one_lookup_per_image(env: Env) -> None:
    await env.put(pod("before", ["img/app:1", "img/sidecar:1"], init=["img/init:1", "img/sidecar:1"]))
    p, _ = await env.start()
    await eventually(lambda: len(env.specs.calls) == 3)
    await env.put(pod("after", ["img/new:2", "img/app:1"]))
    await env.settled(p, "img/sentinel")
    assert env.specs.calls == {
        "img/app:1": 1,
        "img/sidecar:1": 1,
        "img/init:1": 1,
        "img/new:2": 1,
        "img/sentinel": 1,
    }
    assert (p.pods_seen, p.images_queued, p.lookups_ok, p.lookups_failed) == (3, 5, 5, 0)
    assert p.reloads == 1 and p.errors == {}


async def test_pods_of_other_schedulers_and_bound_pods_are_ignored(env: Env) -> None:
    await env.put(pod("bound-before", ["img/bound-before"], node="n1"))
    p, _ = await env.start()
    await env.put(pod("theirs", ["img/theirs"], scheduler="default-scheduler"))
    await env.put(pod("bound", ["img/bound"], node="n1"))
    # a pod of ours that gets bound: seen once while pending, then DELETED for the watch: no more
    await env.put(pod("ours", ["img/ours"]))
    await env.put(pod("ours", ["img/ours-changed"], node="n2"))
    await env.settled(p, "img/sentinel")
    assert set(env.specs.calls) == {"img/ours", "img/sentinel"}
    assert p.pods_seen == 2
    selectors = {parse_qs(urlsplit(r).query).get("fieldSelector", [""])[0] for r in env.server.requests}
    assert selectors == {f"spec.schedulerName={OURS},spec.nodeName="}


async def test_one_watch_per_scheduler_name(env: Env) -> None:
    p, _ = await env.start(["sched-a", "sched-b"])
    assert len(p.reflectors) == 2
    await env.put(pod("a", ["img/a"], scheduler="sched-a"))
    await env.put(pod("b", ["img/b"], scheduler="sched-b"))
    await env.put(pod("c", ["img/c"], scheduler="sched-c"))
    await eventually(lambda: {"img/a", "img/b"} <= set(env.specs.calls) and p.in_flight == 0)
    await env.put(pod("a2", ["img/a-sentinel"], scheduler="sched-a"))
    await env.put(pod("b2", ["img/b-sentinel"], scheduler="sched-b"))
    await eventually(
        lambda: {"img/a-sentinel", "img/b-sentinel"} <= set(env.specs.calls) and p.in_flight == 0
    )
    assert "img/c" not in env.specs.calls


async def test_no_scheduler_names_means_every_unscheduled_pod(env: Env) -> None:
    p, _ = await env.start([])
    assert [r.field_selector for r in p.reflectors] == ["spec.nodeName="]
    await env.put(pod("x", ["img/x"], scheduler="anyone"))
    await env.put(pod("bound", ["img/bound"], scheduler="anyone", node="n1"))
    await env.settled(p, "img/sentinel")
    assert set(env.specs.calls) == {"img/x", "img/sentinel"}


class SelectorIgnored:
    """A transport that drops the field selector: every pod reaches the prefetcher."""

    def __init__(self, inner: KubeTransport) -> None:
        self.inner = inner

    async def list(self, path: str, *, field_selector: str = "") -> ListResult:
        return await self.inner.list(path)

    def watch(
        self, path: str, resource_version: str, *, field_selector: str = ""
    ) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(path, resource_version)


async def test_pods_are_checked_even_when_the_selector_is_not_applied(env: Env) -> None:
    env.transport = SelectorIgnored(env.transport)
    await env.put(pod("bound-before", ["img/bound-before"], node="n1"))
    p, _ = await env.start()
    await env.put(pod("theirs", ["img/theirs"], scheduler="default-scheduler"))
    await env.put(pod("ours", ["img/ours"]))
    await env.put(pod("ours", ["img/ours-bound"], node="n2"))  # MODIFIED, bound: not ours any more
    await env.settled(p, "img/sentinel")
    assert set(env.specs.calls) == {"img/ours", "img/sentinel"}


def test_scheduler_names_must_fit_a_field_selector() -> None:
    transport: Any = object()
    with pytest.raises(ValueError, match="field selector"):
        Prefetcher(transport, CountingSpecs(), ["a,b"])
    with pytest.raises(TypeError):
        Prefetcher(transport, CountingSpecs(), OURS)
    with pytest.raises(ValueError):
        Prefetcher(transport, CountingSpecs(), [OURS], concurrency=0)


async def test_fifty_pods_of_one_image_give_one_lookup(env: Env) -> None:
    p, _ = await env.start()
    env.specs.gate.clear()  # the first lookup stays in flight while the other pods arrive
    for i in range(25):
        await env.put(pod(f"web-{i}", ["img/web:1"]))
    await eventually(lambda: p.pods_seen == 25 and env.specs.calls["img/web:1"] > 0)
    assert env.specs.calls["img/web:1"] == 1 and p.in_flight == 1
    env.specs.gate.set()
    await eventually(lambda: p.lookups_ok == 1 and p.in_flight == 0)
    for i in range(25, 50):  # resolved by now: remembered
        await env.put(pod(f"web-{i}", ["img/web:1"]))
    await env.settled(p, "img/sentinel")
    assert p.pods_seen == 51
    assert env.specs.calls["img/web:1"] == 1 and p.images_queued == 2


async def test_a_failing_lookup_does_not_stop_later_ones(env: Env) -> None:
    env.specs.failing.add("img/broken")
    p, _ = await env.start(concurrency=1, retry_seconds=3600)  # no retry during the test, however slow
    await env.put(pod("bad", ["img/broken"]))
    await eventually(lambda: p.lookups_failed == 1)
    assert "img/broken" in p.errors and "registry unavailable" in p.errors["img/broken"]
    # the single worker survived; the failed image is not retried at every pod event
    await env.put(pod("bad-2", ["img/broken"]))
    await env.settled(p, "img/good")
    assert env.specs.calls == {"img/broken": 1, "img/good": 1}
    assert (p.lookups_ok, p.lookups_failed) == (1, 1)


async def test_a_failed_image_is_tried_again_after_retry_seconds(env: Env) -> None:
    env.specs.failing.add("img/flaky")
    p, _ = await env.start(retry_seconds=0.2)
    await env.put(pod("a", ["img/flaky"]))
    await eventually(lambda: p.lookups_failed == 1)
    env.specs.failing.clear()
    await eventually(lambda: "img/flaky" not in p.errors)  # the retry window ran out
    await env.put(pod("b", ["img/flaky"]))
    await eventually(lambda: p.lookups_ok == 1)
    assert env.specs.calls["img/flaky"] == 2 and p.errors == {}


async def test_a_pod_that_cannot_be_read_is_counted_and_skipped(env: Env) -> None:
    p, _ = await env.start()
    broken = pod("broken", [])
    broken["spec"]["containers"] = "not a list"
    await env.put(broken)
    await env.settled(p, "img/sentinel")
    assert p.bad_pods == 1 and p.pods_seen == 2


async def test_watch_cut_and_gone_lose_no_pods(env: Env) -> None:
    srv = env.server
    p, _ = await env.start()
    watch = p.reflectors[0]
    # a stream cut in the middle of an event: the watch resumes from the last resourceVersion
    srv.cut_next_watch = True
    for i in range(5):
        await env.put(pod(f"cut-{i}", [f"img/cut-{i}"]))
    await eventually(lambda: all(env.specs.calls[f"img/cut-{i}"] == 1 for i in range(5)))
    assert watch.errors >= 1 and "in the middle of an event" in watch.last_error
    # pods created while the watch delivers nothing, then compaction: 410, list again
    srv.paused = True
    for i in range(5):
        await env.put(pod(f"gone-{i}", [f"img/gone-{i}"]))
    await env.put(pod("bound-meanwhile", ["img/bound-meanwhile"]))
    await env.put(pod("bound-meanwhile", ["img/bound-meanwhile"], node="n1"))
    await srv.compact()
    await srv.resume()
    await eventually(lambda: p.reloads >= 2)
    await env.settled(p, "img/sentinel")
    assert all(env.specs.calls[f"img/gone-{i}"] == 1 for i in range(5))
    assert all(n == 1 for n in env.specs.calls.values())
    assert "img/bound-meanwhile" not in env.specs.calls


async def test_an_api_that_is_down_shows_in_errors_until_the_first_list(env: Env) -> None:
    env.server.fail_next = 1000
    p, _ = await env.start(wait=False)
    await eventually(lambda: any(k.startswith("watch /api/v1/pods") for k in p.errors))
    assert not p.synced
    env.server.fail_next = 0
    await eventually(lambda: p.synced)
    assert p.errors == {}


async def test_a_full_queue_drops_and_counts(env: Env) -> None:
    p, _ = await env.start(concurrency=1, queue_size=2)
    env.specs.gate.clear()
    images = [f"img/many-{i}" for i in range(6)]
    await env.put(pod("many", images))
    await eventually(lambda: p.pods_seen == 1)
    assert (p.images_queued, p.dropped) == (2, 4)  # never more than queue_size waiting
    env.specs.gate.set()
    await eventually(lambda: p.in_flight == 0)
    assert set(env.specs.calls) == set(images[:2])
    # dropped images are not remembered: the pod's next events bring them back
    await env.put(pod("many", images, labels={"event": "2"}))
    await eventually(lambda: p.pods_seen == 2 and p.in_flight == 0)
    await env.put(pod("many", images, labels={"event": "3"}))
    await eventually(lambda: p.pods_seen == 3 and p.in_flight == 0)
    assert env.specs.calls == dict.fromkeys(images, 1)
    assert p.dropped == 4 + 2


async def test_cancellation_stops_everything(env: Env) -> None:
    _, task = await env.start(concurrency=3)
    env.specs.gate.clear()
    await env.put(pod("slow", ["img/slow"]))
    await eventually(lambda: env.specs.calls["img/slow"] == 1)  # a lookup in flight
    assert len(prefetch_tasks()) == 4
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert prefetch_tasks() == []


async def test_close_ends_run_normally(env: Env) -> None:
    p, task = await env.start()
    env.specs.gate.clear()
    await env.put(pod("slow", ["img/slow"]))
    await eventually(lambda: env.specs.calls["img/slow"] == 1)
    await p.close()
    await finishes(task, "run() returns after close()")  # returns, not cancelled
    assert prefetch_tasks() == []
    closed_run = p.run()  # closed: returns at once, without waiting for anything
    with pytest.raises(StopIteration):
        closed_run.send(None)


# -- multi-arch images: warm what /filter will ask -------------------------------------------------

AMD64, ARM64 = "linux/amd64/v1", "linux/arm64/v8"
NEEDS_AVX512 = (
    b"version: v1alpha1\ncompatibilities:\n- rules:\n  - name: avx512\n    matchFeatures:\n"
    b"    - feature: cpu.cpuid\n      matchExpressions: {AVX512F: {op: Exists}}\n"
)
NEEDS_SVE = NEEDS_AVX512.replace(b"avx512", b"sve").replace(b"AVX512F", b"SVE")


class VariantCountingSpecs(CountingSpecs):
    """A :class:`CountingSpecs` that knows multi-arch images: records the platforms each lookup asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    async def lookup_variants(self, image: str, platforms: Sequence[str]) -> ImageSpec | None:
        self.asked.append((image, tuple(platforms)))
        self.calls[image] += 1
        return None


async def test_the_lookup_asks_for_the_platforms_of_the_cluster_and_again_when_one_joins(env: Env) -> None:
    env.specs = specs = VariantCountingSpecs()
    platforms = [AMD64]
    p, _ = await env.start(platforms=lambda: tuple(platforms))
    await env.put(pod("a", ["img/multi:1"]))
    await eventually(lambda: p.lookups_ok == 1 and p.in_flight == 0)
    assert specs.asked == [("img/multi:1", (AMD64,))]
    await env.put(pod("b", ["img/multi:1"]))  # resolved for every platform there is: not again
    await env.settled(p, "img/sentinel-1")
    assert [a for a in specs.asked if a[0] == "img/multi:1"] == [("img/multi:1", (AMD64,))]
    platforms.append(ARM64)  # an arm64 node joined: its child is not warm yet
    await env.put(pod("c", ["img/multi:1"]))
    await env.settled(p, "img/sentinel-2")
    assert [a for a in specs.asked if a[0] == "img/multi:1"] == [
        ("img/multi:1", (AMD64,)),
        ("img/multi:1", (AMD64, ARM64)),
    ]
    assert specs.asked[-1] == ("img/sentinel-2", (AMD64, ARM64))


def _x86(node: str, *flags: str) -> NodeFeatures:
    return NodeFeatures(node=node, flags={"cpu.cpuid": frozenset({"SSE2", "CMOV", *flags})})


def _arm(node: str, *flags: str) -> NodeFeatures:
    return NodeFeatures(node=node, flags={"cpu.cpuid": frozenset({"ASIMD", "FP", *flags})})


async def test_a_filter_after_the_prefetch_costs_no_registry_round_trip_for_any_platform(env: Env) -> None:
    """A pending pod's multi-arch image, against the registry stand-in: the prefetch reads the
    index and the children of both platforms present (registry.platform is amd64, so before the
    prefetch asked the cluster's platforms the arm64 child was left for the filter to fetch), and
    the filter that follows judges each node by its own child's spec without a request."""
    registry = FakeRegistry()
    amd = registry.put_image("app", platform="linux/amd64", layer=b"a")
    arm = registry.put_image("app", platform="linux/arm64", layer=b"b")
    index = registry.put_index("app", [amd, arm], "multi")
    registry.put_artifact("app", amd, NEEDS_AVX512)
    registry.put_artifact("app", arm, NEEDS_SVE)
    table = FeatureTable()
    for node in (_x86("x-avx512", "AVX512F"), _x86("x-old"), _arm("a-sve", "SVE"), _arm("a-old")):
        table.set_node(node)
    assert table.platforms() == (AMD64, ARM64)
    transport = AiohttpTransport(request_seconds=10)
    try:
        async with serve_registry(registry) as base:
            image = f"{base.removeprefix('http://')}/app:multi"
            lookups = SharedLookups(RegistrySpecs(RegistryClient(transport)))
            p = Prefetcher(
                env.transport,
                lookups,
                (OURS,),
                backoff=lambda: Backoff(0.01, 0.05),
                platforms=table.platforms,
            )
            env.running.append((p, asyncio.create_task(p.run())))
            await eventually(lambda: p.synced)
            await env.put(pod("pending", [image]))
            await eventually(lambda: p.lookups_ok == 1 and p.in_flight == 0)
            asked = {r.path.rsplit("/", 1)[-1] for r in registry.requests_to("referrers")}
            assert asked == {index, amd, arm}
            before = len(registry.requests)
            app = build_app(StaticFeatures(table), lookups, AppSettings())
            body = {"Pod": pod("pending", [image]), "NodeNames": ["x-avx512", "x-old", "a-sve", "a-old"]}
            async with TestClient(TestServer(app)) as http:
                resp = await http.post("/filter", data=orjson.dumps(body))
                answer = await resp.json()
            assert len(registry.requests) == before  # everything the filter needed was warm
    finally:
        await transport.close()
    assert answer["NodeNames"] == ["x-avx512", "a-sve"]
    failed = answer["FailedAndUnresolvableNodes"]
    assert "AVX512F" in failed["x-old"] and "SVE" in failed["a-old"]
