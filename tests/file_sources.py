"""Inputs for the tests of the file sources (a NodeFeature directory, an image->spec mapping) and of
``serve`` reading them: a small spec, a NodeFeature document, and a file writer that makes every
rewrite visible to mtime-based reloading."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: A spec with one rule: the node has the ``vfio-pci`` kernel module loaded.
SPEC_A = b"""version: v1alpha1
compatibilities:
- rules:
  - name: vfio
    matchFeatures:
    - feature: kernel.loadedmodule
      matchExpressions: {vfio-pci: {op: Exists}}
"""


def nf(
    name: str, node: str, modules: list[str], namespace: str | None = "node-feature-discovery"
) -> dict[str, Any]:
    """A NodeFeature document as a file would hold it (``namespace=None``: left out, to be defaulted)."""
    meta: dict[str, Any] = {"name": name, "labels": {"nfd.node.kubernetes.io/node-name": node}}
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "apiVersion": "nfd.k8s-sigs.io/v1alpha1",
        "kind": "NodeFeature",
        "metadata": meta,
        "spec": {"features": {"flags": {"kernel.loadedmodule": {"elements": {m: {} for m in modules}}}}},
    }


_tick = [1_700_000_000_000_000_000]


def put(path: Path, data: bytes | str) -> None:
    """Write and give the file a fresh, strictly increasing mtime (file systems with coarse
    timestamps would otherwise hide a rewrite of the same size)."""
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    _tick[0] += 1_000_000_000
    os.utime(path, ns=(_tick[0], _tick[0]))
