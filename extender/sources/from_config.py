"""The sources the configuration names, opened and closed as one: what ``serve`` runs on.

    features.source: files       -> FileFeatures (a directory, re-read on change)
                     kubernetes  -> KubeFeatures (list + watch NodeFeatures and Nodes)
    specs.source:    files       -> FileSpecs (an image -> spec mapping file, re-read on change)
                     registry    -> RegistrySpecs (OCI referrers, bounded caches)
    prefetch.enabled             -> Prefetcher (unscheduled pods' images looked up ahead of time)

:func:`open_sources` is an async context manager over one :class:`contextlib.AsyncExitStack`: on
entry everything is loaded or started (file sources read once, watches and pollers started as tasks)
and each source registers its own cleanup as it starts; on exit tasks are cancelled and HTTP
sessions closed, in reverse order. Readiness (``features.ready``) turns true after the initial
NodeFeature list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extender.caching import BoundedCache
from extender.config import Config
from extender.errors import ConfigError, RegistryError
from extender.images import ImageScope
from extender.platforms import key_of, parse_platform_spec
from extender.sources.base import FeatureSource, SpecSource, WatchedSource
from extender.sources.files import FileFeatures, FileSpecs, poll
from extender.sources.heap import HeapKeeper
from extender.sources.registry.auth import Credentials, docker_config_credentials
from extender.sources.registry.client import RegistryClient, no_credentials
from extender.sources.registry.lookup import CacheSettings, RegistrySpecs
from extender.sources.registry.transport import AiohttpTransport
from extender.sources.specs import SharedLookups
from extender.sources.wakeup import PendingPods, WakeUps
from extender.sources.warmup import Warmed

if TYPE_CHECKING:  # the Kubernetes client is imported only when features.source is kubernetes
    from kubernetes_asyncio.client import ApiClient

    from extender.sources.kube import KubeFeatures
    from extender.sources.kubeclient import ApiClientTransport

log = logging.getLogger(__name__)

MAX_DOCKER_CONFIG_BYTES = 1 << 20


@dataclass
class Sources:
    features: FeatureSource
    specs: SpecSource  # the configured source, without single-flight
    lookups: SharedLookups  # what the HTTP layer asks: single-flight in front of ``specs``
    watched: list[tuple[str, WatchedSource]]
    caches: tuple[BoundedCache[object, object], ...] = ()
    summary: str = ""
    wakeups: WakeUps | None = None  # wakeUp.enabled
    heap: HeapKeeper | None = None


class DockerConfigCredentials:
    """Credentials from a docker ``config.json`` (a mounted pull Secret), re-read when the file
    changes (Kubernetes updates mounted Secrets in place). A file that cannot be read or decoded is
    logged and treated as empty until it is fixed; the last good content is not kept, so revoked
    credentials stop being used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._doc: object = {}
        self.error = ""

    def _load(self) -> object:
        try:
            st = self.path.stat()
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror}"
            self._stamp, self._doc = None, {}
            return self._doc
        stamp = (st.st_mtime, st.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                if st.st_size > MAX_DOCKER_CONFIG_BYTES:
                    raise ValueError(f"over {MAX_DOCKER_CONFIG_BYTES} bytes")
                self._doc = json.loads(self.path.read_bytes())
                self.error = ""
            except (OSError, ValueError) as exc:
                self.error = f"{self.path}: {exc}"
                self._doc = {}
                log.warning("registry.dockerConfig: %s", self.error)
        return self._doc

    def __call__(self, registry: str) -> Credentials | None:
        doc = self._load()
        try:
            return docker_config_credentials(doc, registry)
        except RegistryError as exc:
            log.warning("registry.dockerConfig: %s", exc)
            return None


def registry_client(config: Config) -> tuple[RegistryClient, AiohttpTransport]:
    r = config.registry
    for host, path in r.caFiles.items():
        if not path.is_file():
            raise ConfigError(f"registry.caFiles.{host}", f"{path} is not a file")
    try:
        transport = AiohttpTransport(request_seconds=r.requestSeconds, ca_files=r.caFiles)
    except RegistryError as exc:
        raise ConfigError("registry.caFiles", str(exc)) from None
    client = RegistryClient(
        transport,
        credentials=DockerConfigCredentials(r.dockerConfig) if r.dockerConfig else no_credentials,
        allow=frozenset(r.allow) or None,
        plain_http=frozenset(r.plainHttp),
        tls_hosts=frozenset(r.caFiles),
        max_manifest_bytes=r.maxManifestBytes,
        max_blob_bytes=r.maxSpecBytes,
    )
    return client, transport


def registry_specs(config: Config, client: RegistryClient) -> RegistrySpecs:
    r, c = config.registry, config.registry.cache
    return RegistrySpecs(
        client,
        platform=parse_platform_spec(r.platform),
        cache=CacheSettings(
            tag_seconds=c.tagSeconds,
            referrers_seconds=c.referrersSeconds,
            negative_seconds=c.negativeSeconds,
            entries=c.entries,
            spec_entries=c.specEntries,
            spec_bytes=c.specBytes,
        ),
        lookup_seconds=r.lookupSeconds,
        max_spec_bytes=r.maxSpecBytes,
        spec_limits=config.limits.spec_limits(),
    )


def start_task(
    stack: contextlib.AsyncExitStack, coro: Coroutine[Any, Any, None], name: str
) -> asyncio.Task[None]:
    """Run ``coro`` as a task until ``stack`` closes, which cancels it and waits for it to end. The
    loops handle their own errors; one that escapes ends the task and is logged with its traceback."""

    async def run() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - the loops inside handle their own errors
            log.exception("%s stopped", name)

    task = asyncio.create_task(run(), name=name)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):  # the cancellation asked for just above
            await task
        coro.close()  # a task cancelled before its first step never started ``coro``: not an error

    stack.push_async_callback(stop)
    return task


