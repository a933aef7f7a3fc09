"""Run ``compat-extender serve`` in this event loop for a test: write the config, start, wait until
it listens, and stop it (as SIGTERM would) on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from extender.cli.server import serve
from extender.config import Config, load_config
from tests.waiting import SAFETY_SECONDS, finishes


@contextlib.asynccontextmanager
async def serving_config(config: Config) -> AsyncIterator[list[str]]:
    """Every listener's base URL (main first, then debug if it has its own) while ``serve`` runs on
    ``config``; stopped as SIGTERM would stop it on the way out."""
    stop = asyncio.Event()
    listening: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(config, stop=stop, on_listening=listening.set_result))
    try:
        waiting: list[asyncio.Future[Any]] = [task, listening]
        done, _ = await asyncio.wait(waiting, timeout=SAFETY_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        assert listening in done, task.exception() if task.done() else "serve did not start listening"
        yield listening.result()
    finally:
        stop.set()
        await finishes(task, "serve stops after stop is set")


@contextlib.asynccontextmanager
async def serving(config_doc: dict[str, Any], directory: Path) -> AsyncIterator[str]:
    """The main listener's base URL while ``serve`` runs on ``config_doc`` (written to
    ``directory/extender.yaml``, so relative paths are relative to ``directory``)."""
    path = directory / "extender.yaml"
    path.write_text(json.dumps(config_doc))
    async with serving_config(load_config(path)) as urls:
        yield urls[0]
