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
from extender.match.evaluate import slot_verdicts
from extender.match.explain import explain
from extender.match.reference import evaluate_node
from extender.match.result import Status
from extender.match.table import FeatureTable
from extender.spec.model import Spec
from extender.spec.variants import ImageSpec, Variant

__all__ = [
    "Decision",
    "ImageSpec",
    "MissingFeatures",
    "MissingPlatform",
    "decide",
    "failing",
    "fits",
    "reason",
]

MAX_SCORE = 10
#: The reason of a failing node without NodeFeature (always this very string).
NO_FEATURES_REASON = "node has no NodeFeature: its features are unknown"
_SHORT_REASON = "no compatibility set matched (see /debug/explain)"

MissingFeatures = Literal["fail", "pass"]
#: A node whose platform a multi-arch image has no variant for: rejected, or left to the kubelet.
MissingPlatform = Literal["fail", "pass"]


def missing_platform_reason(image: str, platform: str) -> str:
    return (
        f"image {image}: the image index has no {platform} variant "
        f"(the kubelet could not pull it on this node)"
    )


def _spec(item: ImageSpec) -> Spec:
    """The spec of an image that is not multi-arch (sources hand over only images with one)."""
    if item.spec is None:
        raise ValueError(f"image {item.image}: no spec to decide by")
    return item.spec


@dataclass(slots=True)
class Decision:
    """``names``: the candidates as asked, in order (the caller's list itself when it passed a
    list: neither side may change it afterwards); ``passed``: those that fit, in the same order;
    ``failed``: the others with their reasons; ``score_list``: one score per entry of ``names``."""

    names: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    score_list: list[int] = field(default_factory=list)

    @property
    def scores(self) -> dict[str, int]:
        """Node -> score (built on demand: the hot paths use ``score_list``)."""
        return dict(zip(self.names, self.score_list, strict=True))


def _whys(spec: Spec, table: FeatureTable, names: list[str], tags: frozenset[str] | None) -> list[str]:
    """``explain(...).summary()`` for each of ``names``, memoised in the table's explanation cache.

    An explanation costs one reference walk (~1 ms with a real spec), far more than the rest of a
    call; its text depends only on the spec, the tag selection, the node's name and its features, so
    it is kept per (spec digest, tags, node) while the node's NodeFeatures object is the same one.
    One call for a list: the cache hits of a filter's detailed reasons (50 by default) are most of
    what decide() spends at 500 candidates, so the lookups are bound once, not per node."""
    cache = table.caches.explanations
    group = cache.group(spec.digest, tags)
    features_of = table.node_features
    cached = cache.reason
    out: list[str] = []
    for name in names:
        nf = features_of(name)
        why = cached(group, name, nf)
        if why is None:
            why = explain(spec, nf, node=name, tags=tags).summary()
            cache.remember(group, name, nf, why)
        out.append(why)
    return out


def _why(spec: Spec, table: FeatureTable, name: str, tags: frozenset[str] | None) -> str:
    return _whys(spec, table, [name], tags)[0]


def reason(spec: Spec, table: FeatureTable, name: str, tags: frozenset[str] | None = None) -> str:
    """The detailed reason a failing ``name`` gets for ``spec`` in a filter answer (after the
    ``image I: `` prefix), from the explanation cache or computed and kept there."""
    return _why(spec, table, name, tags)


def failing(spec: Spec, table: FeatureTable, tags: frozenset[str] | None = None) -> list[str]:
    """The table's nodes that ``spec`` rejects (no selected set matches), in table order."""
    v = slot_verdicts(spec, table, tags)
    names = table.node_names()
    return [names[i] for i in np.flatnonzero(~v.ok[table.all_slots()]).tolist()]