@contextlib.asynccontextmanager
async def open_sources(config: Config) -> AsyncIterator[Sources]:
    """Every configured source, loaded or started; on exit each one's own cleanup runs (tasks
    cancelled, HTTP clients closed) in reverse order of starting, also when a later one failed to
    start. A cleanup that fails is not swallowed: it propagates once the others have run."""
    async with contextlib.AsyncExitStack() as stack:
        watched: list[tuple[str, WatchedSource]] = []
        summary: list[str] = []
        heap = HeapKeeper()  # from before the features load: freezes while they do
        start_task(stack, heap.run(), "heap")
        features, kube_transport = await _open_features(config, stack, watched, summary)
        heap.features = features
        specs, caches = await _open_specs(config, stack, watched, summary)
        wakeups: WakeUps | None = None
        scope = ImageScope(config.specs.scope)
        lookups = SharedLookups(specs, scope=scope)
        if scope:
            summary.append(f"specs only for images under {', '.join(scope.patterns)}")
        if config.specs.source == "registry" and config.registry.allow and not scope:
            log.warning(
                "registry.allow is set but specs.scope is not: an image from any other registry (an "
                "injected sidecar, say) is a failed lookup, and under failurePolicy Fail its pod is not "
                "scheduled; set specs.scope to the registries whose images carry specs"
            )
        if config.prefetch.enabled:
            from extender.sources.prefetch import Prefetcher

            if kube_transport is None:  # load_config refuses this combination already
                raise ConfigError("prefetch.enabled", "needs features.source: kubernetes")
            prefetcher = Prefetcher(
                kube_transport,
                lookups,
                config.prefetch.schedulerNames,
                concurrency=config.prefetch.concurrency,
                platforms=features.table.platforms,  # what /filter asks: every node platform's variant
            )
            stack.push_async_callback(prefetcher.close)
            start_task(stack, prefetcher.run(), "prefetch")
            watched.append(("prefetch", prefetcher))
            summary.append(f"prefetching images of pods for {', '.join(config.prefetch.schedulerNames)}")
            if config.wakeUp.enabled:
                wakeups = _wake_ups(config, features, kube_transport, prefetcher, lookups)
                start_task(stack, wakeups.run(), "wake-up")
                summary.append("waking pending pods when a NodeFeature change makes a node fit them")
        # ready (``/readyz``) only once the caches a first /filter reads are warm: at once for a
        # source that is complete already (files), before the listener opens; else once it is
        # (through the configured source itself: the warm-up's cache hits are not lookups the
        # scheduler caused, so they stay out of compat_extender_spec_lookups_total)
        warmed = Warmed(features, specs, images=lookups.known_images)
        if features.ready:
            await warmed.warm_up()
            start_task(stack, warmed.warm_reasons(), "warm-up")
        else:
            start_task(stack, warmed.run(), "warm-up")
        yield Sources(warmed, specs, lookups, watched, caches, "; ".join(summary), wakeups, heap)


