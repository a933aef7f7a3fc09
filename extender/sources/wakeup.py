"""Wake pending pods when a NodeFeature change makes a node fit them (``wakeUp.enabled``).

kube-scheduler does not watch NodeFeatures: a pod this extender rejected waits in the scheduler's
unschedulable pool until some cluster event it does watch, or its periodic flush (five minutes).
Because the extender rejected nodes, the scheduler marks the pod as rejected by the ``Extender``
pseudo-plugin, which it re-queues on *any* cluster event; an update of a Node object is such an event.
So when a NodeFeature change turns a node from "does not fit" into "fits" for a pod that is waiting,
this module writes one annotation of the extender's own, :data:`ANNOTATION`, on that Node: the
smallest write the scheduler reacts to, and one write wakes every pod waiting for that node.

Rules:

* only a change that flips a verdict a pending pod is waiting for causes a write: the pod's spec'd
  images did not fit the node's features before the change and fit after it (:func:`decide.fits`,
  the same verdict ``/filter`` gives);
* changes are coalesced: :meth:`WakeUps.features_changed` only records the node's features before
  the first change and after the last one; every ``interval`` seconds :meth:`WakeUps.flush` compares
  them, so a node is written at most once per interval however often its NodeFeature changes;
* at most ``max_writes`` writes per interval in all; nodes over the cap keep their place for the
  next interval (a burst of 5,000 changes becomes ``max_writes`` writes per interval, never 5,000 at
  once), and a node whose features have changed again meanwhile is compared afresh;
* a refused write (403: RBAC or the ValidatingAdmissionPolicy in ``deploy/``) or a deleted node is
  logged and counted, never retried and never fatal; a failed one (the API server unreachable, 5xx)
  is tried again next interval.

The pending pods come from the prefetcher's pod watch (:class:`PendingPods`), their specs from the
same lookups ``/filter`` uses (cached by then: the prefetcher looked them up when the pod appeared).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from extender.decide import ImageSpec, MissingFeatures, MissingPlatform, fits
from extender.errors import KubeError
from extender.features.nodefeature import NodeFeatures
from extender.sources.base import SpecSource, lookup_image

log = logging.getLogger(__name__)

#: The Node annotation this module writes (the time of the write, RFC 3339); nothing else is written.
ANNOTATION = "compat-extender.nfd.io/features-changed"


@dataclass(frozen=True, slots=True)
class PendingPod:
    key: str  # namespace/name, for logs
    images: tuple[str, ...]
    tags: frozenset[str] | None = None


class PendingPods(Protocol):
    def pending_pods(self) -> Collection[PendingPod]:
        """The pods of the configured schedulers that are not bound to a node yet."""
        ...


class NodePatcher(Protocol):
    async def patch(self, path: str, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch of the object at ``path``; KubeError (with ``code``) when refused."""
        ...


def node_path(node: str) -> str:
    return f"/api/v1/nodes/{node}"


def annotation_patch(stamp: str) -> dict[str, Any]:
    """The whole write: one annotation, nothing else (what the admission policy allows)."""
    return {"metadata": {"annotations": {ANNOTATION: stamp}}}


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(slots=True)
class WakeUpCounts:
    sent: int = 0  # annotations written
    no_flip: int = 0  # changed nodes that fit no waiting pod that they did not fit before
    no_pending: int = 0  # changed nodes while no pod with spec'd images was waiting
    deferred: int = 0  # flipped nodes moved to the next interval by the cap on writes
    refused: int = 0  # writes the API server refused (403) or whose node is gone (404)
    failed: int = 0  # writes that failed otherwise (tried again next interval)


