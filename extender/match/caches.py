"""The caches of one feature table: evaluation results and failure explanations.

They belong to the :class:`~extender.match.table.FeatureTable` they were computed from
(``table.caches``), so two tables (two applications, two tests) never share or see each other's
entries, and a table that goes away takes its caches with it. Both are :class:`BoundedCache`\\ s,
bounded in entries and bytes and counted for ``/metrics`` and ``/debug/sources``.

* ``results``: per (spec digest, tag selection), the status matrix of every table slot and the
  per-slot verdicts a scheduling decision reads. Valid for one table generation: the first lookup
  after the table changed empties it (generations only grow, so older entries can never be asked
  for again).
* ``explanations``: per (spec digest, tag selection, node), the one-line reason a node fails, valid
  while the node's NodeFeatures object is the same one (the table replaces it on an update, never
  mutates it).
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
    verdicts: SlotVerdicts | None = None  # reduced on first use

    @property
    def nbytes(self) -> int:
        """The matrix and, once reduced, the verdicts (a bool and an int64 per slot)."""
        return int(self.matrix.nbytes) + 9 * (int(self.matrix.shape[0]) + 1) + RECORD_BYTES


@dataclass(frozen=True, slots=True)
class Explanation:
    features: NodeFeatures | None  # what the text was computed from
    text: str


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
        self.explanations: BoundedCache[ExplanationKey, Explanation] = BoundedCache(
            "explanations", max_entries=explanation_entries, max_bytes=explanation_bytes
        )
        self._generation = -1  # the table generation ``results`` holds

    def results_at(self, generation: int) -> BoundedCache[ResultKey, ResultEntry]:
        """``results``, emptied first when the table has moved on to another generation."""
        if generation != self._generation:
            self.results.clear()
            self._generation = generation
        return self.results

    def explanation(self, key: ExplanationKey, features: NodeFeatures | None) -> str | None:
        """The cached reason, if it was computed from this very ``features`` object."""
        hit = self.explanations.get(key, valid=lambda e: e.features is features)
        return None if hit is None else hit.text

    def remember_explanation(self, key: ExplanationKey, features: NodeFeatures | None, text: str) -> None:
        self.explanations.put(key, Explanation(features, text), RECORD_BYTES + len(text))

    def all(self) -> tuple[BoundedCache[ResultKey, ResultEntry], BoundedCache[ExplanationKey, Explanation]]:
        return (self.results, self.explanations)

    def clear(self) -> None:
        for cache in self.all():
            cache.clear()
