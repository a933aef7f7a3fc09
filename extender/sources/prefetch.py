"""Prefetch: resolve the images of pending pods as soon as they are created, so that kube-scheduler's
filter call finds the spec source's cache warm instead of waiting for a registry round trip.

Pods come from a :class:`~extender.sources.kube.Reflector` over ``/api/v1/pods`` (list, then watch,
with resume, relist after 410, and the same capped backoff as the NodeFeature watch, so it too is back
within seconds of an API-server restart), field-selected on the server: ``spec.nodeName=`` (not bound yet)
and ``spec.schedulerName=<name>``, **one reflector per scheduler name**. A field selector holds only
ANDed requirements, so several names cannot share one selector; the alternative, one watch of every
unscheduled pod filtered here, would stream the pending pods of every other scheduler in the cluster
(batch schedulers can have thousands) only to drop them, while the names are few (usually one, the
profile that calls this extender), so one watch each is cheap. An empty ``scheduler_names`` means every
scheduler: a single reflector with ``spec.nodeName=`` alone. Pods are also checked here, so a
transport that ignored the selector could not make us prefetch for someone else.

For each pod listed or ADDED/MODIFIED, every image (:func:`~extender.decide.pod_images`) that is
neither remembered as resolved nor already queued or in flight goes into a bounded queue, drained by
``concurrency`` workers. A worker asks what ``/filter`` will ask: the image's variants for the
platforms of the cluster's nodes (``platforms``, the feature table's;
:func:`~extender.sources.base.lookup_image`), so for a multi-arch image every child some node would
pull is warm, not only the default platform's; with no platforms known (the default, or a table
still empty) it asks ``specs.lookup``.
An image is remembered with the platforms it was resolved for, and queued again when a node of
another platform has joined since. Memory stays bounded everywhere:

* the queue holds at most ``queue_size`` images; one that does not fit is dropped (counted in
  ``dropped``) and not remembered, so a later event of a pod naming it (a failed scheduling attempt
  updates the pod's status) queues it again, or the filter call itself resolves it;
* resolved images are remembered, at most ``remember`` of them (LRU), each for ``remember_seconds``:
  a busy Deployment does not queue its image at every pod event, and a tag that moves is looked up
  again after a while (the spec source decides whether that reaches the registry);
* a failed image is not queued again for ``retry_seconds`` (a registry that is down does not get one
  lookup per pod event), then the next pod naming it tries again; the failures of that window, at
  most :data:`MAX_ERRORS` images, are what ``errors`` reports.

A lookup that raises (or exceeds ``lookup_timeout``) is logged and counted; nothing stops the workers
or the reflectors but cancellation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from cachetools import TTLCache

from extender.errors import PodError
from extender.pods import pod_images, pod_tags
from extender.sources.base import SpecSource, lookup_image
from extender.sources.kube import Backoff, KubeTransport, Reflector
from extender.sources.wakeup import PendingPod

log = logging.getLogger(__name__)

PODS_PATH = "/api/v1/pods"
UNSCHEDULED = "spec.nodeName="
DEFAULT_SCHEDULER = "default-scheduler"  # what the API server puts in an empty spec.schedulerName
MAX_ERRORS = 1000


def pod_selector(scheduler_name: str) -> str:
    """The field selector for unscheduled pods of ``scheduler_name`` (of any scheduler when empty)."""
    return f"spec.schedulerName={scheduler_name},{UNSCHEDULED}" if scheduler_name else UNSCHEDULED


def _pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata")
    if not isinstance(meta, Mapping):
        return "?"
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


class Prefetcher:
    """Looks up the specs of pending pods' images ahead of the scheduler. ``run()`` until cancelled
    (or :meth:`close`). Counters: ``pods_seen`` (pods listed or ADDED/MODIFIED that are ours and
    unscheduled), ``images_queued``, ``lookups_ok``, ``lookups_failed``, ``dropped`` (queue full),
    ``bad_pods`` (pods whose images cannot be read), ``reloads`` (pod lists, initial and after 410)."""

    def __init__(
        self,
        transport: KubeTransport,
        specs: SpecSource,
        scheduler_names: Collection[str],
        *,
        concurrency: int = 8,
        backoff: Callable[[], Backoff] | None = None,
        queue_size: int = 1000,
        remember: int = 10_000,
        remember_seconds: float = 600.0,
        retry_seconds: float = 30.0,
        lookup_timeout: float = 60.0,
        platforms: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        if isinstance(scheduler_names, str):
            raise TypeError("scheduler_names: a collection of names, not one string")
        if concurrency < 1 or queue_size < 1 or remember < 1:
            raise ValueError("concurrency, queue_size and remember must be at least 1")
        names = sorted(set(scheduler_names))
        for name in names:
            if not name or any(c in name for c in ",=!\\ "):
                raise ValueError(f"scheduler name {name!r} cannot be used in a field selector")
        self.specs = specs
        #: the platforms of the cluster's nodes (keys), as /filter asks for them; empty: lookup(image)
        self.platforms = platforms
        self.scheduler_names = frozenset(names)
        self.concurrency = concurrency
        self.lookup_timeout = lookup_timeout
        make_backoff = backoff or Backoff
        self.reflectors = [
            Reflector(
                transport,
                PODS_PATH,
                functools.partial(self._replace, name),
                functools.partial(self._event, name),
                make_backoff(),
                field_selector=pod_selector(name),
            )
            for name in (names or [""])
        ]
        # per scheduler name (each watch lists its own): the pods not bound yet, for the wake-up
        self._waiting: dict[str, dict[str, PendingPod]] = {name: {} for name in (names or [""])}
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self._pending: set[str] = set()  # queued or being looked up
        # image -> the platforms it was resolved for
        self._done: TTLCache[str, frozenset[str]] = TTLCache(maxsize=remember, ttl=remember_seconds)
        self._failed: TTLCache[str, str] = TTLCache(maxsize=MAX_ERRORS, ttl=retry_seconds)  # image -> why
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self.pods_seen = 0
        self.images_queued = 0
        self.lookups_ok = 0
        self.lookups_failed = 0
        self.dropped = 0
        self.bad_pods = 0
        self.reloads = 0

    # -- state ----------------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """True once every reflector's initial list has been seen (its images queued)."""
        return all(r.synced.is_set() for r in self.reflectors)

    @property
    def in_flight(self) -> int:
        """Images queued or being looked up."""
        return len(self._pending)

    @property
    def errors(self) -> dict[str, str]:
        """Images whose lookup failed in the last ``retry_seconds``, and pod lists/watches that are
        failing now (for how long, and the last error)."""
        self._failed.expire()
        out = dict(self._failed.items())
        for r in self.reflectors:
            if r.broken_since is not None:
                out[f"watch {r.where}"] = f"failing for {r.failing_seconds:.0f}s: {r.last_error}"
        return out

    # -- running --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Watch pods and resolve their images until cancelled or closed."""
        if self._tasks:
            raise RuntimeError("Prefetcher.run() is already running")
        if self._closed.is_set():
            return
        tasks = [
            asyncio.create_task(r.run(), name=f"prefetch-watch-{i}") for i, r in enumerate(self.reflectors)
        ]
        tasks += [
            asyncio.create_task(self._worker(), name=f"prefetch-worker-{i}") for i in range(self.concurrency)
        ]
        self._tasks = tasks
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if not self._closed.is_set() or (me is not None and me.cancelling()):
                raise  # cancelled from outside: say so
            # close() cancelled our tasks: a normal end
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks = []

    async def close(self) -> None:
        """Stop the watches and the workers; a running :meth:`run` returns. Lookups in progress are
        abandoned (a shared lookup carries on for its other waiters)."""
        self._closed.set()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- pods -----------------------------------------------------------------------------------

    def pending_pods(self) -> list[PendingPod]:
        """The pods of the configured schedulers that are not bound yet, as the watches last saw them."""
        return [pod for waiting in self._waiting.values() for pod in waiting.values()]

    def _replace(self, scheduler: str, pods: list[dict[str, Any]]) -> None:
        self.reloads += 1
        self._waiting[scheduler] = {}
        for pod in pods:
            self._pod(scheduler, pod)

    def _event(self, scheduler: str, kind: str, pod: dict[str, Any]) -> None:
        if kind in ("ADDED", "MODIFIED"):
            self._pod(scheduler, pod)
        elif kind == "DELETED":  # the pod is gone or bound (no longer matches the selector)
            self._waiting[scheduler].pop(_pod_key(pod), None)

    def _ours(self, pod: Mapping[str, Any]) -> bool:
        spec = pod.get("spec")
        if not isinstance(spec, Mapping) or spec.get("nodeName"):
            return False
        if not self.scheduler_names:
            return True
        return (spec.get("schedulerName") or DEFAULT_SCHEDULER) in self.scheduler_names

    def _pod(self, scheduler: str, pod: dict[str, Any]) -> None:
        # runs inside the reflector: must not raise, or the reflector would retry the same event
        key = _pod_key(pod)
        if not self._ours(pod):
            self._waiting[scheduler].pop(key, None)
            return
        self.pods_seen += 1
        try:
            images = pod_images(pod)
        except PodError as exc:
            self.bad_pods += 1
            self._waiting[scheduler].pop(key, None)
            log.warning("prefetch: pod %s ignored: %s", key, exc)
            return
        if images:
            self._waiting[scheduler][key] = PendingPod(key, tuple(images), pod_tags(pod))
        for image in images:
            self._enqueue(image)

    def _enqueue(self, image: str) -> None:
        if image in self._pending or image in self._failed:
            return
        done = self._done.get(image)
        if done is not None and done.issuperset(self.platforms()):
            return  # resolved, and no node of another platform has joined since
        try:
            self._queue.put_nowait(image)
        except asyncio.QueueFull:
            self.dropped += 1
            return
        self._pending.add(image)
        self.images_queued += 1

    # -- lookups --------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            image = await self._queue.get()
            try:
                await self._resolve(image)
            finally:
                self._pending.discard(image)
                self._queue.task_done()

    async def _resolve(self, image: str) -> None:
        platforms = tuple(self.platforms())
        try:
            async with asyncio.timeout(self.lookup_timeout):
                if platforms:  # the same call /filter makes, so its single-flight and caches are shared
                    await lookup_image(self.specs, image, platforms)
                else:
                    await self.specs.lookup(image)
        except Exception as exc:  # SpecLookupError, a timeout, or a bug in a source: never fatal here
            self.lookups_failed += 1
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._failed[image] = why  # the LRU keeps at most MAX_ERRORS
            log.warning("prefetch: %s: %s", image, why)
            return
        self.lookups_ok += 1
        self._done[image] = frozenset(platforms)
