"""Prometheus metrics. One registry per application (tests build many), no global state.

Counted as events happen: request latency and count per verb, node verdicts by outcome, lookup
errors by policy, calls answered with an error because the node features were not synced or stale.
Read at scrape time from the live objects (so they can never drift): nodes known, feature-table
generation, readiness, whether the features are stale and how long their watch has been failing,
spec lookups by result and how many joined an in-flight lookup, each source's current errors and
reload count, and every cache (the table's results and explanations, the registry's lookups) with
its size, bounds, hits, misses and evictions, labelled by name. And ``compat_extender_build_info``,
always 1, labelled with the version, the Python version and the source revision.

No ``*_created`` series: prometheus_client adds one per counter and histogram child (its creation
time, which Prometheus does not need: one more series per child). They are dropped from this
registry's output only; the library's global switches (``disable_created_metrics()``,
``PROMETHEUS_DISABLE_CREATED_SERIES``) would change every other registry in the process too.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import extender
from extender.sources.base import FeatureSource, WatchedSource, freshness
from extender.sources.specs import SharedLookups
from extender.sources.wakeup import WakeUps

NS = "compat_extender"
# The scheduler's own extender timeouts are seconds; the interesting range is well under 10 ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_Labelled = TypeVar("_Labelled", Counter, Histogram)

#: The source revision (a git commit) the running code was built from, when the build says so: the
#: image's ``REVISION`` build argument, which the Dockerfile passes on as this variable (a label
#: alone cannot be read from inside the container). Unset: "unknown".
REVISION_ENV = "COMPAT_EXTENDER_REVISION"


def build_info(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What ``compat_extender_build_info`` is labelled with (and ``serve`` logs as it starts)."""
    env = os.environ if environ is None else environ
    return {
        "version": extender.__version__,
        "python_version": platform.python_version(),
        "revision": env.get(REVISION_ENV, "").strip() or "unknown",
    }


class _Registry(CollectorRegistry):
    """A registry whose output has no ``*_created`` samples (see the module's docstring)."""

    def collect(self) -> Iterator[Metric]:
        for metric in super().collect():
            if metric.type in ("counter", "histogram", "summary"):
                created = metric.name + "_created"
                # each scrape gets Metric objects of its own: filtering them changes no state
                metric.samples = [s for s in metric.samples if s.name != created]
            yield metric


class CacheStats(Protocol):
    """A bounded cache, as metrics see it (:class:`extender.caching.BoundedCache`)."""

    name: str
    max_entries: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int

    def __len__(self) -> int: ...

    @property
    def bytes(self) -> int: ...


