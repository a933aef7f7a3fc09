"""Ready only once warm: the caches a first /filter reads are filled before ``/readyz`` says 200.

A fresh process answers its first filter calls from cold caches: the name index of the feature table
is compacted on first use, and each spec's verdicts over the whole table are computed by the first
call that needs them (a vectorized walk: tens of milliseconds at 50,000 nodes). A scheduler sending
traffic as soon as the pod is ready pays that on its first calls. So :class:`Warmed` wraps the
feature source: once the source itself is ready, it looks up every image whose spec is known
without a registry round trip (the mapping file's images; images the prefetcher found for pending
pods), for the platforms of the table's nodes, computes their verdicts, compacts the name index,
and only then reports ready. The work is bounded by ``budget`` seconds: past it the source is
ready anyway (a warm-up must never keep a replica out of service), and a lookup that fails is
skipped (the filter will report it).

Failure reasons come after: a filter details up to ``detailLimit`` failing candidates, each reason a
reference walk (~1-2 ms) unless cached, and which nodes a call details depends on its candidates. So
once ready, :meth:`Warmed.run` goes on computing the reason of every failing node of every warmed
spec, one node per turn of the event loop (the verbs keep being answered in between), at most half
of what the explanation cache holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from extender.decide import failing, reason
from extender.match.evaluate import slot_verdicts
from extender.match.table import FeatureTable
from extender.sources.base import FeatureSource, Freshness, KnownImages, SpecSource, freshness, lookup_image
from extender.spec.model import Spec

log = logging.getLogger(__name__)

#: How often the wrapped source's readiness is checked before the warm-up starts.
POLL_SECONDS = 0.05


@dataclass(slots=True)
class WarmUp:
    """What the warm-up did (for logs and tests)."""

    images: int = 0  # looked up with a spec
    specs: int = 0  # distinct specs whose verdicts were computed
    reasons: int = 0  # failure reasons computed after ready
    failed: int = 0  # lookups that failed (skipped)
    seconds: float = 0.0
    complete: bool = False  # False: the budget ran out first


class Warmed:
    """A :class:`FeatureSource` that is :attr:`warm` once ``inner`` is ready and :meth:`run` has
    warmed the caches (or given up after ``budget`` seconds). ``/readyz`` waits for that; decisions
    only need ``ready`` (the inner source's): a call that comes early is answered, cold."""

    def __init__(
        self,
        inner: FeatureSource,
        specs: SpecSource,
        *,
        images: Callable[[], list[str]] | None = None,
        budget: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.specs = specs
        #: the images to warm (default: what ``specs`` lists, when it lists any)
        self.images = images
        self.budget = budget
        self.clock = clock
        self.done = WarmUp()
        self._warm = False
        self._specs: list[Spec] = []

    @property
    def table(self) -> FeatureTable:
        return self.inner.table

    @property
    def ready(self) -> bool:
        return self.inner.ready

    @property
    def warm(self) -> bool:
        return self._warm

    def freshness(self) -> Freshness:
        return freshness(self.inner)

    async def run(self) -> None:
        """Wait for ``inner`` to be ready, warm the caches, report ready, then warm the reasons."""
        while not self.inner.ready:
            await asyncio.sleep(POLL_SECONDS)
        await self.warm_up()
        await self.warm_reasons()

    async def warm_up(self) -> None:
        """Warm the verdicts (``inner`` is ready), then report ready: whatever happens, once."""
        start = self.clock()
        try:
            async with asyncio.timeout(self.budget):
                await self._warm_up()
            self.done.complete = True
        except TimeoutError:
            log.warning("warm-up: stopped after %gs; ready with the caches as they are", self.budget)
        finally:
            self.done.seconds = self.clock() - start
            self._warm = True
        log.info(
            "warm-up: verdicts of %d spec(s) for %d image(s) over %d nodes in %.2fs",
            self.done.specs,
            self.done.images,
            len(self.table),
            self.done.seconds,
        )

    async def warm_reasons(self) -> None:
        """After ready: the failure reason of every failing node of the warmed specs, one node per
        turn of the loop, until half the explanation cache is used."""
        table = self.table
        room = table.caches.explanations.max_entries // 2
        for spec in self._specs:
            for name in failing(spec, table):
                if self.done.reasons >= room:
                    return
                if table.node_features(name) is not None:  # still there
                    reason(spec, table, name)
                    self.done.reasons += 1
                await asyncio.sleep(0)

    async def _warm_up(self) -> None:
        table = self.table
        table.slots_of(table.node_names())  # compacts the name index a first request would
        await asyncio.sleep(0)
        if self.images is not None:
            images = self.images()
        else:
            images = self.specs.known_images() if isinstance(self.specs, KnownImages) else []
        seen: set[str] = set()
        for image in images:
            try:
                item = await lookup_image(self.specs, image, table.platforms())
            except Exception:  # the filter reports a failing lookup; the warm-up only skips it
                self.done.failed += 1
                continue
            if item is None:
                continue
            self.done.images += 1
            for spec in item.specs:
                if spec.digest not in seen:
                    seen.add(spec.digest)
                    slot_verdicts(spec, table)  # no tags: what a pod without the annotation reads
                    self._specs.append(spec)
                    self.done.specs += 1
                    await asyncio.sleep(0)  # one walk at a time: the loop keeps answering
