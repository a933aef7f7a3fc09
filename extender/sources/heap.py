"""The feature table kept out of the garbage collector's full collections.

Why: CPython's cyclic garbage collector visits every tracked container of the oldest generation in a
full collection, and the feature table's values are such containers (about 23 per node: the parsed
objects, their dicts and tuples, the shared rows and flag sets with their weak references). At
50,000 nodes that is over a million objects and a full collection stops the event loop for about a
second (measured in ``python -m benchmarks.churn --nodes 50000``: 20 full collections, 10.4 s in
all, up to 2.8 s each while the initial list was applied; under churn they came back every few
seconds). Nothing in those values forms a reference cycle, so the collector never has anything to
find there: reference counting frees them when they are replaced.

:func:`gc.freeze` moves every object tracked at that moment to a permanent generation that
collections skip (reference counting still frees them). :class:`HeapKeeper` calls it

* until the features are ready (an initial list, the first reading of the files), whenever the
  oldest generation holds ``loading`` objects or more (counted every ``interval`` seconds: a list
  of what a full collection would visit);
* once they are ready, at the first check (what the load left);
* afterwards, once the table changed by ``share`` of its nodes (at least ``floor`` changes) since
  the last freeze: a relist, or steady churn (at 1% of the nodes per second, every five seconds).

Each freeze first collects the young generations (:func:`gc.collect` of generation 1, a few
milliseconds at most), so short-lived garbage cycles are not frozen with the rest. The price: an
object that is alive at a freeze and later becomes part of a garbage cycle is never collected (the
collector does not look at it again). The server's long-lived objects do not do that, and what a
request in flight holds at that moment is small; ``benchmarks/churn.py`` reports how many frozen
objects ended up as such garbage over its run.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

from extender.match.table import FeatureTable
from extender.sources.base import FeatureSource

log = logging.getLogger(__name__)

#: Seconds between two checks.
INTERVAL = 1.0
#: Freeze once the table changed by this share of its nodes since the last freeze ...
SHARE = 0.05
#: ... and by at least this many changes.
FLOOR = 500
#: While the features load: freeze once the oldest generation holds this many objects (a full
#: collection visits them all; ~0.7 µs each on the benchmark machine). A replica that cannot load
#: (the API server away) allocates little, so it freezes seldom: what it would freeze is mostly its
#: own retrying, which may hold garbage cycles.
LOADING = 50_000


def old_objects() -> int:
    """How many objects the collector's oldest generation holds (what a full collection visits)."""
    return len(gc.get_objects(generation=2))


def freeze() -> int:
    """Collect the young generations, then freeze every tracked object; returns how many objects
    the permanent generation holds now."""
    gc.collect(1)
    gc.freeze()
    return gc.get_freeze_count()


@dataclass(slots=True)
class HeapKeeper:
    """Freezes the heap while the features load and as the table changes (see the module docstring).
    ``features``: set once the feature source exists (until then it is loading: the first reading
    of the files runs before it is handed over)."""

    features: FeatureSource | None = None
    interval: float | None = None  # None: INTERVAL
    share: float = SHARE
    floor: int = FLOOR
    loading: int = LOADING
    freeze_with: Callable[[], int] | None = None  # None: freeze()
    count_with: Callable[[], int] | None = None  # None: old_objects()
    checks: int = 0
    freezes: int = 0
    frozen: int = 0  # objects in the permanent generation after the last freeze
    generation: int = -1  # the table's generation at the last freeze (-1: none since it loaded)

    def check(self) -> bool:
        """Freeze when it is due; returns whether it did."""
        self.checks += 1
        features = self.features
        if features is None or not features.ready:
            if (self.count_with or old_objects)() >= self.loading:
                return self._do(-1)
            return False
        table: FeatureTable = features.table
        if self.generation < 0:  # the first check once ready: what the initial load left
            return self._do(table.generation)
        changed = table.generation - self.generation
        if changed >= max(self.floor, self.share * len(table)):
            return self._do(table.generation)
        return False

    def _do(self, generation: int) -> bool:
        loaded = generation >= 0 and self.generation < 0  # the first freeze once ready
        self.frozen = (self.freeze_with or freeze)()
        self.freezes += 1
        self.generation = generation
        (log.info if loaded else log.debug)(
            "heap: %d objects frozen out of the garbage collector's full collections", self.frozen
        )
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL if self.interval is None else self.interval)
            self.check()