class WakeUps:
    def __init__(
        self,
        patcher: NodePatcher,
        pods: PendingPods,
        specs: SpecSource,
        *,
        interval: float = 5.0,
        max_writes: int = 20,
        missing_features: MissingFeatures = "fail",
        missing_platform: MissingPlatform = "fail",
        platforms: Callable[[], Sequence[str]] = tuple,
        platform_of: Callable[[str], str | None] = lambda node: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0 or max_writes < 1:
            raise ValueError("interval must be positive and max_writes at least 1")
        self.patcher = patcher
        self.pods = pods
        self.specs = specs
        self.interval = interval
        self.max_writes = max_writes
        self.missing_features = missing_features
        self.missing_platform = missing_platform
        #: the platforms of the cluster's nodes, and one node's (multi-arch images: the variant a node
        #: is judged by); the feature table's, in the server
        self.platforms = platforms
        self.platform_of = platform_of
        self.clock = clock
        self.counts = WakeUpCounts()
        self._before: dict[str, NodeFeatures | None] = {}  # node -> features before its first change
        self._after: dict[str, NodeFeatures | None] = {}  # node -> features after its last change

    def features_changed(self, node: str, old: NodeFeatures | None, new: NodeFeatures | None) -> None:
        """A node's merged features changed (``None``: it has no NodeFeature). Cheap: only recorded."""
        self._before.setdefault(node, old)
        self._after[node] = new

    @property
    def waiting(self) -> int:
        """Changed nodes not compared yet (deferred ones included)."""
        return len(self._after)

    async def run(self) -> None:
        """Flush every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end the wake-ups, nor the server
                log.exception("wake-up: comparing the changed nodes failed")

    async def flush(self) -> int:
        """Compare every node changed since the last flush and write the annotation on those that
        now fit a waiting pod (at most ``max_writes``). Returns the number of writes sent."""
        if not self._after:
            return 0
        before, after = self._before, self._after
        self._before, self._after = {}, {}
        wanted = await self._waiting_specs()
        if not wanted:
            self.counts.no_pending += len(after)
            return 0
        flipped = [
            node
            for node in after
            if self._flips(wanted, before[node], after[node], self.platform_of(node) or "")
        ]
        self.counts.no_flip += len(after) - len(flipped)
        stamp = _rfc3339(self.clock())
        sent = 0
        refused: list[str] = []
        for i, node in enumerate(flipped):
            if sent >= self.max_writes:
                rest = flipped[i:]
                self.counts.deferred += len(rest)
                self._keep(rest, before, after)
                break
            try:
                await self.patcher.patch(node_path(node), annotation_patch(stamp))
            except KubeError as exc:
                if exc.code in (403, 404):
                    self.counts.refused += 1
                    refused.append(f"{node}: {exc}")
                else:
                    self.counts.failed += 1
                    self._keep([node], before, after)
                    log.warning("wake-up: annotating node %s failed, trying again: %s", node, exc)
                continue
            sent += 1
        self.counts.sent += sent
        if refused:
            log.warning(
                "wake-up: %d write(s) refused (RBAC or the admission policy?), e.g. %s",
                len(refused),
                refused[0],
            )
        if sent:
            log.info("wake-up: annotated %d node(s) that now fit a waiting pod", sent)
        return sent

    def _keep(
        self,
        nodes: list[str],
        before: Mapping[str, NodeFeatures | None],
        after: Mapping[str, NodeFeatures | None],
    ) -> None:
        """Put ``nodes`` back for the next flush: their features before stay the older ones, and
        a change recorded meanwhile keeps its newer features after."""
        for node in nodes:
            self._before[node] = before[node]
            self._after.setdefault(node, after[node])

    def _flips(
        self,
        wanted: list[tuple[tuple[ImageSpec, ...], frozenset[str] | None]],
        old: NodeFeatures | None,
        new: NodeFeatures | None,
        platform: str,
    ) -> bool:
        mf, mp = self.missing_features, self.missing_platform
        return any(
            fits(images, new, tags=tags, missing_features=mf, platform=platform, missing_platform=mp)
            and not fits(images, old, tags=tags, missing_features=mf, platform=platform, missing_platform=mp)
            for images, tags in wanted
        )

    async def _waiting_specs(self) -> list[tuple[tuple[ImageSpec, ...], frozenset[str] | None]]:
        """What the waiting pods need, each distinct (specs, tags) once; pods without spec'd images
        (they do not wait for this extender) and pods with an image whose lookup fails (their verdict
        is not known) are left out."""
        pods = list(self.pods.pending_pods())
        with_spec: dict[str, ImageSpec] = {}
        failed: set[str] = set()
        platforms = self.platforms()
        for image in {image for pod in pods for image in pod.images}:
            try:
                found = await lookup_image(self.specs, image, platforms)
            except Exception:  # counted and logged by the lookups; this pod's verdict is not known
                failed.add(image)
                continue
            if found is not None:
                with_spec[image] = found
        out: dict[tuple[tuple[str, ...], frozenset[str] | None], tuple[ImageSpec, ...]] = {}
        for pod in pods:
            specs = tuple(with_spec[i] for i in pod.images if i in with_spec)
            if not specs or failed.intersection(pod.images):
                continue
            out.setdefault((tuple(_identity(s) for s in specs), pod.tags), specs)
        return [(specs, tags) for (_, tags), specs in out.items()]


def _identity(item: ImageSpec) -> str:
    """What makes two images' requirements the same: the digests of their specs, per platform."""
    if item.variants is None:
        return item.spec.digest if item.spec is not None else ""
    return ";".join(
        f"{p}={'-' if v is None else (v.spec.digest if v.spec is not None else '')}"
        for p, v in sorted(item.variants.items())
    )