def decide(
    images: Sequence[ImageSpec],
    table: FeatureTable,
    nodes: Sequence[str],
    *,
    tags: frozenset[str] | None = None,
    missing_features: MissingFeatures = "fail",
    missing_platform: MissingPlatform = "fail",
    detail_limit: int = 50,
    scores: bool = True,
    verdicts: bool = True,
) -> Decision:
    """Filter and score ``nodes`` for a pod whose spec'd images are ``images`` (``scores=False``:
    leave ``score_list`` empty, for the filter verb, which sends none; ``verdicts=False``: leave
    ``passed`` and ``failed`` empty, for the prioritize verb, which sends only scores). A multi-arch
    image judges each node by its platform's variant (:mod:`extender.spec.variants`); a node whose
    platform the index lacks fails, or passes with ``missing_platform="pass"``."""
    # The caller's list as it is (decode_args hands over a fresh one): a copy of 5,000 names is
    # measurable on the verbs' hot path, and nothing here changes it.
    names = nodes if type(nodes) is list else list(nodes)
    if not images:
        return Decision(names, list(names), {}, [0] * len(names) if scores else [])
    # Per request: one name -> slot lookup, then gathers from per-slot verdicts that are cached per
    # (spec, tags, table generation). A slot of -1 (unknown node) reads the no-features verdict.
    slots = table.slots_of(names)
    if any(item.variants is not None for item in images):
        decision = _decide_by_platform(
            images, table, names, slots, tags, missing_features, missing_platform, detail_limit, scores
        )
        if not verdicts:
            decision.passed, decision.failed = [], {}
        return decision
    first = slot_verdicts(_spec(images[0]), table, tags)
    ok = first.ok[slots]
    raw = first.best[slots] if scores else None  # filter sends no scores: no gather for them
    first_bad: npt.NDArray[np.intp] | None = None  # per node: the first image it cannot run
    if len(images) > 1:
        first_bad = np.where(ok, -1, 0)
        for i, item in enumerate(images[1:], start=1):
            v = slot_verdicts(_spec(item), table, tags)
            compatible = v.ok[slots]
            first_bad[~compatible & ok] = i
            ok &= compatible
            if raw is not None:
                raw += v.best[slots]
    known: npt.NDArray[np.bool_] | None = None  # None: every node is known (the usual case)
    if slots.size and int(slots.min()) < 0:  # a node without NodeFeature: its features are unknown
        known = slots >= 0
        if missing_features == "pass":
            ok |= ~known
        else:
            ok &= known
    if not verdicts:
        return Decision(names, [], {}, _scores(ok, raw) if raw is not None else [])
    # Whole-array work from here on: Python only touches the failing nodes, one C-level pass each.
    # compress() over the bytes of a bool array: no list of 5,000 bools built to walk it.
    decision = Decision(names, list(compress(names, ok.tobytes())))
    bad_rows = np.flatnonzero(~ok)
    if first_bad is None and known is None:  # the usual case: one short reason for every failing node
        failed = dict.fromkeys(
            map(names.__getitem__, bad_rows.tolist()), f"image {images[0].image}: {_SHORT_REASON}"
        )
        if detail_limit > 0 and failed:  # the first detail_limit failing nodes get the details
            prefix = f"image {images[0].image}: "
            heads = list(islice(failed, detail_limit))
            for name, why in zip(heads, _whys(_spec(images[0]), table, heads, tags), strict=True):
                failed[name] = prefix + why
        decision.failed = failed
    else:
        if known is None:
            known = slots >= 0
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
                reasons[k] = f"image {item.image}: {_why(_spec(item), table, names[rows[k]], tags)}"
        decision.failed = dict(zip(map(names.__getitem__, rows), reasons, strict=True))
    if raw is not None:
        decision.score_list = _scores(ok, raw)
    return decision


def _decide_by_platform(
    images: Sequence[ImageSpec],
    table: FeatureTable,
    names: list[str],
    slots: npt.NDArray[np.int64],
    tags: frozenset[str] | None,
    missing_features: MissingFeatures,
    missing_platform: MissingPlatform,
    detail_limit: int,
    scores: bool,
) -> Decision:
    """:func:`decide` when an image is multi-arch: the candidates are grouped by platform and each
    group gathers the verdicts of its variant's spec (cached per spec, tags and generation, as for
    any image), so the work stays proportional to the candidates."""
    n = len(names)
    known = slots >= 0
    codes = table.platform_codes()[slots]
    vocab = table.platform_vocab
    present = np.unique(codes).tolist()
    ok = np.ones(n, dtype=np.bool_)
    raw = np.zeros(n, dtype=np.int64)
    first_bad = np.full(n, -1, dtype=np.intp)
    chosen: list[dict[int, Variant | None]] = []  # per image: platform code -> the variant used
    for i, item in enumerate(images):
        per_code: dict[int, Variant | None] = {}
        if item.variants is None:
            v = slot_verdicts(_spec(item), table, tags)
            compatible = v.ok[slots]
            best = v.best[slots]
        else:
            compatible = np.ones(n, dtype=np.bool_)
            best = np.zeros(n, dtype=np.int64)
            for code in present:
                variant = per_code[code] = item.variant(vocab[code])
                mask = codes == code
                if variant is None:
                    compatible[mask] = missing_platform == "pass"
                elif variant.spec is not None:
                    v = slot_verdicts(variant.spec, table, tags)
                    group = slots[mask]
                    compatible[mask] = v.ok[group]
                    best[mask] = v.best[group]
        chosen.append(per_code)
        first_bad[~compatible & ok] = i
        ok &= compatible
        raw += best
    if missing_features == "pass":
        ok |= ~known
    else:
        ok &= known
    decision = Decision(names, list(compress(names, ok.tobytes())))
    failed: dict[str, str] = {}
    detailed = 0
    codes_list = codes.tolist()
    for row in np.flatnonzero(~ok).tolist():
        name = names[row]
        if not known[row]:
            failed[name] = NO_FEATURES_REASON
            continue
        item = images[first_bad[row]]
        spec = item.spec
        label = item.image
        if item.variants is not None:
            variant = chosen[first_bad[row]][codes_list[row]]
            platform = vocab[codes_list[row]]
            if variant is None:
                failed[name] = missing_platform_reason(item.image, platform)
                continue
            spec = variant.spec
            label = f"{item.image} ({platform})"
        if spec is not None and detailed < detail_limit:
            detailed += 1
            failed[name] = f"image {label}: {_why(spec, table, name, tags)}"
        else:
            failed[name] = f"image {label}: {_SHORT_REASON}"
    decision.failed = failed
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
    platform: str = "",
    missing_platform: MissingPlatform = "fail",
) -> bool:
    """Does a pod with these spec'd images fit one node with these features (``None``: the node
    has no NodeFeature) and this platform? The verdict :func:`decide` gives that node, computed for
    the node alone with the reference evaluator: what the wake-up compares before and after a
    NodeFeature change."""
    if not images:
        return True
    if features is None:
        return missing_features == "pass"
    for item in images:
        variant = item.variant(platform)
        if variant is None:
            if missing_platform == "pass":
                continue
            return False
        spec = variant.spec
        if spec is None:
            continue
        results = evaluate_node(spec, features, spec.selected_sets(tags))
        if not any(r.status == Status.MATCHED for r in results):
            return False
    return True
