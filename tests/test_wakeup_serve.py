"""The wake-up end to end (``wakeUp.enabled``), against the API-server stand-in: serve watches
NodeFeatures, Nodes and pending pods there, and a NodeFeature change that makes a node fit the
waiting pod is answered by exactly one PATCH of that Node carrying only the extender's annotation.
An unrelated change writes nothing, a burst writes each node once, and a refused write (403) is
counted while /filter keeps answering."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from extender.sources.kube import NODEFEATURES_PATH, NODES_PATH
from extender.sources.prefetch import PODS_PATH
from extender.sources.wakeup import ANNOTATION
from tests.file_sources import SPEC_A, put
from tests.kube_apiserver import FakeApiServer
from tests.kube_objects import kubeconfig, node_object, nodefeature_object
from tests.serving import serving
from tests.waiting import until

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "waiting", "namespace": "default"},
    "spec": {"schedulerName": "compat-scheduler", "containers": [{"name": "c", "image": "reg/dpdk:1"}]},
}


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_a_flip_wakes_the_pod_with_one_annotation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeApiServer()
    for name, modules in (("n0", ["kvm"]), ("n1", ["nvidia"])):
        await server.put(NODES_PATH, node_object(name))
        await server.put(NODEFEATURES_PATH, nodefeature_object(name, name, modules))
    await server.put(PODS_PATH, POD)
    put(tmp_path / "dpdk.yaml", SPEC_A)  # needs kernel.loadedmodule vfio-pci
    put(tmp_path / "images.yaml", "images:\n  reg/dpdk:1: dpdk.yaml\n")
    async with TestServer(server.app) as ts:
        kc = kubeconfig(tmp_path / "kubeconfig", str(ts.make_url("")).rstrip("/"))
        config_doc = {
            "listen": {"port": 0},
            "features": {"source": "kubernetes", "kubeconfig": str(kc)},
            "specs": {"images": "images.yaml", "reloadSeconds": 0},
            "prefetch": {"enabled": True, "schedulerNames": ["compat-scheduler"]},
            "wakeUp": {"enabled": True, "intervalSeconds": 0.1, "maxWritesPerInterval": 2},
        }
        async with serving(config_doc, tmp_path) as base, aiohttp.ClientSession() as session:
            text = {"metrics": ""}

            async def scraped(name: str) -> float:
                async with session.get(f"{base}/metrics") as resp:
                    text["metrics"] = await resp.text()
                return metric(text["metrics"], name)

            async def filtered() -> Any:
                body = {"Pod": POD, "NodeNames": sorted(n for _, n in server.stores[NODES_PATH].objects)}
                async with session.post(f"{base}/filter", data=orjson.dumps(body)) as resp:
                    assert resp.status == 200
                    return await resp.json()

            async def looked_up() -> bool:  # the prefetcher saw the pod and resolved its image
                return await scraped('compat_extender_spec_lookups_total{result="spec"}') >= 1

            await until(looked_up, lambda: f"the pod's image is looked up: {text['metrics']}")
            assert (await filtered())["NodeNames"] in (None, [])  # the pod waits: nothing fits

            # an unrelated change: n1 gains a module, still without vfio-pci
            await server.put(NODEFEATURES_PATH, nodefeature_object("n1", "n1", ["nvidia", "kvm"]))

            async def compared(reason: str, at_least: float) -> bool:
                return (
                    await scraped(f'compat_extender_wakeups_skipped_total{{reason="{reason}"}}') >= at_least
                )

            await until(lambda: compared("no_flip", 1), lambda: f"n1 compared: {text['metrics']}")
            assert server.patches == []

            # the flip: n0 gains vfio-pci and now fits the waiting pod
            await server.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["kvm", "vfio-pci"]))
            await until(lambda: len(server.patches) >= 1, "n0 is annotated")
            [(path, patch)] = server.patches
            assert path == "/api/v1/nodes/n0"
            assert list(patch) == ["metadata"] and list(patch["metadata"]) == ["annotations"]
            assert list(patch["metadata"]["annotations"]) == [ANNOTATION]
            assert re.fullmatch(
                r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", patch["metadata"]["annotations"][ANNOTATION]
            )
            stored = server.stores[NODES_PATH].objects[("", "n0")]
            assert stored["metadata"]["annotations"] == patch["metadata"]["annotations"]
            assert (await filtered())["NodeNames"] == ["n0"]

            # n0 changes again but fitted already: compared, not written (exactly one write so far)
            await server.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["vfio-pci"]))
            await until(lambda: compared("no_flip", 2), lambda: f"n0 compared again: {text['metrics']}")
            assert len(server.patches) == 1

            # a burst: five nodes start to fit at once; each is written once (the cap: test_wakeup.py)
            burst = [f"b{i}" for i in range(5)]
            for name in burst:
                await server.put(NODES_PATH, node_object(name))
                await server.put(NODEFEATURES_PATH, nodefeature_object(name, name, ["vfio-pci"]))
            await until(lambda: len(server.patches) >= 6, lambda: f"the burst is written: {server.patches}")
            assert sorted(p.rsplit("/", 1)[-1] for p, _ in server.patches[1:]) == burst
            assert await scraped('compat_extender_wakeups_total{result="sent"}') == 6

            # writes are refused (RBAC, the admission policy): counted and logged, serving goes on
            server.refuse_patches = 403
            with caplog.at_level(logging.WARNING, logger="extender.sources.wakeup"):
                await server.put(NODEFEATURES_PATH, nodefeature_object("n1", "n1", ["vfio-pci"]))

                async def refused() -> bool:
                    return await scraped('compat_extender_wakeups_total{result="refused"}') >= 1

                await until(refused, lambda: f"the refusal is counted: {text['metrics']}")
            assert any("refused" in r.getMessage() and "n1" in r.getMessage() for r in caplog.records)
            assert len(server.patches) == 6
            assert "n1" in (await filtered())["NodeNames"]
