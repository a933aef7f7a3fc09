"""Faults under a bounded concurrent load, through ``serve`` on loopback: the registry answering 5xx,
slow beyond the timeouts, serving wrong digests, stopped and restarted; the NodeFeature watch cut in
the middle of an event and answering 410 Gone. Throughout, every answer follows the failure policy
(Fail: the filter's ``Error``; Ignore: every node passes), answers for cached images stay right,
nothing is lost (every change made during the faults shows up), memory stays flat, and the service
recovers when the fault ends."""

from __future__ import annotations

import asyncio
import gc
import itertools
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from extender.sources.kube import NODEFEATURES_PATH, NODES_PATH
from tests.kube_apiserver import FakeApiServer
from tests.kube_objects import kubeconfig, node_object, nodefeature_object
from tests.oci_registry import FakeRegistry
from tests.serving import serving
from tests.waiting import finishes, until

NODES = [f"n{i}" for i in range(20)]
SPEC = b"""
version: v1alpha1
compatibilities:
- rules:
  - name: vfio
    matchFeatures:
    - feature: kernel.loadedmodule
      matchExpressions:
        vfio-pci: {op: Exists}
"""
WORKERS = 8
FOREVER = 10**6
#: Timeouts far beyond what a lookup on loopback takes, even on a busy machine: only the "slow"
#: fault, which holds requests until the test releases them, is slower than these.
REQUEST_SECONDS = 10.0
LOOKUP_SECONDS = 30.0
#: Cached answers must not depend on how long the test runs: nothing expires during it.
DAY = 86_400


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _start_registry(registry: FakeRegistry, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(registry.app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, runner.addresses[0][1]


async def _stop_registry(registry: FakeRegistry, runner: web.AppRunner) -> None:
    registry.release()
    await runner.cleanup()


class Load:
    def __init__(self, session: aiohttp.ClientSession, url: str, registry_host: str) -> None:
        self.session = session
        self.url = url
        self.host = registry_host
        self.sent = 0

    def body(self, image: int, ignore: bool) -> dict[str, Any]:
        annotations = {"compat-extender.nfd.io/failure-policy": "Ignore"} if ignore else {}
        return {
            "Pod": {
                "metadata": {"name": "p", "annotations": annotations},
                "spec": {"containers": [{"name": "c", "image": f"{self.host}/app:{image}"}]},
            },
            "NodeNames": NODES,
        }

    async def run(
        self, images: list[int], ignore: bool = False, n: int = 48
    ) -> list[tuple[int, dict[str, Any]]]:
        """``n`` filter calls from WORKERS concurrent clients, cycling through ``images``."""
        jobs = itertools.cycle(images)
        out: list[tuple[int, dict[str, Any]]] = []

        async def worker(count: int) -> None:
            for _ in range(count):
                image = next(jobs)
                async with self.session.post(f"{self.url}/filter", json=self.body(image, ignore)) as r:
                    assert r.status == 200, (r.status, await r.text())
                    out.append((image, await r.json()))
                self.sent += 1

        await asyncio.gather(*(worker(n // WORKERS) for _ in range(WORKERS)))
        return out


def _passing(api_modules: dict[str, set[str]]) -> list[str]:
    return [n for n in NODES if "vfio-pci" in api_modules[n]]


async def _until(predicate: Any, load: Load, images: list[int], what: str) -> None:
    """Keep the load on until ``predicate(answers)`` holds for a whole round."""
    last: list[tuple[int, dict[str, Any]]] = []

    async def round_holds() -> bool:
        last[:] = await load.run(images, n=16)
        return bool(predicate(last))

    try:
        await until(round_holds, what, interval=0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answers: {last[:2]}") from None


def _held(registry: FakeRegistry, since: int, tags: set[str]) -> bool:
    """Requests for the manifests of all of ``tags`` reached the registry after ``since``."""
    paths = {r.path for r in registry.requests[since:]}
    return all(f"/v2/app/manifests/{t}" in paths for t in tags)


async def test_faults_under_load(tmp_path: Path) -> None:
    registry = FakeRegistry()
    for i in range(12):
        digest = registry.put_image("app", str(i), layer=f"layer {i}".encode())
        registry.put_artifact("app", digest, SPEC)
    api = FakeApiServer()
    modules = {n: ({"vfio-pci"} if i % 2 == 0 else {"nvidia"}) for i, n in enumerate(NODES)}
    for n in NODES:
        await api.put(NODES_PATH, node_object(n))
        await api.put(NODEFEATURES_PATH, nodefeature_object(n, n, sorted(modules[n])))

    runner, port = await _start_registry(registry, 0)
    host = f"127.0.0.1:{port}"

    def right(answers: list[tuple[int, dict[str, Any]]]) -> None:
        for image, a in answers:
            assert a["Error"] == "", (image, a)
            assert a["NodeNames"] == _passing(modules), (image, a)

    def failed_by_policy(answers: list[tuple[int, dict[str, Any]]], ignore: bool) -> None:
        assert answers
        for image, a in answers:
            if ignore:  # treated as having no spec: every node passes
                assert a["Error"] == "" and a["NodeNames"] == NODES, (image, a)
            else:  # Fail: an Error answer, the scheduler retries the pod
                assert a["Error"] and f"app:{image}" in a["Error"], (image, a)

    try:
        async with TestServer(api.app) as apiserver:
            kc = kubeconfig(tmp_path / "kc", str(apiserver.make_url("")).rstrip("/"))
            config = {
                "listen": {"port": 0},
                "features": {"source": "kubernetes", "kubeconfig": str(kc)},
                "specs": {"source": "registry"},
                "registry": {
                    "lookupSeconds": LOOKUP_SECONDS,
                    "requestSeconds": REQUEST_SECONDS,
                    "cache": {"tagSeconds": DAY, "referrersSeconds": DAY, "negativeSeconds": 1},
                },
            }
            async with serving(config, tmp_path) as url, aiohttp.ClientSession() as session:

                async def ready() -> bool:
                    async with session.get(f"{url}/readyz") as r:
                        return r.status == 200

                await until(ready, "/readyz answers 200 (the initial lists are in)")
                load = Load(session, url, host)
                right(await load.run([0, 1, 2]))  # warm: 0-2 are cached from now on
                gc.collect()
                rss_before = _rss_kib()
                sent_before = load.sent

                # 1. the registry answers 500 to everything
                registry.fail_next(FOREVER, 500)
                right(await load.run([0, 1, 2]))
                failed_by_policy(await load.run([3, 4]), ignore=False)
                failed_by_policy(await load.run([3, 4], ignore=True), ignore=True)
                registry.clear_faults()

                # 2. slower than the request and lookup timeouts: every request is held until the
                # test releases it (FOREVER seconds), so it outlasts any timeout on any machine.
                # Lookups of 5 and 6 hang in the registry while cached images are asked for.
                since = len(registry.requests)
                registry.delay_next(FOREVER, FOREVER)
                stuck = asyncio.gather(load.run([5, 6], n=WORKERS), load.run([5, 6], ignore=True, n=WORKERS))
                await until(
                    lambda: _held(registry, since, {"5", "6"}), "lookups of 5 and 6 reach the registry"
                )
                right(await load.run([0, 1, 2]))
                stuck_fail, stuck_ignore = await finishes(stuck, "the held lookups time out")
                failed_by_policy(stuck_fail, ignore=False)
                for image, a in stuck_fail:  # the timeout, not some other failure, decided these
                    assert f"within {REQUEST_SECONDS:g}s" in a["Error"], (image, a)
                failed_by_policy(stuck_ignore, ignore=True)
                registry.clear_faults()
                registry.release()

                # 3. bytes that do not match their digests
                registry.corrupt_next(FOREVER)
                failed_by_policy(await load.run([7]), ignore=False)
                right(await load.run([2]))
                registry.clear_faults()

                # 4. the registry is stopped (connection refused), then back on the same port
                await _stop_registry(registry, runner)
                failed_by_policy(await load.run([8]), ignore=False)
                failed_by_policy(await load.run([8], ignore=True), ignore=True)
                right(await load.run([0, 1, 2]))
                runner, _ = await _start_registry(registry, port)

                # recovery: every image that failed during the faults resolves now
                await _until(
                    lambda a: all(x["Error"] == "" for _, x in a), load, [3, 4, 5, 6, 7, 8], "recovery"
                )
                right(await load.run([3, 4, 5, 6, 7, 8], n=48))

                # 5. the NodeFeature watch is cut in the middle of an event, with a change under way
                api.cut_next_watch = True
                modules["n1"] = {"vfio-pci"}
                await api.put(NODEFEATURES_PATH, nodefeature_object("n1", "n1", ["vfio-pci"]))
                await _until(
                    lambda a: all("n1" in x["NodeNames"] for _, x in a),
                    load,
                    [0, 3],
                    "n1 passes after the cut",
                )

                # 6. compaction: the watch resumes from a resourceVersion that is gone (410), relists
                await api.compact()
                modules["n0"] = {"nvidia"}
                await api.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["nvidia"]))
                await _until(
                    lambda a: all("n0" not in x["NodeNames"] for _, x in a),
                    load,
                    [0, 3],
                    "n0 fails after the 410",
                )
                right(await load.run(list(range(9)), n=72))

                gc.collect()
                grown = _rss_kib() - rss_before
                sent = load.sent - sent_before
                assert grown < 40 * 1024, f"RSS grew {grown} KiB over {sent} requests with faults"
                assert sent >= 500
    finally:
        await _stop_registry(registry, runner)
