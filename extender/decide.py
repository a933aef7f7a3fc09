"""Pod + candidate nodes -> which nodes pass, why the others fail, and scores. No I/O.

The rules (issue 3, and KEP-2403's reading of NFD, which defines no verdict of its own):

* the images are those of all containers and initContainers, each counted once;
* for an image with a spec, a node is compatible when at least one *selected* compatibility set
  matches (sets are alternatives; a set matches when all its rules match); the pod fits a node when
  every one of its spec'd images does; images without a spec impose nothing;
* tags: the pod annotation :data:`TAGS_ANNOTATION` (comma-separated) selects the sets that count,
  with NFD's ``--tags`` rule (no annotation: every set);
* an evaluation error on a node makes that set not match there, and the reason says so;
* a node without NodeFeature fails with a reason when the pod has any spec (``missing_features``
  = ``"fail"``) or passes untouched (``"pass"``);
* score: per image the highest weight among its matching selected sets, summed over images, scaled so
  the best candidate gets 10 (everyone 0 when no weight is positive).

Detailed reasons (the first failing expression and the value found) come from :func:`explain`; each
costs one reference walk, so only the first ``detail_limit`` failing nodes of a call get one and the
rest get the short form, which also groups better in the scheduler's event message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from extender.match.evaluate import evaluate
from extender.match.explain import explain
from extender.match.result import Status
from extender.match.table import FeatureTable
from extender.spec.model import Spec

TAGS_ANNOTATION = "compat-extender.nfd.io/tags"
FAILURE_POLICY_ANNOTATION = "compat-extender.nfd.io/failure-policy"
MAX_SCORE = 10

MissingFeatures = Literal["fail", "pass"]


class PodError(ValueError):
    """The Pod object is not shaped like a v1.Pod where this module needs to read it."""


@dataclass(frozen=True, slots=True)
class ImageSpec:
    image: str
    spec: Spec


@dataclass(slots=True)
class Decision:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    scores: dict[str, int] = field(default_factory=dict)


def _list(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PodError(f"{path}.{key}: expected a list, got {type(value).__name__}")
    return value


def pod_images(pod: Any) -> list[str]:
    """Images of all initContainers and containers, first occurrence order, each once."""
    if not isinstance(pod, Mapping):
        raise PodError(f"Pod: expected an object, got {type(pod).__name__}")
    spec = pod.get("spec")
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise PodError(f"Pod.spec: expected an object, got {type(spec).__name__}")
    seen: dict[str, None] = {}
    for key in ("initContainers", "containers"):
        for i, c in enumerate(_list(spec, key, "Pod.spec")):
            if not isinstance(c, Mapping):
                raise PodError(f"Pod.spec.{key}[{i}]: expected an object")
            image = c.get("image")
            if image is None:
                continue
            if not isinstance(image, str):
                raise PodError(f"Pod.spec.{key}[{i}].image: expected a string")
            if image:
                seen.setdefault(image, None)
    return list(seen)


def _annotation(pod: Mapping[str, Any], key: str) -> str | None:
    meta = pod.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    annotations = meta.get("annotations")
    if not isinstance(annotations, Mapping):
        return None
    value = annotations.get(key)
    return value if isinstance(value, str) else None


def pod_tags(pod: Mapping[str, Any]) -> frozenset[str] | None:
    """Tags from the pod annotation; ``None`` when absent (every set counts)."""
    raw = _annotation(pod, TAGS_ANNOTATION)
    if raw is None:
        return None
    tags = frozenset(t.strip() for t in raw.split(",") if t.strip())
    return tags or None


def pod_failure_policy(pod: Mapping[str, Any], default: str) -> str:
    """``Fail`` or ``Ignore``: the pod annotation overrides the configured default."""
    raw = _annotation(pod, FAILURE_POLICY_ANNOTATION)
    if raw is not None and raw.strip().capitalize() in ("Fail", "Ignore"):
        return raw.strip().capitalize()
    return default


def decide(
    images: Sequence[ImageSpec],
    table: FeatureTable,
    nodes: Sequence[str],
    *,
    tags: frozenset[str] | None = None,
    missing_features: MissingFeatures = "fail",
    detail_limit: int = 50,
) -> Decision:
    """Filter and score ``nodes`` for a pod whose spec'd images are ``images``."""
    names = list(nodes)
    if not images:
        return Decision(passed=names, scores=dict.fromkeys(names, 0))
    ok = np.ones(len(names), dtype=np.bool_)
    raw = np.zeros(len(names), dtype=np.int64)
    first_bad: list[int] = [-1] * len(names)  # index into images of the first incompatible image
    known = np.ones(len(names), dtype=np.bool_)
    for i, item in enumerate(images):
        result = evaluate(item.spec, table, names, tags=tags)
        known = result.known
        matched = result.status == Status.MATCHED
        compatible = matched.any(axis=1)
        weights = np.array([item.spec.compatibilities[j].weight for j in result.set_indexes], dtype=np.int64)
        if len(weights):
            best = np.where(matched, weights[np.newaxis, :], np.iinfo(np.int64).min).max(axis=1)
            raw += np.where(compatible, np.maximum(best, 0), 0)
        for row in np.flatnonzero(~compatible & ok).tolist():
            first_bad[row] = i
        ok &= compatible
    if missing_features == "pass":
        ok |= ~known
    decision = Decision()
    details = 0
    for row, name in enumerate(names):
        if ok[row]:
            decision.passed.append(name)
            continue
        if not known[row]:
            decision.failed[name] = "node has no NodeFeature: its features are unknown"
            continue
        item = images[first_bad[row]]
        if details < detail_limit:
            details += 1
            why = explain(item.spec, table.node_features(name), node=name, tags=tags).summary()
        else:
            why = "no compatibility set matched (see /debug/explain)"
        decision.failed[name] = f"image {item.image}: {why}"
    best_raw = int(raw[ok].max()) if ok.any() else 0
    for row, name in enumerate(names):
        score = 0
        if ok[row] and best_raw > 0:
            score = (2 * MAX_SCORE * int(raw[row]) + best_raw) // (2 * best_raw)  # rounded half up
        decision.scores[name] = score
    return decision
