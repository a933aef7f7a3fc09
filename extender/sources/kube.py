"""NodeFeatures from the Kubernetes API: list, then watch, for ever.

Two reflectors run side by side: one over ``nfd.k8s-sigs.io/v1alpha1`` NodeFeatures in every
namespace, one over Nodes (a deleted Node leaves the table even while its NodeFeature lingers until
NFD's garbage collector removes it). Each reflector:

* lists (paged), replaces its view with the result (reconciling: objects that vanished meanwhile are
  deleted), then watches from the list's resourceVersion with bookmarks;
* on every event and bookmark remembers the resourceVersion, so a stream that ends (the API server
  closes watches after a few minutes) or breaks resumes where it left off;
* on ``410 Gone`` (the resourceVersion is too old: compacted, or an API server that restarted with
  a new watch cache) lists again and reconciles;
* on errors (connection refused, 5xx, a stream cut mid-event, ``404`` while a CRD is not installed)
  backs off exponentially with jitter, never longer than :data:`MAX_BACKOFF_SECONDS`, and tries
  again; the delays start over after every success (a list, an event), so after an API-server
  restart every watch is back within a few seconds of the server answering; nothing already in the
  table is dropped meanwhile.

Changes reach the feature table incrementally, one node at a time. ``ready`` turns true once both
initial lists are in. Each reflector knows since when it has been failing (``broken_since``, on an
injectable monotonic clock): a successful list, an accepted watch or an event ends a failure. When
the NodeFeature reflector has been failing for longer than ``max_stale_seconds``, the table may be
out of date (:meth:`KubeFeatures.freshness`): the HTTP layer then answers pods with specs with an
error rather than decide on it. The HTTP side sits behind :class:`KubeTransport` (a real one over
kubernetes-asyncio's configured client in :mod:`extender.sources.kubeclient`), so this module is
tested against a protocol-level stand-in of the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, runtime_checkable

from extender.errors import ExtenderError, KubeError, WatchExpiredError
from extender.features.nodefeature import (
    DEFAULT_NFD_NAMESPACE,
    NodeFeatures,
    ParsedNodeFeature,
    parse_nodefeature,
)
from extender.features.objects import NodeFeatureObjects
from extender.features.platform import platform_from_labels
from extender.match.table import FeatureTable
from extender.platforms import DEFAULT_PLATFORM
from extender.sources.base import Freshness

log = logging.getLogger(__name__)

NODEFEATURES_PATH = "/apis/nfd.k8s-sigs.io/v1alpha1/nodefeatures"
NODES_PATH = "/api/v1/nodes"

#: The longest wait between two attempts, jitter included: once the API server answers again, every
#: watch is back within this long.
MAX_BACKOFF_SECONDS = 5.0
#: While a list or watch keeps failing with the same error, it is logged as a warning at most this
#: often (and at debug level in between).
WARN_EVERY_SECONDS = 60.0
#: ``features.maxStaleSeconds``' default: how long the NodeFeature watch may fail before the table
#: counts as stale.
DEFAULT_MAX_STALE_SECONDS = 300.0


class WatchEvent(TypedDict):
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[dict[str, Any]]
    resource_version: str


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a paged list; ``resource_version`` is the list's (the last page's counts)."""

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


@runtime_checkable
class ReportsOpenWatches(Protocol):
    """A transport that can also say when the API server has accepted a watch (HTTP 200), before
    any event arrives. The reflector uses it when the transport has it (the real one does): a
    watch that is open on a quiet cluster then counts as working at once, not only at its first
    event or bookmark."""

    def watch_reporting_open(
        self,
        path: str,
        resource_version: str,
        opened: Callable[[], None],
        *,
        field_selector: str = "",
    ) -> AsyncIterator[WatchEvent]:
        """:meth:`KubeTransport.watch`, calling ``opened()`` once the server has accepted the watch."""
        ...


