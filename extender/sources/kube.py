"""NodeFeatures from the Kubernetes API: list, then watch, for ever.

Two reflectors run side by side: one over ``nfd.k8s-sigs.io/v1alpha1`` NodeFeatures in every
namespace, one over Nodes (a deleted Node leaves the table even while its NodeFeature lingers until
NFD's garbage collector removes it). Each reflector:

* lists (paged), replaces its view with the result (reconciling: objects that vanished meanwhile are
  deleted), then watches from the list's resourceVersion with bookmarks;
* on every event and bookmark remembers the resourceVersion, so a stream that ends (the API server
  closes watches after a few minutes) or breaks resumes where it left off;
* on ``410 Gone`` (the resourceVersion is too old: compacted) lists again and reconciles;
* on errors (connection refused, 5xx, a stream cut mid-event) backs off exponentially with jitter
  and tries again; nothing already in the table is dropped meanwhile.

Changes reach the feature table incrementally, one node at a time. ``ready`` turns true once both
initial lists are in. The HTTP side sits behind :class:`KubeTransport` (a real one over
kubernetes-asyncio's configured client in :mod:`extender.sources.kubeclient`), so this module is
tested against a protocol-level stand-in of the API server.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

from extender.errors import ExtenderError, KubeError, WatchExpiredError
from extender.features.nodefeature import DEFAULT_NFD_NAMESPACE, ParsedNodeFeature, parse_nodefeature
from extender.features.objects import NodeFeatureObjects
from extender.match.table import FeatureTable

log = logging.getLogger(__name__)

NODEFEATURES_PATH = "/apis/nfd.k8s-sigs.io/v1alpha1/nodefeatures"
NODES_PATH = "/api/v1/nodes"


class WatchEvent(TypedDict):
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[dict[str, Any]]
    resource_version: str


class KubeTransport(Protocol):
    async def list(self, path: str, *, field_selector: str = "") -> ListResult:
        """Every object at ``path`` (all pages), only those matching ``field_selector`` when one is
        given (``spec.nodeName=,spec.schedulerName=x``). Raises KubeError / WatchExpiredError."""
        ...

    def watch(
        self, path: str, resource_version: str, *, field_selector: str = ""
    ) -> AsyncIterator[WatchEvent]:
        """Events after ``resource_version`` (bookmarks on) until the server ends the stream.
        Raises KubeError / WatchExpiredError; ERROR events are passed through for the reflector to read.
        With a ``field_selector``, an object that stops matching arrives as DELETED."""
        ...


@dataclass(slots=True)
class Backoff:
    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    _next: float = 0.0

    def reset(self) -> None:
        self._next = 0.0

    def next(self) -> float:
        self._next = self.initial if not self._next else min(self._next * self.factor, self.maximum)
        return self._next * random.uniform(0.5, 1.0)  # jitter: replicas must not retry in lockstep


def _rv(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return rv if isinstance(rv, str) else ""


def _status_code(obj: Mapping[str, Any]) -> int:
    code = obj.get("code")
    return code if isinstance(code, int) else 0


class Reflector:
    """List + watch of one resource, feeding ``replace`` (after each list) and ``apply`` (per event).

    With a ``field_selector`` only matching objects are listed and watched; one that stops matching
    is seen as DELETED."""

    def __init__(
        self,
        transport: KubeTransport,
        path: str,
        replace: Callable[[list[dict[str, Any]]], None],
        apply: Callable[[str, dict[str, Any]], None],
        backoff: Backoff | None = None,
        *,
        field_selector: str = "",
    ) -> None:
        self.transport = transport
        self.path = path
        self.field_selector = field_selector
        self.where = f"{path}?fieldSelector={field_selector}" if field_selector else path  # for logs
        self.replace = replace
        self.apply = apply
        self.backoff = backoff or Backoff()
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.lists = 0
        self.errors = 0
        self.last_error = ""

    async def run(self) -> None:
        while True:
            try:
                if not self.resource_version:
                    result = await self.transport.list(self.path, field_selector=self.field_selector)
                    self.replace(result.items)
                    self.resource_version = result.resource_version
                    self.lists += 1
                    self.synced.set()
                await self._watch()
                self.backoff.reset()  # the stream ran its course: the server is healthy
            except WatchExpiredError:
                log.info("%s: resourceVersion %s is gone; listing again", self.where, self.resource_version)
                self.resource_version = ""
                # a server that answers 410 right after a list must not get a hot loop of lists
                await asyncio.sleep(self.backoff.next())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # transport errors of every kind: back off and resume
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = self.backoff.next()
                log.warning("%s: %s; retrying in %.1fs", self.where, self.last_error, delay)
                await asyncio.sleep(delay)

    async def _watch(self) -> None:
        events = self.transport.watch(self.path, self.resource_version, field_selector=self.field_selector)
        async for event in events:
            kind = event.get("type")
            obj = event.get("object")
            if not isinstance(obj, dict):
                raise KubeError(f"watch event without an object: {str(event)[:200]}")
            if kind == "ERROR":
                if _status_code(obj) == 410:
                    raise WatchExpiredError(str(obj.get("message", "")))
                raise KubeError(f"watch error: {obj.get('message', obj)}", _status_code(obj))
            if kind == "BOOKMARK":
                self.resource_version = _rv(obj) or self.resource_version
                continue
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                raise KubeError(f"unknown watch event type {kind!r}")
            self.apply(kind, obj)
            self.resource_version = _rv(obj) or self.resource_version
            self.backoff.reset()


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return ("", "")
    return (str(meta.get("namespace", "") or ""), str(meta.get("name", "") or ""))


@dataclass(slots=True)
class _Nodes:
    watched: bool
    names: set[str] = field(default_factory=set)


class KubeFeatures:
    """The feature table, kept equal to the cluster's NodeFeatures (for Nodes that exist)."""

    def __init__(
        self,
        transport: KubeTransport,
        *,
        nfd_namespace: str = DEFAULT_NFD_NAMESPACE,
        watch_nodes: bool = True,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        self._table = FeatureTable()
        self._objects = NodeFeatureObjects(nfd_namespace=nfd_namespace)
        self._nodes = _Nodes(watched=watch_nodes)
        self.errors: dict[str, str] = {}  # "namespace/name" of an object we cannot use -> why
        self.reloads = 0  # lists (initial and after 410) of either resource
        self.features = Reflector(
            transport, NODEFEATURES_PATH, self._replace_features, self._feature_event, backoff()
        )
        self.node_reflector = (
            Reflector(transport, NODES_PATH, self._replace_nodes, self._node_event, backoff())
            if watch_nodes
            else None
        )

    @property
    def table(self) -> FeatureTable:
        return self._table

    @property
    def ready(self) -> bool:
        return self.features.synced.is_set() and (
            self.node_reflector is None or self.node_reflector.synced.is_set()
        )

    async def run(self) -> None:
        """Run both reflectors until cancelled."""
        tasks = [asyncio.create_task(self.features.run(), name="watch-nodefeatures")]
        if self.node_reflector is not None:
            tasks.append(asyncio.create_task(self.node_reflector.run(), name="watch-nodes"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_ready(self) -> None:
        await self.features.synced.wait()
        if self.node_reflector is not None:
            await self.node_reflector.synced.wait()

    # -- NodeFeatures ---------------------------------------------------------------------------

    def _parse(self, obj: dict[str, Any]) -> ParsedNodeFeature | None:
        ns, name = _key(obj)
        try:
            parsed = parse_nodefeature(obj)
        except ExtenderError as exc:
            # keep whatever we had for this object: a bad update must not erase a node's features
            self.errors[f"{ns}/{name}"] = str(exc)
            log.warning("NodeFeature %s/%s ignored: %s", ns, name, exc)
            return None
        self.errors.pop(f"{ns}/{name}", None)
        return parsed

    def _replace_features(self, items: list[dict[str, Any]]) -> None:
        self.reloads += 1
        touched: set[str] = set()
        seen: set[tuple[str, str]] = set()
        for obj in items:
            key = _key(obj)
            seen.add(key)
            old = self._objects.get(*key)
            if old is not None and old.resource_version and old.resource_version == _rv(obj):
                continue  # unchanged since we saw it
            parsed = self._parse(obj)
            if parsed is not None:
                touched |= self._objects.upsert(parsed)
        for key in [k for k in self._objects.object_keys() if k not in seen]:
            touched |= self._objects.delete(*key)
        for stale in [k for k in self.errors if tuple(k.split("/", 1)) not in seen]:
            del self.errors[stale]
        self._refresh(touched)

    def _feature_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            key = _key(obj)
            self.errors.pop(f"{key[0]}/{key[1]}", None)
            self._refresh(self._objects.delete(*key))
            return
        parsed = self._parse(obj)
        if parsed is not None:
            self._refresh(self._objects.upsert(parsed))

    # -- Nodes ----------------------------------------------------------------------------------

    def _replace_nodes(self, items: list[dict[str, Any]]) -> None:
        self.reloads += 1
        names = {_key(o)[1] for o in items} - {""}
        changed = names ^ self._nodes.names
        self._nodes.names = names
        self._refresh(changed)

    def _node_event(self, kind: str, obj: dict[str, Any]) -> None:
        name = _key(obj)[1]
        if not name:
            return
        if kind == "DELETED":
            if name in self._nodes.names:
                self._nodes.names.discard(name)
                self._refresh({name})
        elif name not in self._nodes.names:
            self._nodes.names.add(name)
            self._refresh({name})

    # -- the table --------------------------------------------------------------------------------

    def _refresh(self, nodes: set[str]) -> None:
        for node in nodes:
            merged = self._objects.merged(node)
            exists = not self._nodes.watched or node in self._nodes.names
            if merged is not None and exists:
                self._table.set_node(merged)
            else:
                self._table.remove_node(node)
