"""Lists processed page by page: each page is reduced (parsed, or to a node name) before the next is
fetched, nothing reaches the table before the whole list is in, and the result is the one of the
list taken whole — through the real HTTP client against the API-server stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from aiohttp.test_utils import TestServer
from kubernetes_asyncio import client as k8s

from extender.errors import KubeError
from extender.sources.kube import (
    NODEFEATURES_PATH,
    NODES_PATH,
    Backoff,
    KubeFeatures,
    ListPage,
    ListResult,
    ListsInPages,
    Reflector,
    WatchEvent,
)
from extender.sources.kubeclient import ApiClientTransport
from tests.kube_apiserver import FakeApiServer
from tests.kube_objects import node_object, nodefeature_object
from tests.waiting import eventually, finishes


class PagedTransport:
    """Pages from a script: a list of pages, or an exception to raise in place of a page; records,
    when each page is asked for, how many objects the reflector had prepared until then."""

    def __init__(self, lists: list[list[list[dict[str, Any]] | Exception]]) -> None:
        self.lists = lists
        self.prepared_when_asked: list[int] = []
        self.prepared = 0

    async def list(self, path: str, *, field_selector: str = "") -> ListResult:
        raise AssertionError("a paged transport is listed page by page")

    async def list_pages(self, path: str, *, field_selector: str = "") -> AsyncGenerator[ListPage, None]:
        for page in self.lists.pop(0):
            self.prepared_when_asked.append(self.prepared)
            await asyncio.sleep(0)
            if isinstance(page, Exception):
                raise page
            yield ListPage(page, "7")

    async def watch(
        self, path: str, resource_version: str, *, field_selector: str = ""
    ) -> AsyncIterator[WatchEvent]:
        await asyncio.Event().wait()
        yield WatchEvent(type="BOOKMARK", object={})  # never reached


def _objs(*names: str) -> list[dict[str, Any]]:
    return [{"metadata": {"name": n}} for n in names]


async def test_each_page_is_prepared_before_the_next_is_fetched_and_replaced_once() -> None:
    transport = PagedTransport([[_objs("a", "b"), _objs("c", "d"), _objs("e")]])
    assert isinstance(transport, ListsInPages)
    replaced: list[list[str]] = []

    def prepare(obj: dict[str, Any]) -> str:
        transport.prepared += 1
        return str(obj["metadata"]["name"])

    r = Reflector(transport, NODES_PATH, replaced.append, lambda kind, obj: None, prepare=prepare)
    task = asyncio.create_task(r.run())
    await finishes(r.synced.wait(), "synced after the list")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert transport.prepared_when_asked == [0, 2, 4]
    assert replaced == [["a", "b", "c", "d", "e"]]
    assert r.resource_version == "7"


async def test_a_list_that_fails_half_way_changes_nothing_and_is_retried() -> None:
    transport = PagedTransport(
        [[_objs("a", "b"), KubeError("GET: 500 etcdserver: request timed out", 500)], [_objs("x")]]
    )
    replaced: list[list[dict[str, Any]]] = []
    r = Reflector(transport, NODES_PATH, replaced.append, lambda kind, obj: None, Backoff(0.001, 0.002))
    task = asyncio.create_task(r.run())
    await finishes(r.synced.wait(), "synced after the second list")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert replaced == [_objs("x")]  # without prepare: the raw objects, only of the list that worked
    assert r.errors == 1 and "request timed out" in r.last_error


class WholeLists:
    """The same API client without ``list_pages``: lists taken whole, as before."""

    def __init__(self, inner: ApiClientTransport) -> None:
        self.inner = inner

    async def list(self, path: str, *, field_selector: str = "") -> ListResult:
        return await self.inner.list(path, field_selector=field_selector)

    def watch(
        self, path: str, resource_version: str, *, field_selector: str = ""
    ) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(path, resource_version, field_selector=field_selector)


def _state(source: KubeFeatures) -> tuple[Any, ...]:
    table = {n: source.table.node_features(n) for n in source.table.node_names()}
    return table, dict(source.object_errors), sorted(source._objects.object_keys())


async def test_paged_and_whole_lists_give_the_same_table_and_errors() -> None:
    server = FakeApiServer()
    for i in range(7):
        if i != 5:  # n5 has a NodeFeature and no Node
            await server.put(NODES_PATH, node_object(f"n{i}"))
        await server.put(NODEFEATURES_PATH, nodefeature_object(f"n{i}", f"n{i}", ["kvm", f"m{i}"]))
    await server.put(NODEFEATURES_PATH, nodefeature_object("n1-extra", "n1", ["extra"], namespace="other"))
    bad = nodefeature_object("n3", "n3", [])
    bad["spec"]["features"]["flags"] = "not a map"
    await server.put(NODEFEATURES_PATH, bad)
    async with TestServer(server.app) as ts:
        api = k8s.ApiClient(configuration=k8s.Configuration(host=str(ts.make_url("")).rstrip("/")))
        paged = ApiClientTransport(api, page_size=2, watch_seconds=1, request_timeout=60)
        assert isinstance(paged, ListsInPages) and not isinstance(WholeLists(paged), ListsInPages)
        sources = [KubeFeatures(paged), KubeFeatures(WholeLists(paged))]
        for s in sources:
            assert s.node_reflector is not None
            s._replace_nodes((await s.node_reflector._list())[0])
            items, _ = await s.features._list()
            s._replace_features(items)
        assert _state(sources[0]) == _state(sources[1])
        assert "node-feature-discovery/n3" in sources[0].object_errors
        assert sorted(sources[0].table.node_names()) == ["n0", "n1", "n2", "n4", "n6"]

        # a relist: unchanged objects are kept as they are, changed and deleted ones follow
        await server.put(NODEFEATURES_PATH, nodefeature_object("n3", "n3", ["fixed"]))
        await server.delete(NODEFEATURES_PATH, "other", "n1-extra")
        kept = sources[0]._objects.get("node-feature-discovery", "n0")
        for s in sources:
            items, _ = await s.features._list()
            s._replace_features(items)
        assert _state(sources[0]) == _state(sources[1])
        assert sources[0]._objects.get("node-feature-discovery", "n0") is kept
        assert sources[0].object_errors == {}
        await api.close()


async def test_list_pages_hands_over_each_page_of_the_real_client() -> None:
    server = FakeApiServer()
    for i in range(5):
        await server.put(NODES_PATH, node_object(f"n{i}"))
    async with TestServer(server.app) as ts:
        api = k8s.ApiClient(configuration=k8s.Configuration(host=str(ts.make_url("")).rstrip("/")))
        transport = ApiClientTransport(api, page_size=2, request_timeout=60)
        pages = [p async for p in transport.list_pages(NODES_PATH)]
        assert [[o["metadata"]["name"] for o in p.items] for p in pages] == [
            ["n0", "n1"],
            ["n2", "n3"],
            ["n4"],
        ]
        assert {p.resource_version for p in pages} == {str(server.rv)}
        whole = await transport.list(NODES_PATH)
        assert whole.items == [o for p in pages for o in p.items]
        assert whole.resource_version == str(server.rv)
        source = KubeFeatures(transport, backoff=lambda: Backoff(0.01, 0.02))
        task = asyncio.create_task(source.run())
        await finishes(source.wait_ready(), "ready after paged lists")
        await eventually(lambda: source.node_reflector is not None and source.node_reflector.lists == 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()
