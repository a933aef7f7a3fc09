"""Run ``compat-extender serve`` in this event loop for a test: write the config, start, wait until
it listens, and stop it (as SIGTERM would) on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from extender.cli import serve
from extender.config import load_config
from tests.waiting import SAFETY_SECONDS, finishes


@contextlib.asynccontextmanager
async def serving(config_doc: dict[str, Any], directory: Path) -> AsyncIterator[str]:
    """The main listener's base URL while ``serve`` runs on ``config_doc`` (written to
    ``directory/extender.yaml``, so relative paths are relative to ``directory``)."""
    path = directory / "extender.yaml"
    path.write_text(json.dumps(config_doc))
    stop = asyncio.Event()
    listening: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(load_config(path), stop=stop, on_listening=listening.set_result))
    waiting: list[asyncio.Future[Any]] = [task, listening]
    done, _ = await asyncio.wait(waiting, timeout=SAFETY_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    assert listening in done, task.exception() if task.done() else "serve did not start listening"
    try:
        yield listening.result()[0]
    finally:
        stop.set()
        await finishes(task, "serve stops after stop is set")
