"""Startup and shutdown of the configured sources (``open_sources``, one AsyncExitStack): what was
started is stopped in reverse order, also when a later source fails to start, and a cleanup that
fails is reported, not swallowed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from extender.config import load_config
from extender.errors import ConfigError
from extender.sources import from_config
from extender.sources.registry.transport import AiohttpTransport

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _ours() -> set[str]:
    """Names of the tasks the sources started that are still running."""
    return {t.get_name() for t in asyncio.all_tasks() if not t.done()} & {"features", "specs"}


async def test_pollers_run_while_open_and_stop_on_exit() -> None:
    config = load_config(
        None,
        {
            "features.path": str(EXAMPLES / "nodefeatures"),
            "specs.images": str(EXAMPLES / "images.yaml"),
            "features.reloadSeconds": 30,
            "specs.reloadSeconds": 30,
        },
    )
    async with from_config.open_sources(config) as sources:
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
