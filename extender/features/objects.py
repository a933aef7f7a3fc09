"""Keeps every NodeFeature object by identity and tells which node's merged features changed.

A watch delivers objects one at a time (added, modified, deleted); a node's features are the merge of
all its objects (see :mod:`extender.features.nodefeature`). This store re-merges only the node an
event touched, and handles an object that moves from one node to another (its label changed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from extender.features.nodefeature import (
    DEFAULT_NFD_NAMESPACE,
    NodeFeatures,
    ParsedNodeFeature,
    merge_features,
)

ObjectKey = tuple[str, str]  # (namespace, name)


@dataclass(slots=True)
class NodeFeatureObjects:
    nfd_namespace: str = DEFAULT_NFD_NAMESPACE
    _objects: dict[ObjectKey, ParsedNodeFeature] = field(default_factory=dict)
    _by_node: dict[str, dict[ObjectKey, ParsedNodeFeature]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._objects)

    def nodes(self) -> Iterator[str]:
        return iter(self._by_node)

    def object_keys(self) -> list[ObjectKey]:
        return list(self._objects)

    def get(self, namespace: str, name: str) -> ParsedNodeFeature | None:
        return self._objects.get((namespace, name))

    def merged(self, node: str) -> NodeFeatures | None:
        group = self._by_node.get(node)
        if not group:
            return None
        return merge_features(group.values(), node, self.nfd_namespace)

    def upsert(self, obj: ParsedNodeFeature) -> set[str]:
        """Add or replace an object. Returns the nodes whose merged features must be recomputed."""
        key = (obj.namespace, obj.name)
        touched = {obj.node}
        old = self._objects.get(key)
        if old is not None and old.node != obj.node:
            touched.add(old.node)
            self._drop_from_node(old.node, key)
        self._objects[key] = obj
        self._by_node.setdefault(obj.node, {})[key] = obj
        return touched

    def delete(self, namespace: str, name: str) -> set[str]:
        old = self._objects.pop((namespace, name), None)
        if old is None:
            return set()
        self._drop_from_node(old.node, (namespace, name))
        return {old.node}

    def _drop_from_node(self, node: str, key: ObjectKey) -> None:
        group = self._by_node.get(node)
        if group is not None:
            group.pop(key, None)
            if not group:
                del self._by_node[node]
