"""image -> spec, the way the HTTP layer asks for it: concurrent lookups of one image share one.

kube-scheduler may call filter for many pods of one Deployment at once; the first call for an image
starts the lookup and the others wait for the same result instead of each going to the source (a
registry round trip, later). The shared lookup runs as its own task, so a caller that gives up
(the scheduler's HTTP timeout closes its connection) does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from extender.sources.base import SpecSource
from extender.spec.model import Spec

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """At most one running call per key; later callers for the key await the first one's result."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}
        self.started = 0
        self.joined = 0

    def __len__(self) -> int:
        return len(self._running)

    async def do(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:
            self.started += 1
            task = asyncio.ensure_future(call())
            self._running[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        else:
            self.joined += 1
        return await asyncio.shield(task)

    def _forget(self, key: K, task: asyncio.Future[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter may have gone away


@dataclass(slots=True)
class LookupCounts:
    spec: int = 0
    no_spec: int = 0
    error: int = 0


class SharedLookups:
    """A :class:`SpecSource` that puts single-flight in front of another and counts outcomes."""

    def __init__(self, inner: SpecSource) -> None:
        self.inner = inner
        self.flight: SingleFlight[str, Spec | None] = SingleFlight()
        self.counts = LookupCounts()

    async def lookup(self, image: str) -> Spec | None:
        try:
            spec = await self.flight.do(image, lambda: self.inner.lookup(image))
        except Exception:
            self.counts.error += 1
            raise
        if spec is None:
            self.counts.no_spec += 1
        else:
            self.counts.spec += 1
        return spec
