"""``serve`` with ``features.source: kubernetes``: a kubeconfig pointing at the API-server stand-in,
not ready until the initial lists are in, then filtering on what the cluster publishes and
following its changes; a kubeconfig that cannot be used is a configuration error (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from extender.cli.main import main
from extender.sources.kube import NODEFEATURES_PATH, NODES_PATH
from tests.distribution import Distribution
from tests.file_sources import SPEC_A, put
from tests.kube_apiserver import FakeApiServer
from tests.kube_objects import kubeconfig, node_object, nodefeature_object
from tests.registry_specs import pushed_with_spec
from tests.serving import serving
from tests.waiting import until

FILTER = {
    "Pod": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "reg/dpdk:1"}]}},
    "NodeNames": ["n0", "n1", "n2"],
}


async def test_serve_from_the_kubernetes_api(tmp_path: Path) -> None:
    server = FakeApiServer()
    await server.put(NODES_PATH, node_object("n0"))
    await server.put(NODES_PATH, node_object("n1"))
    await server.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["vfio-pci"]))
    await server.put(NODEFEATURES_PATH, nodefeature_object("n1", "n1", ["nvidia"]))
    put(tmp_path / "dpdk.yaml", SPEC_A)
    put(tmp_path / "images.yaml", "images:\n  reg/dpdk:1: dpdk.yaml\n")
    server.fail_next = 2  # the first list fails: not ready until a list succeeds
    async with TestServer(server.app) as ts:
        kc = kubeconfig(tmp_path / "kubeconfig", str(ts.make_url("")).rstrip("/"))
        config_doc = {
            "listen": {"port": 0},
            "features": {"source": "kubernetes", "kubeconfig": str(kc)},
            "specs": {"images": "images.yaml", "reloadSeconds": 0},
        }
        async with serving(config_doc, tmp_path) as base, aiohttp.ClientSession() as session:

            async def status(path: str) -> int:
                async with session.get(f"{base}{path}") as resp:
                    return resp.status

            async def names() -> list[str]:
                async with session.post(f"{base}/filter", data=orjson.dumps(FILTER)) as resp:
                    out = await resp.json()
                    return list(out["NodeNames"] or [])

            async def ready() -> bool:
                return await status("/readyz") == 200

            await until(ready, "/readyz answers 200 (a list succeeded)", interval=0.01)
            assert await names() == ["n0"]

            # the cluster changes: n2 appears with vfio-pci, n0's NodeFeature loses it
            await server.put(NODES_PATH, node_object("n2"))
            await server.put(NODEFEATURES_PATH, nodefeature_object("n2", "n2", ["vfio-pci"]))
            await server.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["kvm"]))
            result: list[str] = []

            async def settled() -> bool:
                result[:] = await names()
                return result == ["n2"]

            await until(settled, lambda: f"only n2 passes; passing: {result}", interval=0.01)
            # a deleted Node leaves the table
            await server.delete(NODES_PATH, "", "n2")

            async def none_pass() -> bool:
                result[:] = await names()
                return result == []

            await until(none_pass, lambda: f"no node passes; passing: {result}", interval=0.01)
    assert server.requests, "the extender never called the API server"


def test_unusable_kubeconfig_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kc").write_text("not: [a kubeconfig")
    args = ["serve", "--port", "0", "--features-source", "kubernetes", "--kubeconfig", str(tmp_path / "kc")]
    assert main(args) == 2
    assert "features.kubeconfig" in capsys.readouterr().err


async def test_prefetch_warms_the_registry_cache_before_any_filter(
    tmp_path: Path, distribution: Distribution
) -> None:
    """features from Kubernetes, specs from the registry, prefetch on: a pod created for
    compat-scheduler has its image's spec fetched before the scheduler asks; the filter call that
    follows makes no registry request."""
    image = await pushed_with_spec(distribution)
    server = FakeApiServer()
    await server.put(NODES_PATH, node_object("n0"))
    await server.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["vfio-pci"]))
    async with TestServer(server.app) as ts:
        kc = kubeconfig(tmp_path / "kubeconfig", str(ts.make_url("")).rstrip("/"))
        config_doc = {
            "listen": {"port": 0},
            "features": {"source": "kubernetes", "kubeconfig": str(kc)},
            "specs": {"source": "registry"},
            "prefetch": {"enabled": True},
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "solver-0", "namespace": "hpc"},
            "spec": {"schedulerName": "compat-scheduler", "containers": [{"name": "c", "image": image}]},
        }
        async with serving(config_doc, tmp_path) as base, aiohttp.ClientSession() as session:

            async def metric(name: str) -> float:
                async with session.get(f"{base}/metrics") as resp:
                    text = await resp.text()
                m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
                return float(m.group(1)) if m else 0.0

            await server.put("/api/v1/pods", pod)
            specs_cached = 'compat_extender_cache_entries{cache="specs"}'

            async def prefetched() -> bool:
                return await metric(specs_cached) == 1.0

            await until(prefetched, "the spec is prefetched")
            lookups = 'compat_extender_spec_lookups_total{result="spec"}'
            assert await metric(lookups) == 1.0
            body = {"Pod": pod, "NodeNames": ["n0"]}
            async with session.post(f"{base}/filter", data=orjson.dumps(body)) as resp:
                out = await resp.json()
            assert out["Error"] == ""
            # the filter was answered from the cache the prefetch filled: the referrers cache hit
            hits = 'compat_extender_cache_lookups_total{cache="tags",result="hit"}'
            assert await metric(hits) >= 1.0
            async with session.get(f"{base}/debug/sources") as resp:
                sources = (await resp.json())["sources"]
            assert sources["prefetch"]["errors"] == {} and sources["prefetch"]["reloads"] >= 1


WITHOUT_SPEC = {
    "Pod": {"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
    "NodeNames": ["n0", "n1", "n2"],
}


async def _cluster(tmp_path: Path) -> FakeApiServer:
    server = FakeApiServer()
    await server.put(NODES_PATH, node_object("n0"))
    await server.put(NODES_PATH, node_object("n1"))
    await server.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["vfio-pci"]))
    await server.put(NODEFEATURES_PATH, nodefeature_object("n1", "n1", ["nvidia"]))
    put(tmp_path / "dpdk.yaml", SPEC_A)
    put(tmp_path / "images.yaml", "images:\n  reg/dpdk:1: dpdk.yaml\n")
    return server


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def status(self, path: str) -> int:
        async with self.session.get(f"{self.base}{path}") as resp:
            return resp.status

    async def filter(self, body: object) -> dict[str, Any]:
        async with self.session.post(f"{self.base}/filter", data=orjson.dumps(body)) as resp:
            assert resp.status == 200
            out: dict[str, Any] = await resp.json()
            return out

    async def metric(self, name: str) -> float | None:
        async with self.session.get(f"{self.base}/metrics") as resp:
            m = re.search(rf"^{re.escape(name)} (\S+)$", await resp.text(), re.M)
        return float(m.group(1)) if m else None


async def test_error_before_the_initial_list_completes_then_answers(tmp_path: Path) -> None:
    """On Kubernetes, until the initial lists are in, a pod with spec'd images gets Error (the
    scheduler retries it with backoff) instead of every node rejected as having no NodeFeature; a
    pod without specs is answered at once."""
    server = await _cluster(tmp_path)
    server.answer_lists.clear()  # the API server holds the lists: the sync cannot complete
    async with TestServer(server.app) as ts:
        kc = kubeconfig(tmp_path / "kubeconfig", str(ts.make_url("")).rstrip("/"))
        config_doc = {
            "listen": {"port": 0},
            "features": {"source": "kubernetes", "kubeconfig": str(kc)},
            "specs": {"images": "images.yaml", "reloadSeconds": 0},
        }
        async with serving(config_doc, tmp_path) as base, aiohttp.ClientSession() as session:
            client = Client(session, base)
            await until(lambda: server.held_lists > 0, "the extender's initial list is in flight")
            out = await client.filter(FILTER)
            assert out["NodeNames"] is None
            assert (
                out["Error"]
                == "node features are not synced yet: the initial NodeFeature sync is not complete"
            )
            unrelated = await client.filter(WITHOUT_SPEC)
            assert unrelated["Error"] == "" and unrelated["NodeNames"] == ["n0", "n1", "n2"]
            assert await client.status("/readyz") == 503

            server.answer_lists.set()

            async def ready() -> bool:
                return await client.status("/readyz") == 200

            await until(ready, "/readyz answers 200 once the lists are in", interval=0.01)
            out = await client.filter(FILTER)
            assert out["Error"] == "" and out["NodeNames"] == ["n0"]
            assert (
                out["FailedAndUnresolvableNodes"]["n2"] == "node has no NodeFeature: its features are unknown"
            )


async def test_stale_while_the_api_server_is_away_then_fresh_after_its_restart(tmp_path: Path) -> None:
    """features.maxStaleSeconds through serve: the API server goes away (stopped), the NodeFeature
    watch fails for longer than the bound, pods with specs get Error saying so while others flow
    and /readyz stays 200; the API server comes back on the same port and, without any change, the
    resumed watch makes the features fresh again."""
    server = await _cluster(tmp_path)
    url = await server.start()
    try:
        kc = kubeconfig(tmp_path / "kubeconfig", url)
        config_doc = {
            "listen": {"port": 0},
            "features": {"source": "kubernetes", "kubeconfig": str(kc), "maxStaleSeconds": 0.5},
            "specs": {"images": "images.yaml", "reloadSeconds": 0},
        }
        async with serving(config_doc, tmp_path) as base, aiohttp.ClientSession() as session:
            client = Client(session, base)
            last: dict[str, Any] = {}

            async def error_says(fragment: str) -> bool:
                last.update(await client.filter(FILTER))
                return fragment in str(last["Error"])

            async def answered() -> bool:
                last.update(await client.filter(FILTER))
                return bool(last["Error"] == "" and last["NodeNames"] == ["n0"])

            await until(answered, lambda: f"n0 passes once synced; last answer {last}")
            assert await client.metric("compat_extender_features_stale") == 0.0

            await server.stop()
            await until(
                lambda: error_says("node features may be stale: the NodeFeature watch has been failing for"),
                lambda: f"the filter says the features are stale; last answer {last}",
            )
            assert "longer than features.maxStaleSeconds (0.5s); last error: KubeError" in last["Error"]
            unrelated = await client.filter(WITHOUT_SPEC)
            assert unrelated["Error"] == "" and unrelated["NodeNames"] == ["n0", "n1", "n2"]
            assert await client.status("/readyz") == 200
            assert await client.metric("compat_extender_features_stale") == 1.0
            async with session.get(f"{base}/debug/sources") as resp:
                errors = (await resp.json())["sources"]["features"]["errors"]
            assert "(stale: over features.maxStaleSeconds)" in errors[f"watch {NODEFEATURES_PATH}"]

            assert await server.start() == url
            await until(answered, lambda: f"fresh again after the restart; last answer {last}")
            assert await client.metric("compat_extender_features_stale") == 0.0
    finally:
        await server.stop()
