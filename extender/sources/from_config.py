"""The sources the configuration names, opened and closed as one: what ``serve`` runs on.

    features.source: files       -> FileFeatures (a directory, re-read on change)
                     kubernetes  -> KubeFeatures (list + watch NodeFeatures and Nodes)
    specs.source:    files       -> FileSpecs (an image -> spec mapping file, re-read on change)
                     registry    -> RegistrySpecs (OCI referrers, bounded caches)
    prefetch.enabled             -> Prefetcher (unscheduled pods' images looked up ahead of time)

:func:`open_sources` is an async context manager: on entry everything is loaded or started (file
sources read once, watches and pollers started as tasks), on exit tasks are cancelled and HTTP
sessions closed. Readiness (``features.ready``) turns true after the initial NodeFeature list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from extender.caching import BoundedCache
from extender.config import Config
from extender.errors import ConfigError, RegistryError
from extender.platforms import parse_platform_spec
from extender.sources.base import FeatureSource, SpecSource, WatchedSource
from extender.sources.files import FileFeatures, FileSpecs, poll
from extender.sources.registry.auth import Credentials, docker_config_credentials
from extender.sources.registry.client import RegistryClient, no_credentials
from extender.sources.registry.lookup import CacheSettings, RegistrySpecs
from extender.sources.registry.transport import AiohttpTransport
from extender.sources.specs import SharedLookups

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
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    summary: str = ""


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


def _task(coro: Awaitable[None], name: str) -> asyncio.Task[None]:
    async def run() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - the loops inside handle their own errors
            log.exception("%s stopped", name)

    return asyncio.create_task(run(), name=name)


@contextlib.asynccontextmanager
async def open_sources(config: Config) -> AsyncIterator[Sources]:
    closers: list[Callable[[], Awaitable[None]]] = []
    tasks: list[asyncio.Task[None]] = []
    watched: list[tuple[str, WatchedSource]] = []
    summary: list[str] = []
    kube_transport: ApiClientTransport | None = None
    try:
        features: FeatureSource
        if config.features.source == "files":
            if not config.features.path.is_dir():
                raise ConfigError("features.path", f"{config.features.path} is not a directory")
            files = FileFeatures(config.features.path, nfd_namespace=config.features.nfdNamespace)
            await files.refresh()
            for where, why in files.errors.items():
                log.warning("features: cannot load %s: %s", where, why)
            if config.features.reloadSeconds:
                tasks.append(
                    _task(poll(files.refresh, config.features.reloadSeconds, "features"), "features")
                )
            features = files
            watched.append(("features", files))
            summary.append(f"{len(files.table)} nodes from {config.features.path}")
        else:
            kube, api, kube_transport = await _kube_features(config)
            closers.append(api.close)
            tasks.append(_task(kube.run(), "watch-nodefeatures"))
            features = kube
            watched.append(("features", kube))
            summary.append("NodeFeatures from the Kubernetes API (ready after the initial list)")

        specs: SpecSource
        caches: tuple[BoundedCache[object, object], ...] = ()
        if config.specs.source == "files":
            if not config.specs.images.is_file():
                raise ConfigError("specs.images", f"{config.specs.images} is not a file")
            mapping = FileSpecs(config.specs.images, limits=config.limits.spec_limits())
            await mapping.refresh()
            for where, why in mapping.errors.items():
                log.warning("specs: cannot load %s: %s", where, why)
            if config.specs.reloadSeconds:
                tasks.append(_task(poll(mapping.refresh, config.specs.reloadSeconds, "specs"), "specs"))
            specs = mapping
            watched.append(("specs", mapping))
            summary.append(f"{len(mapping.images)} images with specs from {config.specs.images}")
        else:
            client, transport = registry_client(config)
            closers.append(transport.close)
            remote = registry_specs(config, client)
            specs = remote
            caches = remote.caches
            watched.append(("specs", remote))
            allowed = ", ".join(config.registry.allow) or "any registry"
            summary.append(f"specs from OCI registries ({allowed})")

        lookups = SharedLookups(specs)
        if config.prefetch.enabled:
            from extender.sources.prefetch import Prefetcher

            if kube_transport is None:  # load_config refuses this combination already
                raise ConfigError("prefetch.enabled", "needs features.source: kubernetes")
            prefetcher = Prefetcher(
                kube_transport,
                lookups,
                config.prefetch.schedulerNames,
                concurrency=config.prefetch.concurrency,
            )
            closers.append(prefetcher.close)
            tasks.append(_task(prefetcher.run(), "prefetch"))
            watched.append(("prefetch", prefetcher))
            summary.append(f"prefetching images of pods for {', '.join(config.prefetch.schedulerNames)}")
        yield Sources(features, specs, lookups, watched, caches, tasks, "; ".join(summary))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()


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
        transport, nfd_namespace=config.features.nfdNamespace, watch_nodes=config.features.watchNodes
    )
    return kube, api, transport
