"""A :class:`KubeFeatures` source running against the API-server stand-in (tests/kube_apiserver.py)
over the real kubernetes-asyncio transport, with small pages and short backoffs: what the tests of
the Kubernetes source share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp.test_utils import TestServer
from kubernetes_asyncio import client as k8s

from extender.sources.kube import Backoff, KubeFeatures
from extender.sources.kubeclient import ApiClientTransport
from tests.kube_apiserver import FakeApiServer


@contextlib.asynccontextmanager
async def watching(server: FakeApiServer) -> AsyncIterator[KubeFeatures]:
    """The source, running (list, then watch) until the block ends."""
    async with TestServer(server.app) as ts:
        api = k8s.ApiClient(configuration=k8s.Configuration(host=str(ts.make_url("")).rstrip("/")))
        transport = ApiClientTransport(api, page_size=2, watch_seconds=1, request_timeout=60)
        source = KubeFeatures(transport, backoff=lambda: Backoff(initial=0.01, maximum=0.05))
        task = asyncio.create_task(source.run())
        try:
            yield source
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await api.close()
