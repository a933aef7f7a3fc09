"""The NodeFeature source against a protocol-level stand-in of the API server, through the real
HTTP client (kubernetes-asyncio's ApiClient): paged lists, watches, bookmarks, 410 Gone, cut
streams, 5xx — and afterwards the table always equals the cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer
from kubernetes_asyncio import client as k8s

from extender.features.nodefeature import NODE_NAME_LABEL
from extender.sources.kube import NODEFEATURES_PATH, NODES_PATH, Backoff, KubeFeatures
from extender.sources.kubeclient import ApiClientTransport
from tests.kube_apiserver import FakeApiServer
from tests.kube_objects import node_object, nodefeature_object
from tests.kube_watching import watching
from tests.waiting import eventually, finishes


class Cluster:
    def __init__(self, server: FakeApiServer, source: KubeFeatures) -> None:
        self.server = server
        self.source = source

    def modules(self, node_name: str) -> set[str] | None:
        f = self.source.table.node_features(node_name)
        return None if f is None else set(f.flags.get("kernel.loadedmodule", ()))

    def expected(self) -> dict[str, set[str]]:
        """What the table must hold: merged modules of NodeFeatures whose Node exists."""
        nodes = {k[1] for k in self.server.stores[NODES_PATH].objects}
        out: dict[str, set[str]] = {}
        for obj in self.server.stores[NODEFEATURES_PATH].objects.values():
            n = obj["metadata"]["labels"][NODE_NAME_LABEL]
            if n in nodes:
                out.setdefault(n, set()).update(
                    obj["spec"]["features"]["flags"]["kernel.loadedmodule"]["elements"]
                )
        return out

    def actual(self) -> dict[str, set[str]]:
        return {n: self.modules(n) or set() for n in self.source.table.node_names()}


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    server = FakeApiServer()
    for i in range(5):
        await server.put(NODES_PATH, node_object(f"n{i}"))
        await server.put(NODEFEATURES_PATH, nodefeature_object(f"n{i}", f"n{i}", ["kvm", f"m{i}"]))
    async with watching(server) as source:
        yield Cluster(server, source)


async def test_initial_paged_list_then_ready(cluster: Cluster) -> None:
    await finishes(cluster.source.wait_ready(), "ready after the initial lists")
    assert cluster.source.ready
    assert cluster.actual() == cluster.expected() and len(cluster.actual()) == 5
    lists = [r for r in cluster.server.requests if "watch" not in r and "nodefeatures" in r]
    assert len(lists) == 3  # 5 objects, pages of 2
    assert any("continue=" in r for r in lists)


async def test_watch_events_reach_the_table(cluster: Cluster) -> None:
    await cluster.source.wait_ready()
    srv = cluster.server
    await srv.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["vfio_pci"]))
    await srv.put(
        NODEFEATURES_PATH, nodefeature_object("n0-extra", "n0", ["nvidia"], namespace="gpu-operator")
    )
    await eventually(lambda: cluster.modules("n0") == {"vfio_pci", "nvidia"})
    await srv.delete(NODEFEATURES_PATH, "node-feature-discovery", "n1")
    await eventually(lambda: "n1" not in cluster.source.table)
    # a deleted Node leaves the table although its NodeFeature is still there
    await srv.delete(NODES_PATH, "", "n2")
    await eventually(lambda: "n2" not in cluster.source.table)
    await srv.put(NODES_PATH, node_object("n2"))
    await eventually(lambda: cluster.modules("n2") == {"kvm", "m2"})
    # a NodeFeature for a node that does not exist (yet) stays out
    await srv.put(NODEFEATURES_PATH, nodefeature_object("n9", "n9", ["kvm"]))
    await srv.bookmark()
    await eventually(lambda: cluster.source.features.resource_version == str(srv.rv))
    assert "n9" not in cluster.source.table
    assert cluster.actual() == cluster.expected()


async def test_gone_relists_and_reconciles(cluster: Cluster) -> None:
    await cluster.source.wait_ready()
    srv = cluster.server
    lists_before = cluster.source.features.lists
    # changes the extender does not see, then compaction: its resourceVersion is now too old
    srv.paused = True
    await srv.delete(NODEFEATURES_PATH, "node-feature-discovery", "n3")
    await srv.put(NODEFEATURES_PATH, nodefeature_object("n4", "n4", ["i40e"]))
    await srv.compact()
    await srv.resume()
    await eventually(lambda: cluster.source.features.lists > lists_before)
    await eventually(lambda: cluster.actual() == cluster.expected())
    assert "n3" not in cluster.source.table and cluster.modules("n4") == {"i40e"}


async def test_a_watch_cut_mid_event_while_features_change(cluster: Cluster) -> None:
    await cluster.source.wait_ready()
    srv = cluster.server
    errors_before = cluster.source.features.errors
    srv.cut_next_watch = True
    for i in range(5):
        await srv.put(NODEFEATURES_PATH, nodefeature_object(f"n{i}", f"n{i}", ["kvm", f"new{i}"]))
    await eventually(lambda: cluster.actual() == cluster.expected())
    assert cluster.source.features.errors > errors_before  # the cut was noticed, then resumed
    assert "in the middle of an event" in cluster.source.features.last_error


async def test_server_errors_back_off_and_recover(cluster: Cluster) -> None:
    await cluster.source.wait_ready()
    srv = cluster.server
    srv.fail_next = 6
    await srv.compact()  # force reconnects, which fail a few times first
    await srv.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["after-outage"]))
    await eventually(lambda: cluster.modules("n0") == {"after-outage"})
    assert "500" in cluster.source.features.last_error or "500" in (
        cluster.source.node_reflector.last_error if cluster.source.node_reflector else ""
    )
    assert cluster.actual() == cluster.expected()


async def test_a_malformed_update_keeps_the_last_good_features(cluster: Cluster) -> None:
    await cluster.source.wait_ready()
    srv = cluster.server
    bad = nodefeature_object("n0", "n0", [])
    bad["spec"]["features"]["flags"] = "not a map"
    await srv.put(NODEFEATURES_PATH, bad)
    await eventually(lambda: "node-feature-discovery/n0" in cluster.source.errors)
    assert cluster.modules("n0") == {"kvm", "m0"}
    await srv.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["fixed"]))
    await eventually(lambda: cluster.modules("n0") == {"fixed"})
    assert cluster.source.errors == {}


async def test_not_ready_while_the_api_is_down() -> None:
    server = FakeApiServer()
    server.fail_next = 1000
    async with TestServer(server.app) as ts:
        api = k8s.ApiClient(configuration=k8s.Configuration(host=str(ts.make_url("")).rstrip("/")))
        source = KubeFeatures(
            ApiClientTransport(api, request_timeout=60), backoff=lambda: Backoff(0.01, 0.02)
        )
        task = asyncio.create_task(source.run())
        await eventually(lambda: source.features.errors >= 3)
        assert not source.ready
        server.fail_next = 0
        await finishes(source.wait_ready(), "ready once the API answers")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()
