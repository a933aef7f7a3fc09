"""Watch recovery: the backoff is capped (jitter included) and starts over after a successful list;
a 404 (the NodeFeature CRD not installed yet) is logged clearly and retried with the capped
backoff; each reflector knows since when it has been failing, and a watch the server accepts ends
that even on a quiet cluster. Then an API-server restart, on the stand-in stopped and started again
on the same port: the NodeFeature, Node and prefetch Pod watches all come back and see changes made
on the restarted server. Nothing here measures time: the backoff's state is read, not its delays
timed, and every wait is for a condition."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from extender.errors import KubeError
from extender.sources.kube import (
    MAX_BACKOFF_SECONDS,
    NODEFEATURES_PATH,
    NODES_PATH,
    Backoff,
    KubeFeatures,
    ListResult,
    Reflector,
    WatchEvent,
)
from extender.sources.kubeclient import ApiClientTransport
from extender.sources.prefetch import PODS_PATH, Prefetcher
from extender.spec.model import Spec
from tests.kube_apiserver import FakeApiServer, status
from tests.kube_objects import node_object, nodefeature_object
from tests.kube_scripted import FakeClock, Scripted, modified, refused
from tests.waiting import eventually, until

# -- Backoff ----------------------------------------------------------------------------------------


def test_the_delays_never_exceed_the_cap_whatever_the_jitter() -> None:
    for jitter in (lambda a, b: b, lambda a, b: a, random.uniform, lambda a, b: 1.5):  # 1.5: a broken one
        backoff = Backoff(initial=0.2, maximum=5.0, jitter=jitter)
        delays = [backoff.next() for _ in range(200)]
        assert max(delays) <= 5.0 and min(delays) > 0
    assert Backoff().maximum == MAX_BACKOFF_SECONDS <= 5.0  # every watch back within seconds


def test_the_delays_grow_to_the_cap_and_a_reset_starts_over() -> None:
    backoff = Backoff(initial=0.5, maximum=3.0, factor=2.0, jitter=lambda a, b: b)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.failures == 5
    backoff.reset()
    assert backoff.failures == 0 and backoff.next() == 0.5


def test_jitter_spreads_the_delays_between_half_and_all() -> None:
    low = Backoff(initial=1.0, maximum=4.0, jitter=lambda a, b: a)
    assert [low.next() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    drawn = {Backoff(initial=1.0, maximum=4.0).next() for _ in range(50)}
    assert len(drawn) > 1 and all(0.5 <= d <= 1.0 for d in drawn)  # replicas do not retry in lockstep


@pytest.mark.parametrize(("initial", "maximum", "factor"), [(0, 1, 2), (2, 1, 2), (0.1, 1, 0.5)])
def test_settings_that_make_no_backoff_are_refused(initial: float, maximum: float, factor: float) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(initial=initial, maximum=maximum, factor=factor)


def test_a_fresh_copy_keeps_the_settings_not_the_failures() -> None:
    backoff = Backoff(initial=0.3, maximum=0.9, jitter=lambda a, b: b)
    backoff.next()
    backoff.next()
    copy = backoff.fresh()
    assert (copy.initial, copy.maximum, copy.failures) == (0.3, 0.9, 0) and copy.next() == 0.3
    assert backoff.failures == 2


# -- the reflector against a scripted transport -----------------------------------------------------


@dataclass
class Running:
    reflector: Reflector
    transport: Scripted
    clock: FakeClock
    applied: list[tuple[str, dict[str, Any]]]


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    transport = Scripted()
    clock = FakeClock()
    applied: list[tuple[str, dict[str, Any]]] = []
    reflector = Reflector(
        transport,
        NODEFEATURES_PATH,
        lambda items: None,
        lambda kind, obj: applied.append((kind, obj)),
        Backoff(initial=0.001, maximum=0.004, jitter=lambda a, b: b),
        clock=clock,
    )
    task = asyncio.create_task(reflector.run())
    try:
        yield Running(reflector, transport, clock, applied)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_successful_list_resets_the_backoff(running: Running) -> None:
    r, t = running.reflector, running.transport
    for _ in range(6):
        t.lists.put_nowait(refused())
    await eventually(lambda: r.backoff.failures == 6)  # grown (and capped) while the server was away
    # the server answers again: the list succeeds, then the watch connection fails once
    t.lists.put_nowait(ListResult([], "7"))
    t.watches.put_nowait(refused())
    await eventually(lambda: r.errors == 7)
    assert r.lists == 1 and r.synced.is_set()
    assert r.backoff.failures == 1  # started over after the list: the next delay is the initial one
    t.watches.put_nowait([modified(8)])
    await eventually(lambda: r.resource_version == "8")
    assert r.backoff.failures == 0  # an event resets it too


async def test_gone_right_after_every_list_is_not_a_hot_loop(running: Running) -> None:
    """A list resets the error backoff but not the relist backoff: a server answering 410 to every
    watch right after the list gets lists spaced by a growing delay."""
    r, t = running.reflector, running.transport
    gone = WatchEvent(type="ERROR", object=status(410, "Expired", "too old resource version"))
    for i in range(4):
        t.lists.put_nowait(ListResult([], str(10 + i)))
        t.watches.put_nowait([gone])
    await eventually(lambda: r.lists == 4 and r.relist_backoff.failures == 4)
    assert r.backoff.failures == 0 and r.errors == 0  # 410 is not an error of the connection
    t.watches.put_nowait([modified(20)])
    t.lists.put_nowait(ListResult([], "20"))
    await eventually(lambda: r.relist_backoff.failures == 0)  # the event showed the watch works


async def test_404_while_the_crd_is_missing_is_logged_clearly_and_retried(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    r, t = running.reflector, running.transport
    caplog.set_level(logging.DEBUG, logger="extender.sources.kube")

    def warnings() -> list[str]:
        return [
            rec.getMessage()
            for rec in caplog.records
            if rec.levelno == logging.WARNING and rec.name == "extender.sources.kube"
        ]

    missing = KubeError(f"GET {NODEFEATURES_PATH}: 404 the server could not find the requested resource", 404)
    for _ in range(5):
        t.lists.put_nowait(missing)
    await eventually(lambda: r.errors == 5)
    assert len(warnings()) == 1  # the same error again is not a warning every few seconds
    assert "is its CRD installed?" in warnings()[0] and NODEFEATURES_PATH in warnings()[0]
    assert r.backoff.failures == 5 and not r.synced.is_set()
    running.clock.now += 61  # a minute later, still failing: one more warning says so
    t.lists.put_nowait(missing)
    await eventually(lambda: r.errors == 6)
    assert len(warnings()) == 2 and "failing for 61s" in warnings()[1]
    # the CRD is installed: the next list succeeds, and the log says the failure is over
    t.lists.put_nowait(ListResult([], "1"))
    await eventually(lambda: r.synced.is_set())
    assert r.backoff.failures == 0 and r.broken_since is None
    assert any("working again after failing for 61s" in rec.getMessage() for rec in caplog.records)
    # a new failure later is a warning again, although the error is the same
    t.watches.put_nowait(missing)
    await eventually(lambda: r.errors == 7)
    assert len(warnings()) == 3


async def test_since_when_a_reflector_has_been_failing(running: Running) -> None:
    r, t, clock = running.reflector, running.transport, running.clock

    def health() -> tuple[float | None, float | None, float]:  # read afresh each time
        return r.broken_since, r.last_healthy, r.failing_seconds

    assert health() == (None, None, 0)  # never listed yet
    t.lists.put_nowait(ListResult([], "1"))
    await eventually(lambda: t.calls == ["list", "watch"])
    assert health() == (None, clock.now, 0)
    clock.now += 50
    assert health() == (None, clock.now, 0)  # while it works, it is healthy now
    failed_at = clock.now
    t.watches.put_nowait(refused())
    await eventually(lambda: r.errors == 1)
    t.watches.put_nowait(refused())
    await eventually(lambda: r.errors == 2)
    clock.now += 400
    assert health() == (failed_at, failed_at, 400)  # since the first failure in a row
    t.watches.put_nowait([modified(2)])
    await eventually(lambda: r.broken_since is None)
    assert health() == (None, clock.now, 0)


@dataclass
class OpensQuietly(Scripted):
    """Also reports an accepted watch: ``opened`` is called, then no event comes."""

    def watch_reporting_open(
        self,
        path: str,
        resource_version: str,
        opened: Callable[[], None],
        *,
        field_selector: str = "",
    ) -> AsyncIterator[WatchEvent]:
        async def events() -> AsyncIterator[WatchEvent]:
            self.calls.append("watch")
            step = await self.watches.get()
            if isinstance(step, Exception):
                raise step
            opened()
            await asyncio.Event().wait()  # a quiet cluster: nothing changes
            yield WatchEvent(type="BOOKMARK", object={})  # pragma: no cover - never reached

        return events()


async def test_a_watch_the_server_accepts_ends_a_failure_without_any_event() -> None:
    t = OpensQuietly()
    r = Reflector(t, NODES_PATH, lambda items: None, lambda kind, obj: None, Backoff(0.001, 0.002))
    task = asyncio.create_task(r.run())
    try:
        t.lists.put_nowait(ListResult([], "1"))
        t.watches.put_nowait(refused())
        await eventually(lambda: r.errors == 1 and r.broken_since is not None)
        t.watches.put_nowait([])
        await eventually(lambda: r.broken_since is None)
        assert r.backoff.failures == 1  # accepted is not yet working: the backoff waits for an event
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- an API-server restart, through the real client ------------------------------------------------


class Recording:
    """A spec source that remembers which images were looked up (none has a spec)."""

    def __init__(self) -> None:
        self.images: set[str] = set()

    async def lookup(self, image: str) -> Spec | None:
        self.images.add(image)
        return None


def pending_pod(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"schedulerName": "compat-scheduler", "containers": [{"name": "c", "image": image}]},
    }


def modules(source: KubeFeatures, node: str) -> set[str] | None:
    f = source.table.node_features(node)
    return None if f is None else set(f.flags.get("kernel.loadedmodule", ()))


@pytest.mark.parametrize("new_watch_cache", [True, False], ids=["410-after-restart", "resume-after-restart"])
async def test_every_watch_comes_back_after_an_api_server_restart(new_watch_cache: bool) -> None:
    server = FakeApiServer()
    for i in range(3):
        await server.put(NODES_PATH, node_object(f"n{i}"))
        await server.put(NODEFEATURES_PATH, nodefeature_object(f"n{i}", f"n{i}", ["kvm"]))
    await server.put(PODS_PATH, pending_pod("before", "img/before"))
    url = await server.start()
    api = k8s.ApiClient(configuration=k8s.Configuration(host=url))
    # long watches: what brings them back is the restart handling, not a stream ending on its own
    transport = ApiClientTransport(api, watch_seconds=600, request_timeout=60)
    features = KubeFeatures(transport, backoff=lambda: Backoff(initial=0.01, maximum=0.05))
    specs = Recording()
    prefetch = Prefetcher(
        transport, specs, ["compat-scheduler"], backoff=lambda: Backoff(initial=0.01, maximum=0.05)
    )
    reflectors = [*features.reflectors, *prefetch.reflectors]
    assert [r.path for r in reflectors] == [NODEFEATURES_PATH, NODES_PATH, PODS_PATH]
    tasks = [asyncio.create_task(features.run()), asyncio.create_task(prefetch.run())]
    try:
        await eventually(lambda: features.ready and prefetch.synced and "img/before" in specs.images)
        await eventually(lambda: server.open_watches == 3)
        lists = [r.lists for r in reflectors]

        await server.stop()
        # every watch fails, several times in a row: its backoff has grown
        await eventually(lambda: all(r.backoff.failures >= 3 for r in reflectors))
        assert all(r.broken_since is not None for r in reflectors)
        assert all(k.startswith("watch ") for k in features.errors) and len(features.errors) == 2
        assert any(k.startswith("watch /api/v1/pods") for k in prefetch.errors)
        # meanwhile the cluster changes (through another API server, say)
        await server.put(NODEFEATURES_PATH, nodefeature_object("n2", "n2", ["kvm", "while-down"]))
        if new_watch_cache:
            await server.compact()  # the restarted server's watch cache starts at the current version
        assert await server.start() == url  # the same port

        if new_watch_cache:
            # 410 on resume, then a list: the list alone resets each backoff (no event has come yet)
            await until(
                lambda: all(r.lists > n for r, n in zip(reflectors, lists, strict=True)),
                lambda: (
                    f"every reflector lists again: lists {[r.lists for r in reflectors]}, before "
                    f"{lists}, last errors {[r.last_error for r in reflectors]}"
                ),
            )
            assert [r.backoff.failures for r in reflectors] == [0, 0, 0]
        else:
            # resumed from the last resourceVersion; for Nodes and Pods nothing changed, so the
            # accepted watch alone ends their failure
            assert [r.lists for r in reflectors] == lists
        await eventually(lambda: all(r.broken_since is None for r in reflectors))
        await eventually(lambda: modules(features, "n2") == {"kvm", "while-down"})
        await eventually(lambda: server.open_watches == 3)
        assert features.errors == {} and prefetch.errors == {}

        # changes made on the restarted server reach the extender, on every watch
        await server.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["vfio-pci"]))
        await server.delete(NODES_PATH, "", "n1")
        await server.put(PODS_PATH, pending_pod("after", "img/after"))
        await eventually(lambda: modules(features, "n0") == {"vfio-pci"})
        await eventually(lambda: "n1" not in features.table)
        await eventually(lambda: "img/after" in specs.images)
        assert modules(features, "n2") == {"kvm", "while-down"}
        assert [r.backoff.failures for r in reflectors] == [0, 0, 0]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.close()
        await server.stop()
