"""Kubernetes objects for the tests that run against the API-server stand-in
(tests/kube_apiserver.py): a Node, a NodeFeature publishing ``kernel.loadedmodule`` flags, and a
kubeconfig file pointing at the stand-in.

Named ``*_object`` so they are not confused with ``tests.helpers.node``, which builds the
extender's own ``NodeFeatures``, not an API object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from extender.features.nodefeature import NODE_NAME_LABEL


def nodefeature_object(
    name: str, node: str, modules: list[str], namespace: str = "node-feature-discovery"
) -> dict[str, Any]:
    """A NodeFeature for ``node`` whose only features are these loaded kernel modules."""
    return {
        "apiVersion": "nfd.k8s-sigs.io/v1alpha1",
        "kind": "NodeFeature",
        "metadata": {"name": name, "namespace": namespace, "labels": {NODE_NAME_LABEL: node}},
        "spec": {"features": {"flags": {"kernel.loadedmodule": {"elements": {m: {} for m in modules}}}}},
    }


def node_object(name: str) -> dict[str, Any]:
    """A Node with nothing but its name."""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def kubeconfig(path: Path, server: str) -> Path:
    """Write a kubeconfig at ``path`` whose current context talks to ``server`` (with a token the
    stand-in does not check) and return ``path``."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stand-in", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "stand-in", "user": "tester"}}],
        "current-context": "ctx",
    }
    path.write_text(json.dumps(doc))
    return path
