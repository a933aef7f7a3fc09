"""Evaluate a spec for a set of nodes with either implementation, with a result cache.

The vectorized path evaluates the whole table once per (spec digest, tag selection, table
generation) and caches the status matrix in the table's own result cache (``table.caches``,
:mod:`extender.match.caches`); each call then only gathers the rows it asked for, so
per-call work is proportional to the requested nodes. :func:`slot_verdicts` reduces that matrix
once more, per slot, to what a scheduling decision reads (does any selected set match, the best
weight), cached with it.
The reference path evaluates node by node and is never cached: it is the oracle, and the baseline
the benchmarks compare against.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np

from extender.features.nodefeature import NodeFeatures
from extender.match.caches import ResultEntry, ResultKey, SlotVerdicts
from extender.match.reference import evaluate_node
from extender.match.result import SpecEvaluation, Status
from extender.match.table import FeatureTable
from extender.match.vector import LazyErrors, evaluate_table
from extender.spec.model import Spec

Implementation = Literal["vectorized", "reference"]


#: How an entry is brought up to date, by the number ``k`` of nodes changed since it was computed,
#: from costs measured on the benchmark spec and cluster (20,000 nodes, 32,768 slots, medians): a
#: reference walk ~0.5-0.7 ms a node; the vectorized walk over the changed slots alone
#: (``table.subset``) ~0.8 ms plus ~8 µs a node, the copy of the cached arrays included; the
#: vectorized walk over the whole table ~0.43 µs a slot (14 ms).
#: * ``k <= PATCH_ROWS``: each changed row by the reference walk;
#: * ``k * PATCH_SHARE + PATCH_FLOOR <= capacity``: the changed rows by the vectorized walk over
#:   those slots (at 65,536 slots up to 1,984 nodes, ~17 ms against ~28 ms for a walk);
#: * otherwise: the whole table walked afresh.
PATCH_ROWS = 1
PATCH_SHARE = 32
PATCH_FLOOR = 2048


def _entry(spec: Spec, table: FeatureTable, tags: frozenset[str] | None) -> ResultEntry:
    """The cached evaluation of ``spec`` over the whole table at its current generation: computed
    once, then kept up to date with the rows of the slots that changed since (each by the reference
    walk, which agrees with the vectorized one cell for cell) while they are few."""
    results = table.caches.results
    key: ResultKey = (spec.digest, tags)
    found = results.get(key)
    if found is not None and found.generation != table.generation:
        found = _patched(found, spec, table, tags)
        if found is not None:
            results.put(key, found, found.nbytes)
    if found is None:
        found = ResultEntry(evaluate_table(spec, table, spec.selected_sets(tags)), table.generation)
        results.put(key, found, found.nbytes)
    return found


def _patched(
    entry: ResultEntry, spec: Spec, table: FeatureTable, tags: frozenset[str] | None
) -> ResultEntry | None:
    """``entry`` brought to the table's generation (a new entry: the old arrays may still be read
    by a caller), or ``None`` when it is cheaper (or only possible) to compute it afresh."""
    changed = table.changed_since(entry.generation)
    if changed is None:
        return None
    few = len(changed) <= PATCH_ROWS
    if not few and len(changed) * PATCH_SHARE + PATCH_FLOOR > table.capacity:
        return None
    set_indexes = spec.selected_sets(tags)
    old = entry.matrix
    matrix = np.zeros((table.capacity, len(set_indexes)), dtype=np.int8)
    matrix[: min(len(old), table.capacity)] = old[: table.capacity]
    # a freed slot keeps its old row: no node reads it
    live = [(slot, nf) for slot in sorted(changed) if (nf := table.features_at(slot)) is not None]
    rows = [slot for slot, _ in live]
    if few:
        for slot, nf in live:
            matrix[slot] = [int(r.status) for r in evaluate_node(spec, nf, set_indexes)]
    elif live:
        # each node's row depends on its own features only: the vectorized walk over the changed
        # slots alone gives their rows, in order
        matrix[rows] = evaluate_table(spec, table.subset(np.array(rows, dtype=np.intp)), set_indexes)
    verdicts = None
    if entry.verdicts is not None and len(old) == table.capacity:
        ok, best = entry.verdicts.ok.copy(), entry.verdicts.best.copy()
        if rows:
            weights = np.array([spec.compatibilities[j].weight for j in set_indexes], dtype=np.int64)
            hit = matrix[rows] == Status.MATCHED
            ok[rows] = hit.any(axis=1)
            best[rows] = np.where(hit, np.maximum(weights, 0), 0).max(axis=1, initial=0)
        verdicts = SlotVerdicts(ok, best)
    return ResultEntry(matrix, table.generation, verdicts)


def _normalise_tags(tags: Iterable[str] | None) -> frozenset[str] | None:
    if tags is None:
        return None
    fs = frozenset(tags)
    return fs or None


def _empty(node: str) -> NodeFeatures:
    return NodeFeatures(node=node)


def evaluate(
    spec: Spec,
    table: FeatureTable,
    nodes: Iterable[str] | None = None,
    *,
    tags: Iterable[str] | None = None,
    implementation: Implementation = "vectorized",
    use_cache: bool = True,
) -> SpecEvaluation:
    """Per node and per selected compatibility set: MATCHED / NOT_MATCHED / ERROR.

    ``nodes`` defaults to every node of the table. A node the table does not know is evaluated
    against empty features and flagged ``known=False``. ``tags`` selects sets like NFD's
    ``--tags`` (None or empty: all sets).
    """
    tagset = _normalise_tags(tags)
    set_indexes = spec.selected_sets(tagset)
    if nodes is None:
        names, slots = table.node_names(), table.all_slots()
    else:
        names = tuple(nodes)
        slots = table.slots_of(names)
    known = slots >= 0

    def reference_row(row: int) -> list[str]:
        nf = table.node_features(names[row]) or _empty(names[row])
        return [r.error for r in evaluate_node(spec, nf, set_indexes)]

    if implementation == "reference":
        status = np.zeros((len(names), len(set_indexes)), dtype=np.int8)
        errors: dict[tuple[int, int], str] = {}
        for row, name in enumerate(names):
            nf = table.node_features(name) or _empty(name)
            for col, res in enumerate(evaluate_node(spec, nf, set_indexes)):
                status[row, col] = int(res.status)
                if res.status == Status.ERROR:
                    errors[(row, col)] = res.error
        return SpecEvaluation(spec.digest, names, set_indexes, status, known, errors)
    if implementation != "vectorized":
        raise ValueError(f"unknown implementation {implementation!r}")

    matrix = _entry(spec, table, tagset).matrix if use_cache else evaluate_table(spec, table, set_indexes)
    status = matrix[slots]  # rows of unknown nodes (slot -1) are overwritten just below
    if not known.all():
        empty_row = [int(r.status) for r in evaluate_node(spec, _empty(""), set_indexes)]
        status[~known] = np.array(empty_row, dtype=np.int8)
    err_rows, err_cols = np.nonzero(status == Status.ERROR)
    cells = list(zip(err_rows.tolist(), err_cols.tolist(), strict=True))
    return SpecEvaluation(spec.digest, names, set_indexes, status, known, LazyErrors(cells, reference_row))


def slot_verdicts(spec: Spec, table: FeatureTable, tags: Iterable[str] | None = None) -> SlotVerdicts:
    """:class:`SlotVerdicts` of ``spec`` over every slot of ``table`` (vectorized, cached with the
    status matrix per spec, tags and table generation): what a scheduling decision needs per node,
    gathered with :meth:`FeatureTable.slots_of` instead of re-reducing the matrix on every call."""
    tagset = _normalise_tags(tags)
    entry = _entry(spec, table, tagset)
    if entry.verdicts is None:
        set_indexes = spec.selected_sets(tagset)
        unknown = [r.status for r in evaluate_node(spec, _empty(""), set_indexes)]
        n = entry.matrix.shape[0]
        ok = np.zeros(n + 1, dtype=np.bool_)
        best = np.zeros(n + 1, dtype=np.int64)
        for col, j in enumerate(set_indexes):
            weight = spec.compatibilities[j].weight
            column = np.append(entry.matrix[:, col] == Status.MATCHED, unknown[col] == Status.MATCHED)
            ok |= column
            if weight > 0:
                np.maximum(best, np.where(column, np.int64(weight), np.int64(0)), out=best)
        entry.verdicts = SlotVerdicts(ok, best)
    return entry.verdicts
