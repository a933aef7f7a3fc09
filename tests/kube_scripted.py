"""A scripted KubeTransport and a clock a test moves by hand: the reflectors' logic without a
server and without waiting for time to pass (tests/test_kube_recovery.py, tests/test_readiness.py).
The protocol-level stand-in of the API server is tests/kube_apiserver.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from extender.errors import KubeError
from extender.sources.kube import ListResult, WatchEvent


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Scripted:
    """A KubeTransport playing a script: each list or watch takes the next step of its queue (an
    exception to raise, a list result, or watch events); an empty queue waits for the next step."""

    lists: asyncio.Queue[Exception | ListResult] = field(default_factory=asyncio.Queue)
    watches: asyncio.Queue[Exception | list[WatchEvent]] = field(default_factory=asyncio.Queue)
    calls: list[str] = field(default_factory=list)

    async def list(self, path: str, *, field_selector: str = "") -> ListResult:
        self.calls.append("list")
        step = await self.lists.get()
        if isinstance(step, Exception):
            raise step
        return step

    async def watch(
        self, path: str, resource_version: str, *, field_selector: str = ""
    ) -> AsyncIterator[WatchEvent]:
        self.calls.append("watch")
        step = await self.watches.get()
        if isinstance(step, Exception):
            raise step
        for event in step:
            yield event


def refused() -> KubeError:
    return KubeError("GET /apis: ClientConnectorError: Connection refused")


def modified(rv: int) -> WatchEvent:
    return WatchEvent(type="MODIFIED", object={"metadata": {"name": "n0", "resourceVersion": str(rv)}})