class Metrics:
    def __init__(self) -> None:
        self.registry: CollectorRegistry = _Registry()
        self.build = Gauge(
            f"{NS}_build_info",
            "Always 1: the extender's version, the Python version that runs it, and the source "
            f"revision it was built from (from ${REVISION_ENV}; unknown when not set).",
            ["version", "python_version", "revision"],
            registry=self.registry,
        )
        self.build.labels(**build_info()).set(1)
        self.latency = Histogram(
            f"{NS}_request_duration_seconds",
            "Time to answer one request, by verb (filter, prioritize, explain, whatif).",
            ["verb"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            f"{NS}_requests",
            "Requests answered, by verb and HTTP status.",
            ["verb", "code"],
            registry=self.registry,
        )
        self.verdicts = Counter(
            f"{NS}_node_verdicts",
            "Filter verdicts per candidate node: compatible, incompatible, or no_features (no NodeFeature).",
            ["outcome"],
            registry=self.registry,
        )
        self.lookup_errors = Counter(
            f"{NS}_spec_lookup_errors",
            "Spec lookups that failed, by the failure policy that applied (Fail answers Error).",
            ["policy"],
            registry=self.registry,
        )
        self.tls_reloads = Counter(
            f"{NS}_tls_reloads",
            "Changed TLS files: reloaded (ok), or refused because they did not load (error).",
            ["result"],
            registry=self.registry,
        )
        self.unavailable = Counter(
            f"{NS}_features_unavailable",
            "Filter/prioritize calls for pods with spec'd images answered with an error because the node "
            "features were not synced yet (not_synced) or their watch had failed for longer than "
            "features.maxStaleSeconds (stale).",
            ["verb", "reason"],
            registry=self.registry,
        )
        self.skipped = Counter(
            f"{NS}_pods_without_specs",
            "Filter/prioritize calls for pods with no spec'd image (the matcher is not run).",
            ["verb"],
            registry=self.registry,
        )
        #: (metric, label values) -> child; every label here takes a handful of values at most.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: _Labelled, *values: str) -> _Labelled:
        """``metric.labels(*values)``, looked up once: ``labels()`` takes a lock, converts and checks
        every value on each call, and the hot path asks for the same few children on every request."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def watch(
        self,
        features: FeatureSource,
        lookups: SharedLookups | None = None,
        sources: Sequence[tuple[str, WatchedSource]] = (),
        caches: Sequence[CacheStats] = (),
        wakeups: WakeUps | None = None,
    ) -> None:
        """Export the live state of these objects at every scrape."""
        self.registry.register(_Live(features, lookups, sources, caches, wakeups))


class _Live(Collector):
    def __init__(
        self,
        features: FeatureSource,
        lookups: SharedLookups | None,
        sources: Sequence[tuple[str, WatchedSource]],
        caches: Sequence[CacheStats] = (),
        wakeups: WakeUps | None = None,
    ) -> None:
        self.features = features
        self.lookups = lookups
        self.sources = sources
        self.caches = caches
        self.wakeups = wakeups

    def describe(self) -> Iterable[Metric]:
        return []  # unchecked collector: the registry does not need names up front

    def collect(self) -> Iterator[Metric]:
        table = self.features.table
        yield GaugeMetricFamily(f"{NS}_nodes_known", "Nodes with NodeFeatures in the table.", len(table))
        yield GaugeMetricFamily(
            f"{NS}_feature_table_generation", "Bumped by every change to the feature table.", table.generation
        )
        yield GaugeMetricFamily(
            f"{NS}_ready", "1 once the initial NodeFeature sync is complete.", int(self.features.ready)
        )
        fresh = freshness(self.features)
        yield GaugeMetricFamily(
            f"{NS}_features_stale",
            "1 while the NodeFeature watch has been failing for longer than features.maxStaleSeconds: "
            "pods with spec'd images are then answered with an error. Never 1 for the file source.",
            int(fresh.stale),
        )
        yield GaugeMetricFamily(
            f"{NS}_features_watch_failing_seconds",
            "How long the NodeFeature list/watch has been failing; 0 while it works (and for files).",
            fresh.failing_seconds,
        )
        if self.lookups is not None:
            c = self.lookups.counts
            lookups = CounterMetricFamily(
                f"{NS}_spec_lookups",
                "Spec lookups by result (out_of_scope: not looked up, no spec).",
                labels=["result"],
            )
            lookups.add_metric(["spec"], c.spec)
            lookups.add_metric(["no_spec"], c.no_spec)
            lookups.add_metric(["error"], c.error)
            lookups.add_metric(["out_of_scope"], c.out_of_scope)
            yield lookups
            yield CounterMetricFamily(
                f"{NS}_spec_lookups_joined",
                "Lookups that waited for an identical lookup already in flight (single-flight).",
                self.lookups.flight.joined,
            )
        errors = GaugeMetricFamily(
            f"{NS}_source_errors", "Files or objects a source currently cannot load.", labels=["source"]
        )
        reloads = CounterMetricFamily(
            f"{NS}_source_reloads", "Reloads that changed something.", labels=["source"]
        )
        for name, source in self.sources:
            errors.add_metric([name], len(source.errors))
            reloads.add_metric([name], source.reloads)
        yield errors
        yield reloads
        if self.wakeups is not None:
            yield from self._wakeups(self.wakeups)
        yield from self._caches((*table.caches.all(), *self.caches))

    def _wakeups(self, wakeups: WakeUps) -> Iterator[Metric]:
        c = wakeups.counts
        sent = CounterMetricFamily(
            f"{NS}_wakeups",
            "Node annotations written to wake pending pods (sent), refused (403/404) or failed (retried).",
            labels=["result"],
        )
        for result, value in (("sent", c.sent), ("refused", c.refused), ("failed", c.failed)):
            sent.add_metric([result], value)
        skipped = CounterMetricFamily(
            f"{NS}_wakeups_skipped",
            "Changed nodes that caused no write: no_flip (fit no waiting pod they did not fit before), "
            "no_pending (no pod with specs waiting), deferred (over maxWritesPerInterval: next interval).",
            labels=["reason"],
        )
        for reason, value in (("no_flip", c.no_flip), ("no_pending", c.no_pending), ("deferred", c.deferred)):
            skipped.add_metric([reason], value)
        yield sent
        yield skipped
        yield GaugeMetricFamily(f"{NS}_wakeups_waiting", "Changed nodes not compared yet.", wakeups.waiting)

    def _caches(self, caches: Sequence[CacheStats]) -> Iterator[Metric]:
        label = ["cache"]
        entries = GaugeMetricFamily(f"{NS}_cache_entries", "Entries held.", labels=label)
        max_entries = GaugeMetricFamily(f"{NS}_cache_max_entries", "The bound on entries.", labels=label)
        size = GaugeMetricFamily(
            f"{NS}_cache_bytes", "Bytes held (as the cache accounts them).", labels=label
        )
        max_size = GaugeMetricFamily(f"{NS}_cache_max_bytes", "The bound on bytes.", labels=label)
        lookups = CounterMetricFamily(f"{NS}_cache_lookups", "Lookups by result.", labels=["cache", "result"])
        evictions = CounterMetricFamily(
            f"{NS}_cache_evictions", "Entries dropped to stay within the bounds.", labels=label
        )
        for c in caches:
            entries.add_metric([c.name], len(c))
            max_entries.add_metric([c.name], c.max_entries)
            size.add_metric([c.name], c.bytes)
            max_size.add_metric([c.name], c.max_bytes)
            lookups.add_metric([c.name, "hit"], c.hits)
            lookups.add_metric([c.name, "miss"], c.misses)
            evictions.add_metric([c.name], c.evictions)
        yield from (entries, max_entries, size, max_size, lookups, evictions)