@runtime_checkable
class ListsInPages(Protocol):
    """A transport that can hand a list over page by page as the pages arrive (the real one does):
    the reflector then reduces each page to what it keeps (parsed features, node names) before the
    next is fetched, instead of holding every raw object of the cluster until the last page."""

    def list_pages(self, path: str, *, field_selector: str = "") -> AsyncGenerator[ListPage, None]:
        """The pages of :meth:`KubeTransport.list`, in order; raises as it does."""
        ...


@dataclass(slots=True)
class Backoff:
    """Delays between attempts that fail in a row: ``initial``, then ``factor`` times the previous
    one, capped at ``maximum``; each delay is drawn between half and all of that (jitter: replicas
    must not retry in lockstep) and never exceeds ``maximum``. :meth:`reset` after a success starts
    over from ``initial``; ``failures`` counts the delays handed out since."""

    initial: float = 0.2
    maximum: float = MAX_BACKOFF_SECONDS
    factor: float = 2.0
    jitter: Callable[[float, float], float] = random.uniform
    failures: int = 0
    _step: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or self.factor < 1:
            raise ValueError(
                f"backoff needs 0 < initial <= maximum and factor >= 1, got initial {self.initial}, "
                f"maximum {self.maximum}, factor {self.factor}"
            )

    def reset(self) -> None:
        self.failures = 0

    def fresh(self) -> Backoff:
        """A backoff with the same settings (and jitter) that has seen no failure."""
        return dataclasses.replace(self, failures=0)

    def next(self) -> float:
        self._step = self.initial if not self.failures else min(self._step * self.factor, self.maximum)
        self.failures += 1
        return min(self._step * self.jitter(0.5, 1.0), self.maximum)


