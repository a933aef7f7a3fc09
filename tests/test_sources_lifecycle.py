"""Startup and shutdown of the configured sources (``open_sources``, one AsyncExitStack): what was
started is stopped in reverse order, also when a later source fails to start, and a cleanup that
fails is reported, not swallowed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from extender.config import load_config
from extender.errors import ConfigError
from extender.sources import from_config
from extender.sources.kube import NODEFEATURES_PATH, NODES_PATH
from extender.sources.prefetch import Prefetcher
from extender.sources.registry.transport import AiohttpTransport
from tests.helpers import example_files_config
from tests.kube_apiserver import FakeApiServer
from tests.kube_objects import kubeconfig, node_object, nodefeature_object
from tests.waiting import eventually

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _ours() -> set[str]:
    """Names of the tasks the sources started that are still running."""
    return {t.get_name() for t in asyncio.all_tasks() if not t.done()} & {"features", "specs"}


async def test_pollers_run_while_open_and_stop_on_exit() -> None:
    async with from_config.open_sources(example_files_config(reload_seconds=30)) as sources:
        assert _ours() == {"features", "specs"}
        assert len(sources.features.table) > 0 and sources.features.ready
    assert _ours() == set()


async def test_a_source_that_fails_to_start_stops_the_ones_started_before(tmp_path: Path) -> None:
    config = load_config(
        None,
        {
            "features.path": str(EXAMPLES / "nodefeatures"),
            "features.reloadSeconds": 30,
            "specs.images": str(tmp_path / "missing.yaml"),
        },
    )
    with pytest.raises(ConfigError, match=r"specs\.images"):
        async with from_config.open_sources(config):
            raise AssertionError("not reached: the spec source cannot start")
    assert _ours() == set()


async def test_a_failing_cleanup_propagates_after_the_others_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []

    async def broken_close(self: AiohttpTransport) -> None:
        closed.append("transport")
        raise RuntimeError("the session would not close")

    monkeypatch.setattr(AiohttpTransport, "close", broken_close)
    config = load_config(
        None,
        {
            "features.path": str(EXAMPLES / "nodefeatures"),
            "features.reloadSeconds": 30,
            "specs.source": "registry",
        },
    )
    with pytest.raises(RuntimeError, match="would not close"):
        async with from_config.open_sources(config):
            assert _ours() == {"features"}
    assert closed == ["transport"]
    assert _ours() == set()  # the poller started before the transport was still stopped


async def test_the_prefetcher_asks_for_the_platforms_of_the_clusters_nodes(tmp_path: Path) -> None:
    """prefetch.enabled: the prefetcher looks images up for the platforms /filter will ask (the
    feature table's, here told by the Nodes' labels), not only registry.platform's."""
    server = FakeApiServer()
    for name, arch in (("n-amd", "amd64"), ("n-arm", "arm64")):
        node = node_object(name)
        node["metadata"]["labels"] = {"kubernetes.io/os": "linux", "kubernetes.io/arch": arch}
        await server.put(NODES_PATH, node)
        await server.put(NODEFEATURES_PATH, nodefeature_object(name, name, ["kvm"]))
    async with TestServer(server.app) as ts:
        kc = kubeconfig(tmp_path / "kubeconfig", str(ts.make_url("")).rstrip("/"))
        config = load_config(
            None,
            {
                "features.source": "kubernetes",
                "features.kubeconfig": str(kc),
                "specs.images": str(EXAMPLES / "images.yaml"),
                "specs.reloadSeconds": 0,
                "prefetch.enabled": True,
            },
        )
        async with from_config.open_sources(config) as sources:
            await eventually(lambda: sources.features.ready and len(sources.features.table) == 2)
            (prefetcher,) = [s for name, s in sources.watched if name == "prefetch"]
            assert isinstance(prefetcher, Prefetcher)
            assert tuple(prefetcher.platforms()) == ("linux/amd64/v1", "linux/arm64/v8")
