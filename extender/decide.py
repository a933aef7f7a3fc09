"""Pod + candidate nodes -> which nodes pass, why the others fail, and scores. No I/O.

NFD defines no verdict of its own; these are the project's rules (docs/nfd-semantics.md §7, which
follows KEP-2403's reading where it can):

* the images are those of all containers and initContainers, each counted once;
* for an image with a spec, a node is compatible when at least one *selected* compatibility set
  matches (sets are alternatives; a set matches when all its rules match); the pod fits a node when
  every one of its spec'd images does; images without a spec impose nothing;
* tags: the pod annotation :data:`extender.pods.TAGS_ANNOTATION` (comma-separated) selects the
  sets that count, with NFD's ``--tags`` rule (no annotation: every set);
* an evaluation error on a node makes that set not match there, and the reason says so;
* a node without NodeFeature fails with a reason when the pod has any spec (``missing_features``
  = ``"fail"``) or passes untouched (``"pass"``);
* score: per image the highest weight among its matching selected sets, summed over images, scaled so
  the best candidate gets 10 (everyone 0 when no weight is positive).

Detailed reasons (the first failing expression and the value found) come from :func:`explain`; each
costs one reference walk, so only the first ``detail_limit`` failing nodes of a call get one and the
rest get the short form, which also groups better in the scheduler's event message. A node's reason
is memoised (in the table's explanation cache) until its features or the spec change, so a steady
stream of calls does not pay the walks again. Everything else is whole-array work: per-node Python
runs only for the failing nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, islice
from typing import Literal

import numpy as np
import numpy.typing as npt

from extender.features.nodefeature import NodeFeatures
from extender.match.caches import ExplanationKey
from extender.match.evaluate import slot_verdicts
from extender.match.explain import explain
from extender.match.reference import evaluate_node
from extender.match.result import Status
from extender.match.table import FeatureTable
from extender.spec.model import Spec

MAX_SCORE = 10
#: The reason of a failing node without NodeFeature (always this very string).
NO_FEATURES_REASON = "node has no NodeFeature: its features are unknown"
_SHORT_REASON = "no compatibility set matched (see /debug/explain)"

MissingFeatures = Literal["fail", "pass"]


@dataclass(frozen=True, slots=True)
class ImageSpec:
    image: str
    spec: Spec


@dataclass(slots=True)
class Decision:
    """``names``: the candidates as asked, in order; ``passed``: those that fit, in the same order;
    ``failed``: the others with their reasons; ``score_list``: one score per entry of ``names``."""

    names: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    score_list: list[int] = field(default_factory=list)

    @property
    def scores(self) -> dict[str, int]:
        """Node -> score (built on demand: the hot paths use ``score_list``)."""
        return dict(zip(self.names, self.score_list, strict=True))


def _why(spec: Spec, table: FeatureTable, name: str, tags: frozenset[str] | None) -> str:
    """``explain(...).summary()`` for one node, memoised in the table's explanation cache.

    An explanation costs one reference walk (~1 ms with a real spec), far more than the rest of a
    call; its text depends only on the spec, the tag selection, the node's name and its features, so
    it is kept per (spec digest, tags, node) while the node's NodeFeatures object is the same one."""
    nf = table.node_features(name)
    key: ExplanationKey = (spec.digest, tags, name)
    why = table.caches.explanation(key, nf)
    if why is None:
        why = explain(spec, nf, node=name, tags=tags).summary()
        table.caches.remember_explanation(key, nf, why)
    return why


