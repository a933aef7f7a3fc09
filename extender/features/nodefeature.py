"""NodeFeature objects (``nfd.k8s-sigs.io/v1alpha1``) -> one node's features.

A node's features are the merge of every NodeFeature object labelled
``nfd.node.kubernetes.io/node-name=<node>``, merged the way nfd-master merges them: objects in
nfd-master's own namespace first, then by object name, then by namespace; flags are unioned,
attributes copied key by key (later wins), instances appended. A feature set present with zero
elements still makes the feature exist.

The raw payloads are ``TypedDict``s (what the API server sends); :class:`NodeFeatures` is the
validated, merged form the matchers read. All leaf values are strings, as the CRD requires; an object
that breaks the CRD's shape raises :class:`~extender.errors.NodeFeatureError` naming the field.
``elements: null`` (which the API server's schema does not let through) is read as ``{}``.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypedDict, TypeVar

from extender.errors import NodeFeatureError

NODE_NAME_LABEL = "nfd.node.kubernetes.io/node-name"
DEFAULT_NFD_NAMESPACE = "node-feature-discovery"
API_VERSION = "nfd.k8s-sigs.io/v1alpha1"


class RawObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    labels: dict[str, str]
    resourceVersion: str
    uid: str


class RawFlagSet(TypedDict):
    elements: dict[str, dict[str, Any]]


class RawAttributeSet(TypedDict):
    elements: dict[str, str]


class RawInstance(TypedDict):
    attributes: dict[str, str]


class RawInstanceSet(TypedDict):
    elements: list[RawInstance]


class RawFeatures(TypedDict, total=False):
    flags: dict[str, RawFlagSet]
    attributes: dict[str, RawAttributeSet]
    instances: dict[str, RawInstanceSet]


class RawNodeFeatureSpec(TypedDict, total=False):
    features: RawFeatures
    labels: dict[str, str]


class RawNodeFeature(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: RawObjectMeta
    spec: RawNodeFeatureSpec


@dataclass(frozen=True, slots=True)
class NodeFeatures:
    """Everything the rule language can see on one node. Treat the mappings as read-only.

    ``flags[feature]`` is a set of names, ``attributes[feature]`` maps names to string values and
    ``instances[feature]`` is a tuple of attribute maps. A feature name may appear in several parts.
    """

    node: str = ""
    flags: Mapping[str, frozenset[str]] = field(default_factory=dict)
    attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    instances: Mapping[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)

    def feature_names(self) -> set[str]:
        return set(self.flags) | set(self.attributes) | set(self.instances)


@dataclass(frozen=True, slots=True)
class ParsedNodeFeature:
    """One validated NodeFeature object: its identity, its node and its features."""

    namespace: str
    name: str
    node: str
    features: NodeFeatures
    resource_version: str = ""


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if type(value) is dict:  # what every decoder gives: skip the ABC check (startup profile)
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise NodeFeatureError(path, f"expected an object, got {type(value).__name__}")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise NodeFeatureError(path, f"expected a string, got {type(value).__name__}")
    return value


def _string_map(value: Any, path: str) -> dict[str, str]:
    return {_string(k, path): _string(v, f"{path}.{k}") for k, v in _mapping(value, path).items()}


# Memory: a cluster's nodes mostly repeat each other (a pool shares its CPU flags, its modules, its
# kernel and OS attributes, its PCI device rows), but every decoded object brings its own copies. At
# 50,000 nodes that is gigabytes. Parsed features therefore share: strings are interned, and equal
# flag sets, attribute maps and instance rows are one object, found through a weak table keyed by
# hash (a collision only means no sharing; equality is checked). Shared values are never mutated.


class _Row(dict[str, str]):
    """An attribute map or instance row that can be shared (a dict that takes weak references)."""

    __slots__ = ("__weakref__",)


_T = TypeVar("_T", frozenset[str], _Row)


class _Shared(Generic[_T]):
    def __init__(self) -> None:
        self._by_hash: dict[int, weakref.ref[_T]] = {}

    def get(self, key: int) -> _T | None:
        """The live shared value registered under ``key`` (the caller checks that it is equal)."""
        ref = self._by_hash.get(key)
        return ref() if ref is not None else None

    def __call__(self, value: _T, key: int) -> _T:
        ref = self._by_hash.get(key)
        known = ref() if ref is not None else None
        if known is not None and known == value:
            return known
        table = self._by_hash

        def forget(dead: weakref.ref[_T], key: int = key) -> None:
            if table.get(key) is dead:
                del table[key]

        table[key] = weakref.ref(value, forget)
        return value


_shared_sets: _Shared[frozenset[str]] = _Shared()
_shared_rows: _Shared[_Row] = _Shared()


def _flag_set(names: Iterable[str], path: str) -> frozenset[str]:
    names = list(names)
    # The usual case, a set some other node has too: found without interning every name. Equal to
    # a set of strings, so every name is a string (a number is never equal to one).
    try:
        plain = frozenset(names)
    except TypeError:  # an unhashable name: refused below
        pass
    else:
        known = _shared_sets.get(hash(plain))
        if known is not None and known == plain:
            return known
    try:
        value = frozenset(map(sys.intern, names))  # intern() takes exactly str: it checks the types
    except TypeError:
        for k in names:
            _string(k, path)  # raises, naming the path
        raise
    return _shared_sets(value, hash(value))


def _row(value: Any, path: str) -> _Row:
    m = _mapping(value, path)
    # The usual case, a row some other node has too (a pool's devices, its kernel): found by the hash
    # of the items as decoded, without interning or copying them. Equal to a row of strings, so every
    # key and value is a string. (Startup and churn profiles: building rows was most of parsing.)
    try:
        key = hash(tuple(m.items()))
    except TypeError:  # an unhashable value (a list, a mapping): refused below
        pass
    else:
        known = _shared_rows.get(key)
        if known is not None and known == m:
            return known
    try:
        # intern() takes exactly str, so this checks every key and value in C (startup profile:
        # the per-item loop was the largest part of reading a NodeFeature)
        row = _Row(zip(map(sys.intern, m), map(sys.intern, m.values()), strict=True))
    except TypeError:
        for k, v in m.items():  # raises, naming the offending key or value
            _string(k, path)
            _string(v, f"{path}.{k}")
        raise
    return _shared_rows(row, hash(tuple(row.items())))


def _parse_features(raw: Any, node: str, path: str) -> NodeFeatures:
    feats = _mapping(raw, path)
    flags: dict[str, frozenset[str]] = {}
    for fname, fset in _mapping(feats.get("flags"), f"{path}.flags").items():
        p = f"{path}.flags.{fname}"
        elements = _mapping(_mapping(fset, p).get("elements"), f"{p}.elements")
        flags[sys.intern(_string(fname, p))] = _flag_set(elements, f"{p}.elements")
    attributes: dict[str, Mapping[str, str]] = {}
    for fname, aset in _mapping(feats.get("attributes"), f"{path}.attributes").items():
        p = f"{path}.attributes.{fname}"
        attributes[sys.intern(_string(fname, p))] = _row(_mapping(aset, p).get("elements"), f"{p}.elements")
    instances: dict[str, tuple[Mapping[str, str], ...]] = {}
    for fname, iset in _mapping(feats.get("instances"), f"{path}.instances").items():
        p = f"{path}.instances.{fname}"
        items: Any = _mapping(iset, p).get("elements")
        if items is None:
            items = []
        if not isinstance(items, list):
            raise NodeFeatureError(f"{p}.elements", f"expected a list, got {type(items).__name__}")
        rows = []
        for i, inst in enumerate(items):
            ip = f"{p}.elements[{i}]"
            rows.append(_row(_mapping(inst, ip).get("attributes"), f"{ip}.attributes"))
        instances[sys.intern(_string(fname, p))] = tuple(rows)
    return NodeFeatures(node=node, flags=flags, attributes=attributes, instances=instances)


def parse_nodefeature(obj: Any) -> ParsedNodeFeature:
    """Validate one NodeFeature object (a decoded JSON/YAML mapping). Raises NodeFeatureError."""
    root = _mapping(obj, "")
    kind = root.get("kind")
    if kind is not None and kind != "NodeFeature":
        raise NodeFeatureError("kind", f"expected NodeFeature, got {kind!r}")
    meta = _mapping(root.get("metadata"), "metadata")
    labels = _string_map(meta.get("labels"), "metadata.labels")
    node = labels.get(NODE_NAME_LABEL, "")
    if not node:
        # nfd-master refuses such objects; so do we.
        raise NodeFeatureError("metadata.labels", f"missing or empty label {NODE_NAME_LABEL!r}")
    spec = root.get("spec")
    if spec is None:
        raise NodeFeatureError("spec", "required")
    features = _parse_features(_mapping(spec, "spec").get("features"), node, "spec.features")
    return ParsedNodeFeature(
        namespace=_string(meta.get("namespace", ""), "metadata.namespace"),
        name=_string(meta.get("name", ""), "metadata.name"),
        node=node,
        features=features,
        resource_version=_string(meta.get("resourceVersion", ""), "metadata.resourceVersion"),
    )


def merge_order(objs: Iterable[ParsedNodeFeature], nfd_namespace: str) -> list[ParsedNodeFeature]:
    """nfd-master's order: its own namespace first, then object name, then namespace."""
    return sorted(objs, key=lambda o: (o.namespace != nfd_namespace, o.name, o.namespace))