def _rv(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return rv if isinstance(rv, str) else ""


def _status_code(obj: Mapping[str, Any]) -> int:
    code = obj.get("code")
    return code if isinstance(code, int) else 0


class Reflector:
    """List + watch of one resource, feeding ``replace`` (after each list) and ``apply`` (per event).

    ``prepare``, when given, turns each listed object into what ``replace`` gets (the list of them),
    as each page arrives: the raw objects of a page can go before the next page is fetched. Nothing
    reaches ``replace`` before the whole list is in (a list that fails half-way changes nothing).

    With a ``field_selector`` only matching objects are listed and watched; one that stops matching
    is seen as DELETED.

    ``backoff`` spaces the attempts after errors; it starts over after a successful list and after
    every event. Relists after ``410 Gone`` are spaced by a backoff of their own, which a list does
    not reset (only an event does), so a server that answers 410 right after every list is not asked
    in a hot loop. ``broken_since`` is the ``clock()`` time of the first failure since the list or
    watch last worked (``None`` while it works): a successful list, a watch the server accepts, an
    event, or a stream the server ends normally all end a failure."""

    def __init__(
        self,
        transport: KubeTransport,
        path: str,
        replace: Callable[[list[Any]], None],
        apply: Callable[[str, dict[str, Any]], None],
        backoff: Backoff | None = None,
        *,
        prepare: Callable[[dict[str, Any]], Any] | None = None,
        field_selector: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.path = path
        self.field_selector = field_selector
        self.where = f"{path}?fieldSelector={field_selector}" if field_selector else path  # for logs
        self.replace = replace
        self.prepare = prepare
        self.apply = apply
        self.backoff = backoff or Backoff()
        self.relist_backoff = self.backoff.fresh()
        self.clock = clock
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.lists = 0
        self.errors = 0
        self.last_error = ""
        self.broken_since: float | None = None
        self._warned = ("", 0.0)  # (error, clock) of the last warning logged

    # -- health -----------------------------------------------------------------------------------

    @property
    def failing_seconds(self) -> float:
        """How long the list/watch has been failing; 0 while it works."""
        return 0.0 if self.broken_since is None else max(0.0, self.clock() - self.broken_since)

    @property
    def last_healthy(self) -> float | None:
        """When the list/watch was last known to work (``clock()`` time): now while it works, the
        moment it started failing while it fails, ``None`` before its first successful list."""
        if self.lists == 0:
            return None
        return self.clock() if self.broken_since is None else self.broken_since

    def _working(self) -> None:
        if self.broken_since is not None:
            log.info("%s: working again after failing for %.0fs", self.where, self.failing_seconds)
            self.broken_since = None

    def _failed(self, exc: Exception) -> float:
        """Record a failure; the delay before the next attempt. The first failure in a row is a
        warning, and so is a different error; the same one again is a warning at most every
        :data:`WARN_EVERY_SECONDS` (an outage must not flood the log), debug otherwise."""
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        first = self.broken_since is None
        since = now if self.broken_since is None else self.broken_since
        self.broken_since = since
        delay = self.backoff.next()
        hint = ""
        if isinstance(exc, KubeError) and exc.code == 404:
            hint = " (the API server does not serve this resource: is its CRD installed?)"
        level = logging.DEBUG
        if first or self._warned[0] != self.last_error or now - self._warned[1] >= WARN_EVERY_SECONDS:
            level = logging.WARNING
            self._warned = (self.last_error, now)
        log.log(
            level,
            "%s: %s%s; retrying in %.1fs (failing for %.0fs, attempt %d)",
            self.where,
            self.last_error,
            hint,
            delay,
            now - since,
            self.backoff.failures,
        )
        return delay

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                if not self.resource_version:
                    items, resource_version = await self._list()
                    self.replace(items)
                    del items
                    self.resource_version = resource_version
                    self.lists += 1
                    self.synced.set()
                    self.backoff.reset()  # the server answers: the next failure starts small again
                    self._working()
                await self._watch()
                # the server ended the stream after its timeout: it was working all along
                self.backoff.reset()
                self.relist_backoff.reset()
                self._working()
            except WatchExpiredError:
                log.info("%s: resourceVersion %s is gone; listing again", self.where, self.resource_version)
                self.resource_version = ""
                # a server that answers 410 right after a list must not get a hot loop of lists
                await asyncio.sleep(self.relist_backoff.next())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # transport errors of every kind: back off and resume
                await asyncio.sleep(self._failed(exc))

    async def _list(self) -> tuple[list[Any], str]:
        """Every object of the list, through ``prepare``, and the list's resourceVersion."""
        prepare = self.prepare
        if not isinstance(self.transport, ListsInPages):
            result = await self.transport.list(self.path, field_selector=self.field_selector)
            items = result.items if prepare is None else [prepare(o) for o in result.items]
            return items, result.resource_version
        out: list[Any] = []
        resource_version = ""
        pages = self.transport.list_pages(self.path, field_selector=self.field_selector)
        async with contextlib.aclosing(pages):
            async for page in pages:
                out.extend(page.items if prepare is None else map(prepare, page.items))
                resource_version = page.resource_version
                del page  # the raw page goes before the next one is fetched
        return out, resource_version

    def _events(self) -> AsyncIterator[WatchEvent]:
        if isinstance(self.transport, ReportsOpenWatches):
            return self.transport.watch_reporting_open(
                self.path, self.resource_version, self._working, field_selector=self.field_selector
            )
        return self.transport.watch(self.path, self.resource_version, field_selector=self.field_selector)

    async def _watch(self) -> None:
        async for event in self._events():
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
            elif kind in ("ADDED", "MODIFIED", "DELETED"):
                self.apply(kind, obj)
                self.resource_version = _rv(obj) or self.resource_version
            else:
                raise KubeError(f"unknown watch event type {kind!r}")
            self.backoff.reset()
            self.relist_backoff.reset()
            self._working()


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return ("", "")
    return (str(meta.get("namespace", "") or ""), str(meta.get("name", "") or ""))


def _node_name(obj: dict[str, Any]) -> tuple[str, str | None]:
    """A Node as its list keeps it: its name, and its platform from its labels (None: unlabelled)."""
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return _key(obj)[1], platform_from_labels(labels)


#: A listed NodeFeature as the list keeps it: its key, and the parsed object, why it cannot be used,
#: or None when it is unchanged since it was last seen.
_Listed = tuple[tuple[str, str], ParsedNodeFeature | str | None]


@dataclass(slots=True)
class _Nodes:
    watched: bool
    names: set[str] = field(default_factory=set)
    #: node -> platform from its labels (absent: unlabelled, told from its features instead)
    platforms: dict[str, str] = field(default_factory=dict)


class KubeFeatures:
    """The feature table, kept equal to the cluster's NodeFeatures (for Nodes that exist).

    ``max_stale_seconds`` (0: no bound) is how long the NodeFeature list/watch may fail before
    :meth:`freshness` says the table is stale. Only the NodeFeature watch counts: a broken Node
    watch can only keep a deleted Node in the table (the scheduler no longer asks about it) or keep
    a new one out (rejected as having no NodeFeature), never pass a node that cannot run the pod.
    ``clock`` is the monotonic clock of the reflectors (tests pass their own)."""

    def __init__(
        self,
        transport: KubeTransport,
        *,
        nfd_namespace: str = DEFAULT_NFD_NAMESPACE,
        watch_nodes: bool = True,
        backoff: Callable[[], Backoff] = Backoff,
        max_stale_seconds: float = DEFAULT_MAX_STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        default_platform: str = DEFAULT_PLATFORM,
    ) -> None:
        if max_stale_seconds < 0:
            raise ValueError(f"max_stale_seconds must be 0 (no bound) or more, got {max_stale_seconds}")
        self._table = FeatureTable(default_platform=default_platform)
        self._objects = NodeFeatureObjects(nfd_namespace=nfd_namespace)
        self._nodes = _Nodes(watched=watch_nodes)
        self.max_stale_seconds = max_stale_seconds
        self.object_errors: dict[str, str] = {}  # "namespace/name" of an object we cannot use -> why
        self.reloads = 0  # lists (initial and after 410) of either resource
        #: called with (node, features before, features after) whenever a node's merged features
        #: change (``None``: no NodeFeature, or no Node); the wake-up listens here
        self.on_change: Callable[[str, NodeFeatures | None, NodeFeatures | None], None] | None = None
        self.features = Reflector(
            transport,
            NODEFEATURES_PATH,
            self._replace_features,
            self._feature_event,
            backoff(),
            prepare=self._prepare_feature,
            clock=clock,
        )
        self.node_reflector = (
            Reflector(
                transport,
                NODES_PATH,
                self._replace_nodes,
                self._node_event,
                backoff(),
                prepare=_node_name,
                clock=clock,
            )
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

    @property
    def reflectors(self) -> list[Reflector]:
        return [self.features] if self.node_reflector is None else [self.features, self.node_reflector]

    @property
    def last_healthy(self) -> float | None:
        """When the NodeFeature list/watch was last known to work, on the reflectors' clock (see
        :attr:`Reflector.last_healthy`)."""
        return self.features.last_healthy

    def freshness(self) -> Freshness:
        """How long the NodeFeature watch has been failing, against ``max_stale_seconds``. Before the
        initial sync ``last_error`` is that of a list still waiting (say, a 404 while the CRD is
        not installed)."""
        waiting = [r for r in self.reflectors if not r.synced.is_set() and r.broken_since is not None]
        told = waiting[0] if waiting else self.features
        last = told.last_error if told.broken_since is not None else ""
        return Freshness(self.features.failing_seconds, self.max_stale_seconds, last)

    @property
    def errors(self) -> dict[str, str]:
        """NodeFeature objects that cannot be used ("namespace/name" -> why), and the lists/watches
        that are failing now ("watch <path>" -> for how long, whether that is stale, the last error)."""
        out = dict(self.object_errors)
        stale = self.freshness().stale
        for r in self.reflectors:
            if r.broken_since is not None:
                over = " (stale: over features.maxStaleSeconds)" if stale and r is self.features else ""
                out[f"watch {r.where}"] = f"failing for {r.failing_seconds:.0f}s{over}: {r.last_error}"
        return out

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
            self.object_errors[f"{ns}/{name}"] = str(exc)
            log.warning("NodeFeature %s/%s ignored: %s", ns, name, exc)
            return None
        self.object_errors.pop(f"{ns}/{name}", None)
        return parsed

    def _prepare_feature(self, obj: dict[str, Any]) -> _Listed:
        """A listed NodeFeature reduced to what the list's replace needs, as its page arrives: its
        key and, unless it is unchanged since we saw it (None), the parsed object or why not."""
        key = _key(obj)
        old = self._objects.get(*key)
        if old is not None and old.resource_version and old.resource_version == _rv(obj):
            return key, None
        try:
            return key, parse_nodefeature(obj)
        except ExtenderError as exc:
            return key, str(exc)

    def _replace_features(self, items: list[_Listed]) -> None:
        self.reloads += 1
        touched: set[str] = set()
        seen: set[tuple[str, str]] = set()
        for key, parsed in items:
            seen.add(key)
            if parsed is None:
                continue  # unchanged since we saw it
            ns, name = key
            if isinstance(parsed, str):
                # keep whatever we had for this object: a bad update must not erase a node's features
                self.object_errors[f"{ns}/{name}"] = parsed
                log.warning("NodeFeature %s/%s ignored: %s", ns, name, parsed)
                continue
            self.object_errors.pop(f"{ns}/{name}", None)
            touched |= self._objects.upsert(parsed)
        for key in [k for k in self._objects.object_keys() if k not in seen]:
            touched |= self._objects.delete(*key)
        for stale in [k for k in self.object_errors if tuple(k.split("/", 1)) not in seen]:
            del self.object_errors[stale]
        self._refresh(touched)

    def _feature_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            key = _key(obj)
            self.object_errors.pop(f"{key[0]}/{key[1]}", None)
            self._refresh(self._objects.delete(*key))
            return
        parsed = self._parse(obj)
        if parsed is not None:
            self._refresh(self._objects.upsert(parsed))

    # -- Nodes ----------------------------------------------------------------------------------

    def _replace_nodes(self, listed: list[tuple[str, str | None]]) -> None:
        self.reloads += 1
        names = {name for name, _ in listed} - {""}
        platforms = {name: p for name, p in listed if name and p is not None}
        changed = names ^ self._nodes.names
        changed |= {n for n in names if platforms.get(n) != self._nodes.platforms.get(n)}
        self._nodes.names = names
        self._nodes.platforms = platforms
        self._refresh(changed)

    def _node_event(self, kind: str, obj: dict[str, Any]) -> None:
        name, platform = _node_name(obj)
        if not name:
            return
        if kind == "DELETED":
            self._nodes.platforms.pop(name, None)
            if name in self._nodes.names:
                self._nodes.names.discard(name)
                self._refresh({name})
            return
        known = self._nodes.platforms.get(name)
        if platform is None:
            self._nodes.platforms.pop(name, None)
        else:
            self._nodes.platforms[name] = platform
        if name not in self._nodes.names:
            self._nodes.names.add(name)
            self._refresh({name})
        elif platform != known:  # labels changed the node's platform: its variants change
            self._refresh({name})

    # -- the table --------------------------------------------------------------------------------

    def _refresh(self, nodes: set[str]) -> None:
        for node in nodes:
            merged = self._objects.merged(node)
            exists = not self._nodes.watched or node in self._nodes.names
            new = merged if merged is not None and exists else None
            old = self._table.node_features(node)
            if new is not None:
                self._table.set_node(new, self._nodes.platforms.get(node))
            else:
                self._table.remove_node(node)
            if self.on_change is not None and old is not new:
                self.on_change(node, old, new)