def decide(
    images: Sequence[ImageSpec],
    table: FeatureTable,
    nodes: Sequence[str],
    *,
    tags: frozenset[str] | None = None,
    missing_features: MissingFeatures = "fail",
    detail_limit: int = 50,
    scores: bool = True,
) -> Decision:
    """Filter and score ``nodes`` for a pod whose spec'd images are ``images`` (``scores=False``:
    leave ``score_list`` empty, for the filter verb, which sends none)."""
    names = list(nodes)
    if not images:
        return Decision(names, list(names), {}, [0] * len(names) if scores else [])
    # Per request: one name -> slot lookup, then gathers from per-slot verdicts that are cached per
    # (spec, tags, table generation). A slot of -1 (unknown node) reads the no-features verdict.
    slots = table.slots_of(names)
    known = slots >= 0
    all_known = bool(known.all())
    first = slot_verdicts(images[0].spec, table, tags)
    ok = first.ok[slots]
    raw = first.best[slots]
    first_bad: npt.NDArray[np.intp] | None = None  # per node: the first image it cannot run
    if len(images) > 1:
        first_bad = np.where(ok, -1, 0)
        for i, item in enumerate(images[1:], start=1):
            v = slot_verdicts(item.spec, table, tags)
            compatible = v.ok[slots]
            first_bad[~compatible & ok] = i
            ok &= compatible
            raw += v.best[slots]
    if not all_known:  # a node without NodeFeature: its features are unknown, whatever the spec says
        if missing_features == "pass":
            ok |= ~known
        else:
            ok &= known
    # Whole-array work from here on: Python only touches the failing nodes, one C-level pass each.
    decision = Decision(names, list(compress(names, ok.tolist())))
    bad = ~ok
    if first_bad is None and all_known:  # the usual case: one short reason for every failing node
        failed = dict.fromkeys(compress(names, bad.tolist()), f"image {images[0].image}: {_SHORT_REASON}")
        if detail_limit > 0:  # the first detail_limit failing nodes get the details
            item = images[0]
            for name in list(islice(failed, detail_limit)):
                failed[name] = f"image {item.image}: {_why(item.spec, table, name, tags)}"
        decision.failed = failed
    else:
        bad_rows = np.flatnonzero(bad)
        bad_known = known[bad_rows]
        rows = bad_rows.tolist()
        # the reason of a failing node: short form of its first incompatible image, or "unknown" (last)
        image_of = first_bad[bad_rows] if first_bad is not None else np.zeros(len(rows), dtype=np.intp)
        codes = np.where(bad_known, image_of, len(images)).tolist()
        short = [f"image {item.image}: {_SHORT_REASON}" for item in images]
        short.append(NO_FEATURES_REASON)
        reasons = list(map(short.__getitem__, codes))
        if detail_limit > 0:  # the first detail_limit failing nodes that have features get the details
            for k in np.flatnonzero(bad_known)[:detail_limit].tolist():
                item = images[codes[k]]
                reasons[k] = f"image {item.image}: {_why(item.spec, table, names[rows[k]], tags)}"
        decision.failed = dict(zip(map(names.__getitem__, rows), reasons, strict=True))
    if scores:
        decision.score_list = _scores(ok, raw)
    return decision


def _scores(ok: npt.NDArray[np.bool_], raw: npt.NDArray[np.int64]) -> list[int]:
    """Per node: ``raw`` scaled so the best passing node gets MAX_SCORE, rounded half up; failing
    nodes 0; everyone 0 when no passing node has a positive raw score."""
    if not ok.any():
        return [0] * len(ok)
    passing = np.where(ok, raw, 0)
    best_raw = int(passing.max())
    if best_raw <= 0:
        return [0] * len(ok)
    limit = (np.iinfo(np.int64).max - best_raw) // (2 * MAX_SCORE)
    if best_raw <= limit and int(passing.min()) >= 0:  # int64 arithmetic cannot overflow
        return ((2 * MAX_SCORE * passing + best_raw) // (2 * best_raw)).tolist()  # type: ignore[no-any-return]
    return [(2 * MAX_SCORE * r + best_raw) // (2 * best_raw) for r in passing.tolist()]


def fits(
    images: Sequence[ImageSpec],
    features: NodeFeatures | None,
    *,
    tags: frozenset[str] | None = None,
    missing_features: MissingFeatures = "fail",
) -> bool:
    """Does a pod with these spec'd images fit one node with these features (``None``: the node
    has no NodeFeature)? The verdict :func:`decide` gives that node, computed for the node alone with
    the reference evaluator: what the wake-up compares before and after a NodeFeature change."""
    if not images:
        return True
    if features is None:
        return missing_features == "pass"
    for item in images:
        results = evaluate_node(item.spec, features, item.spec.selected_sets(tags))
        if not any(r.status == Status.MATCHED for r in results):
            return False
    return True
