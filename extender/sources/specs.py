"""image -> spec, the way the HTTP layer asks for it: only images in scope are looked up, and
concurrent lookups of one image share one.

An image outside the configured scope (``specs.scope``, :class:`~extender.images.ImageScope`) has no
spec: it is never looked up, so an injected sidecar from a public registry neither costs a round trip
nor, when its registry is not allowed, fails the pod under policy ``Fail``. A failed lookup is logged
with the image and the cause, at most once per image a minute.

kube-scheduler may call filter for many pods of one Deployment at once; the first call for an image
starts the lookup and the others wait for the same result instead of each going to the source (a
registry round trip, later). The shared lookup runs as its own task, so a caller that gives up
(the scheduler's HTTP timeout closes its connection) does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import cachetools

from extender.images import ImageScope
from extender.sources.base import KnownImages, SpecSource, lookup_image
from extender.spec.model import Spec
from extender.spec.variants import ImageSpec

log = logging.getLogger(__name__)

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
    out_of_scope: int = 0


#: How many images found with a spec are remembered for known_images().
KNOWN_IMAGES = 1000
#: A failed lookup of one image is logged at most once per this many seconds.
FAILURE_LOG_SECONDS = 60.0


class SharedLookups:
    """A :class:`SpecSource` that answers "no spec" for images outside ``scope``, puts single-flight
    in front of ``inner`` for the others, counts outcomes and logs failures (rate-limited)."""

    def __init__(
        self,
        inner: SpecSource,
        *,
        scope: ImageScope | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.scope = scope or ImageScope()
        #: one running lookup per (image, platforms asked; None for :meth:`lookup`)
        self.flight: SingleFlight[tuple[str, tuple[str, ...] | None], Spec | ImageSpec | None] = (
            SingleFlight()
        )
        self.counts = LookupCounts()
        self._logged: cachetools.TTLCache[str, None] = cachetools.TTLCache(
            maxsize=4096, ttl=FAILURE_LOG_SECONDS, timer=clock
        )
        #: images recently found with a spec (for /debug/whatif without a list of images)
        self._with_spec: cachetools.LRUCache[str, None] = cachetools.LRUCache(maxsize=KNOWN_IMAGES)

    async def lookup(self, image: str) -> Spec | None:
        found = await self._shared(image, None, lambda: self.inner.lookup(image))
        return found.spec if isinstance(found, ImageSpec) else found

    async def lookup_variants(self, image: str, platforms: Sequence[str]) -> ImageSpec | None:
        """:meth:`lookup` for a multi-arch-aware caller: one shared lookup per (image, platforms)."""
        asked = tuple(platforms)
        found = await self._shared(image, asked, lambda: lookup_image(self.inner, image, asked))
        return ImageSpec(image, found) if isinstance(found, Spec) else found

    async def _shared(
        self,
        image: str,
        platforms: tuple[str, ...] | None,
        call: Callable[[], Awaitable[Spec | ImageSpec | None]],
    ) -> Spec | ImageSpec | None:
        """Scope, single-flight per (image, platforms), counts and the rate-limited failure log."""
        if not self.scope.covers(image):
            self.counts.out_of_scope += 1
            return None
        try:
            found = await self.flight.do((image, platforms), call)
        except Exception as exc:
            self.counts.error += 1
            if image not in self._logged:
                self._logged[image] = None
                log.warning("spec lookup for image %s failed: %s", image, exc)
            raise
        if found is None:
            self.counts.no_spec += 1
        else:
            self.counts.spec += 1
            self._with_spec[image] = None
        return found

    def known_images(self) -> list[str]:
        """The images the source itself lists (a mapping file), then those recently found with a
        spec, each once; no lookup."""
        listed = self.inner.known_images() if isinstance(self.inner, KnownImages) else []
        return list(dict.fromkeys([*listed, *self._with_spec]))
