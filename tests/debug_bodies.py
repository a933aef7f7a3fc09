"""What the debug endpoint tests send: a NodeFeature object for /debug/whatif, a v1.Pod for
/debug/explain and the verbs."""

from __future__ import annotations

from typing import Any

from extender.features.nodefeature import NODE_NAME_LABEL


def nodefeature(node_name: str, modules: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "nfd.k8s-sigs.io/v1alpha1",
        "kind": "NodeFeature",
        "metadata": {"name": node_name, "namespace": "nfd", "labels": {NODE_NAME_LABEL: node_name}},
        "spec": {"features": {"flags": {"kernel.loadedmodule": {"elements": {m: {} for m in modules}}}}},
    }


def pod(*images: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default", "annotations": annotations or {}},
        "spec": {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]},
    }
