"""The caches of one feature table: evaluation results and failure explanations.

They belong to the :class:`~extender.match.table.FeatureTable` they were computed from
(``table.caches``), so two tables (two applications, two tests) never share or see each other's
entries, and a table that goes away takes its caches with it. Both are :class:`BoundedCache`\\ s,
bounded in entries and bytes and counted for ``/metrics`` and ``/debug/sources``.

* ``results``: per (spec digest, tag selection), the status matrix of every table slot and the
  per-slot verdicts a scheduling decision reads, computed at one table generation. Read at a later
  generation, an entry is brought up to date row by row for the slots changed since
  (:meth:`~extender.match.table.FeatureTable.changed_since`), or recomputed when too many changed:
  under churn a NodeFeature update costs its own row, not the whole table
  (:func:`extender.match.evaluate.slot_verdicts`).
* ``explanations``: per (spec digest, tag selection, node), the one-line reason a node fails, valid
  while the node's NodeFeatures object is the same one (the table replaces it on an update, never
  mutates it). A filter call reads up to ``detailLimit`` of them, so they are kept as one plain dict
  per (spec digest, tag selection) that the call fetches once (:class:`ReasonCache`): a read is one
  dict probe, not an LRU update (which cost ~5 µs a reason, a tenth of a 5,000-name filter call).
  Bounded like the others: past ``max_entries`` or ``max_bytes`` the least recently used group goes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from extender.caching import RECORD_BYTES, BoundedCache
from extender.features.nodefeature import NodeFeatures

#: Result entries per table; each holds one status matrix (nodes x selected sets, one byte a cell).
RESULT_ENTRIES = 256
RESULT_BYTES = 256 << 20
#: Explanations per table (one per failing node, spec and tag selection that a filter call detailed).
EXPLANATION_ENTRIES = 16384
EXPLANATION_BYTES = 32 << 20

ResultKey = tuple[str, frozenset[str] | None]
ExplanationKey = tuple[str, frozenset[str] | None, str]


@dataclass(frozen=True, slots=True)
class SlotVerdicts:
    """Per slot of a table: does at least one selected set match (``ok``), and the highest positive
    weight among the matching sets (``best``, 0 when none). One element more than the table has
    slots: the last one is the verdict for a node without features, so gathering with a slot of
    ``-1`` (a node the table does not know) reads it without a special case."""

    ok: npt.NDArray[np.bool_]
    best: npt.NDArray[np.int64]


@dataclass(slots=True)
class ResultEntry:
    matrix: npt.NDArray[np.int8]  # slots x selected sets, Status values
    generation: int  # the table generation the matrix describes
    verdicts: SlotVerdicts | None = None  # reduced on first use

    @property
    def nbytes(self) -> int:
        """The matrix and, once reduced, the verdicts (a bool and an int64 per slot)."""
        return int(self.matrix.nbytes) + 9 * (int(self.matrix.shape[0]) + 1) + RECORD_BYTES


@dataclass(frozen=True, slots=True)
class Explanation:
    features: NodeFeatures | None  # what the text was computed from
    text: str


#: The reasons of one (spec digest, tag selection): node -> explanation.
Reasons = dict[str, Explanation]


class ReasonCache:
    """Failure reasons grouped per (spec digest, tag selection), bounded in entries and bytes; the
    least recently used group is evicted whole. Counts hits and misses like a BoundedCache, so it
    shows in /metrics and /debug/sources the same way."""

    def __init__(self, name: str, *, max_entries: int, max_bytes: int) -> None:
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._groups: dict[tuple[str, frozenset[str] | None], Reasons] = {}
        self._entries = 0
        self._bytes = 0

    def __len__(self) -> int:
        return self._entries

    @property
    def bytes(self) -> int:
        return self._bytes

    def group(self, digest: str, tags: frozenset[str] | None) -> Reasons:
        """The reasons of one spec and tag selection (created empty), marked most recently used.
        Read it with :func:`reason`; add to it with :meth:`remember`."""
        key = (digest, tags)
        found = self._groups.pop(key, None)
        if found is None:
            found = {}
        self._groups[key] = found  # to the end: most recently used
        return found

    def reason(self, group: Reasons, node: str, features: NodeFeatures | None) -> str | None:
        """The cached reason of ``node``, if it was computed from this very ``features`` object."""
        hit = group.get(node)
        if hit is not None and hit.features is features:
            self.hits += 1
            return hit.text
        self.misses += 1
        return None

    def remember(self, group: Reasons, node: str, features: NodeFeatures | None, text: str) -> None:
        old = group.get(node)
        if old is not None:
            self._entries -= 1
            self._bytes -= RECORD_BYTES + len(old.text)
        size = RECORD_BYTES + len(text)
        if size > self.max_bytes:
            group.pop(node, None)
            return
        group[node] = Explanation(features, text)
        self._entries += 1
        self._bytes += size
        while (self._entries > self.max_entries or self._bytes > self.max_bytes) and self._groups:
            if len(self._groups) == 1:  # one group over the bound: drop its oldest reasons
                only = next(iter(self._groups.values()))
                victim = next(iter(only))
                self._bytes -= RECORD_BYTES + len(only.pop(victim).text)
                self._entries -= 1
                self.evictions += 1
                continue
            oldest = next(iter(self._groups))
            dropped = self._groups.pop(oldest)
            self._entries -= len(dropped)
            self._bytes -= sum(RECORD_BYTES + len(e.text) for e in dropped.values())
            self.evictions += len(dropped)

    def clear(self) -> None:
        self._groups.clear()
        self._entries = 0
        self._bytes = 0


class TableCaches:
    def __init__(
        self,
        *,
        result_entries: int = RESULT_ENTRIES,
        result_bytes: int = RESULT_BYTES,
        explanation_entries: int = EXPLANATION_ENTRIES,
        explanation_bytes: int = EXPLANATION_BYTES,
    ) -> None:
        self.results: BoundedCache[ResultKey, ResultEntry] = BoundedCache(
            "results", max_entries=result_entries, max_bytes=result_bytes
        )
        self.explanations = ReasonCache(
            "explanations", max_entries=explanation_entries, max_bytes=explanation_bytes
        )

    def explanation(self, key: ExplanationKey, features: NodeFeatures | None) -> str | None:
        """The cached reason, if it was computed from this very ``features`` object."""
        digest, tags, node = key
        return self.explanations.reason(self.explanations.group(digest, tags), node, features)

    def remember_explanation(self, key: ExplanationKey, features: NodeFeatures | None, text: str) -> None:
        digest, tags, node = key
        self.explanations.remember(self.explanations.group(digest, tags), node, features, text)

    def all(self) -> tuple[BoundedCache[ResultKey, ResultEntry], ReasonCache]:
        return (self.results, self.explanations)

    def clear(self) -> None:
        for cache in self.all():
            cache.clear()