def merge_features(
    objs: Iterable[ParsedNodeFeature], node: str, nfd_namespace: str = DEFAULT_NFD_NAMESPACE
) -> NodeFeatures:
    """Merge several objects of one node the way nfd-master does (see the module docstring)."""
    objs = list(objs)
    if len(objs) == 1 and objs[0].features.node == node:
        return objs[0].features  # the usual case: nothing to merge, no copy
    flags: dict[str, set[str]] = {}
    attributes: dict[str, dict[str, str]] = {}
    instances: dict[str, list[Mapping[str, str]]] = {}
    for obj in merge_order(objs, nfd_namespace):
        f = obj.features
        for name, names in f.flags.items():
            flags.setdefault(name, set()).update(names)
        for name, values in f.attributes.items():
            attributes.setdefault(name, {}).update(values)
        for name, rows in f.instances.items():
            instances.setdefault(name, []).extend(dict(r) for r in rows)
    return NodeFeatures(
        node=node,
        flags={k: frozenset(v) for k, v in flags.items()},
        attributes=attributes,
        instances={k: tuple(v) for k, v in instances.items()},
    )


def node_features_from_objects(
    objs: Iterable[Any], nfd_namespace: str = DEFAULT_NFD_NAMESPACE
) -> dict[str, NodeFeatures]:
    """Group raw NodeFeature objects by node and merge each group. Raises NodeFeatureError on the
    first malformed object (callers that must keep going use :func:`parse_nodefeature` per object)."""
    by_node: dict[str, list[ParsedNodeFeature]] = {}
    for obj in objs:
        parsed = obj if isinstance(obj, ParsedNodeFeature) else parse_nodefeature(obj)
        by_node.setdefault(parsed.node, []).append(parsed)
    return {node: merge_features(group, node, nfd_namespace) for node, group in by_node.items()}


def features_from_dict(node: str, raw: Mapping[str, Any]) -> NodeFeatures:
    """Build NodeFeatures from a bare ``spec.features``-shaped mapping (for what-if and tests)."""
    return _parse_features(raw, node, "features")
