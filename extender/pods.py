"""What the extender reads from a Pod object: its images, the tags annotation that selects
compatibility sets, and the failure-policy annotation. No I/O.

The Pod arrives as decoded JSON (kube-scheduler's ExtenderArgs, a watch event, a debug request); only
the fields read here are checked, and a field of the wrong shape raises :class:`PodError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from extender.errors import PodError

TAGS_ANNOTATION = "compat-extender.nfd.io/tags"
FAILURE_POLICY_ANNOTATION = "compat-extender.nfd.io/failure-policy"
FailurePolicy = Literal["Fail", "Ignore"]


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


def parse_tags(raw: str | None) -> frozenset[str] | None:
    """``"a, b"`` -> {"a", "b"}; ``None`` (or nothing but commas) means every set counts."""
    if raw is None:
        return None
    tags = frozenset(t.strip() for t in raw.split(",") if t.strip())
    return tags or None


def pod_tags(pod: Mapping[str, Any]) -> frozenset[str] | None:
    """Tags from the pod annotation; ``None`` when absent (every set counts)."""
    return parse_tags(_annotation(pod, TAGS_ANNOTATION))


def pod_failure_policy(pod: Mapping[str, Any], default: FailurePolicy) -> FailurePolicy:
    """``Fail`` or ``Ignore``: the pod annotation overrides the configured default."""
    raw = (_annotation(pod, FAILURE_POLICY_ANNOTATION) or "").strip().capitalize()
    if raw == "Fail":
        return "Fail"
    if raw == "Ignore":
        return "Ignore"
    return default