def _wake_ups(
    config: Config,
    features: FeatureSource,
    transport: ApiClientTransport,
    pods: PendingPods,
    lookups: SharedLookups,
) -> WakeUps:
    from extender.sources.kube import KubeFeatures

    if not isinstance(features, KubeFeatures):  # load_config refuses this combination already
        raise ConfigError("wakeUp.enabled", "needs features.source: kubernetes")
    wakeups = WakeUps(
        transport,
        pods,
        lookups,
        interval=config.wakeUp.intervalSeconds,
        max_writes=config.wakeUp.maxWritesPerInterval,
        missing_features=config.missingFeatures,
        missing_platform=config.missingPlatform,
        platforms=features.table.platforms,
        platform_of=features.table.platform_of,
    )
    features.on_change = wakeups.features_changed
    return wakeups


async def _open_features(
    config: Config,
    stack: contextlib.AsyncExitStack,
    watched: list[tuple[str, WatchedSource]],
    summary: list[str],
) -> tuple[FeatureSource, ApiClientTransport | None]:
    if config.features.source == "files":
        if not config.features.path.is_dir():
            raise ConfigError("features.path", f"{config.features.path} is not a directory")
        files = FileFeatures(
            config.features.path,
            nfd_namespace=config.features.nfdNamespace,
            default_platform=key_of(config.registry.platform),
        )
        await files.refresh()
        for where, why in files.errors.items():
            log.warning("features: cannot load %s: %s", where, why)
        if config.features.reloadSeconds:
            start_task(stack, poll(files.refresh, config.features.reloadSeconds, "features"), "features")
        watched.append(("features", files))
        summary.append(f"{len(files.table)} nodes from {config.features.path}")
        return files, None
    kube, api, transport = await _kube_features(config)
    stack.push_async_callback(api.close)
    start_task(stack, kube.run(), "watch-nodefeatures")
    watched.append(("features", kube))
    summary.append("NodeFeatures from the Kubernetes API (ready after the initial list)")
    return kube, transport


async def _open_specs(
    config: Config,
    stack: contextlib.AsyncExitStack,
    watched: list[tuple[str, WatchedSource]],
    summary: list[str],
) -> tuple[SpecSource, tuple[BoundedCache[object, object], ...]]:
    if config.specs.source == "files":
        if not config.specs.images.is_file():
            raise ConfigError("specs.images", f"{config.specs.images} is not a file")
        mapping = FileSpecs(config.specs.images, limits=config.limits.spec_limits())
        await mapping.refresh()
        for where, why in mapping.errors.items():
            log.warning("specs: cannot load %s: %s", where, why)
        if config.specs.reloadSeconds:
            start_task(stack, poll(mapping.refresh, config.specs.reloadSeconds, "specs"), "specs")
        watched.append(("specs", mapping))
        summary.append(f"{len(mapping.images)} images with specs from {config.specs.images}")
        return mapping, ()
    client, transport = registry_client(config)
    stack.push_async_callback(transport.close)
    remote = registry_specs(config, client)
    watched.append(("specs", remote))
    allowed = ", ".join(config.registry.allow) or "any registry"
    summary.append(f"specs from OCI registries ({allowed})")
    return remote, remote.caches


async def _kube_features(config: Config) -> tuple[KubeFeatures, ApiClient, ApiClientTransport]:
    from extender.sources.kube import KubeFeatures
    from extender.sources.kubeclient import ApiClientTransport, make_api_client

    try:
        api = await make_api_client(config.features.kubeconfig)
    except Exception as exc:  # kubernetes-asyncio's ConfigException, a missing or broken file, ...
        where = config.features.kubeconfig or "in-cluster service account, $KUBECONFIG or ~/.kube/config"
        raise ConfigError(
            "features.kubeconfig", f"no usable Kubernetes configuration ({where}): {exc}"
        ) from None
    transport = ApiClientTransport(api)
    kube = KubeFeatures(
        transport,
        nfd_namespace=config.features.nfdNamespace,
        watch_nodes=config.features.watchNodes,
        default_platform=key_of(config.registry.platform),
        max_stale_seconds=config.features.maxStaleSeconds,
    )
    return kube, api, transport
