"""``serve`` with ``features.source: kubernetes``: a kubeconfig pointing at the API-server stand-in,
not ready until the initial lists are in, then filtering on what the cluster publishes and
following its changes; a kubeconfig that cannot be used is a configuration error (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path

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
