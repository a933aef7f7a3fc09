"""The interfaces the decision layer sees: where node features and image specs come from.

A file source (the embedded default), the Kubernetes watch and the OCI registry all sit behind these
two protocols, so the HTTP layer never knows which one it is talking to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from extender.errors import SpecLookupError
from extender.match.table import FeatureTable
from extender.spec.model import Spec
from extender.spec.variants import ImageSpec


class FeatureSource(Protocol):
    @property
    def table(self) -> FeatureTable: ...

    @property
    def ready(self) -> bool:
        """True once the initial list of NodeFeatures is in the table."""
        ...


@dataclass(frozen=True, slots=True)
class Freshness:
    """How far behind the cluster a watched feature table may be. The default is a table that is
    always current: files (re-read from disk) and static tables never go stale."""

    failing_seconds: float = 0.0  # how long the NodeFeature list/watch has been failing; 0 while it works
    max_stale_seconds: float = 0.0  # the bound on that (features.maxStaleSeconds); 0 = none
    last_error: str = ""  # what the failing list/watch said last (also before the initial sync)

    @property
    def stale(self) -> bool:
        """The watch has been failing for longer than the bound: the table may be out of date."""
        return 0 < self.max_stale_seconds < self.failing_seconds


@runtime_checkable
class Watching(Protocol):
    """A feature source fed by a watch that can break (Kubernetes). A source without this method
    is always current."""

    def freshness(self) -> Freshness: ...


def warm(features: FeatureSource) -> bool:
    """Whether the caches a first decision reads are filled (a source without ``warm`` always is:
    see :class:`extender.sources.warmup.Warmed`)."""
    return bool(getattr(features, "warm", True))


def freshness(features: FeatureSource) -> Freshness:
    # getattr, not isinstance(features, Watching): a runtime Protocol check costs ~5% of a filter call
    method: Callable[[], Freshness] | None = getattr(features, "freshness", None)
    return method() if method is not None else Freshness()


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Why no decision that needs node features can be made now: ``reason`` for metrics, ``message``
    for the scheduler's event and the logs."""

    reason: Literal["not_synced", "stale"]
    message: str


def unavailable(features: FeatureSource) -> Unavailable | None:
    """``None`` when decisions can be made on ``features``; otherwise why not: the initial sync is
    not complete, or the watch has been failing for longer than the source's bound."""
    if features.ready:
        fresh = freshness(features)
        if not fresh.stale:
            return None
        return Unavailable(
            "stale",
            f"node features may be stale: the NodeFeature watch has been failing for "
            f"{fresh.failing_seconds:.0f}s, longer than features.maxStaleSeconds "
            f"({fresh.max_stale_seconds:g}s){_last(fresh)}",
        )
    return Unavailable(
        "not_synced",
        f"node features are not synced yet: the initial NodeFeature sync is not complete"
        f"{_last(freshness(features))}",
    )


def _last(fresh: Freshness) -> str:
    return f"; last error: {fresh.last_error}" if fresh.last_error else ""


@runtime_checkable
class KnownImages(Protocol):
    def known_images(self) -> list[str]:
        """Images whose spec this source holds now (mapped, or looked up and cached), no lookup."""
        ...


class SpecSource(Protocol):
    async def lookup(self, image: str) -> Spec | None:
        """The image's spec, ``None`` when it has none; raises SpecLookupError when unknown. For a
        multi-arch image: the spec of the source's default platform."""
        ...


class VariantSource(Protocol):
    """A spec source that knows multi-arch images (see :mod:`extender.spec.variants`)."""

    async def lookup_variants(self, image: str, platforms: Sequence[str]) -> ImageSpec | None:
        """What ``image`` requires of a node of each of ``platforms`` (keys); ``None`` when it has
        no spec for any; raises SpecLookupError when unknown."""
        ...


async def lookup_image(source: SpecSource, image: str, platforms: Sequence[str]) -> ImageSpec | None:
    """:meth:`VariantSource.lookup_variants` when ``source`` has it; otherwise its one spec, which
    then applies to every platform."""
    method: Callable[[str, Sequence[str]], Awaitable[ImageSpec | None]] | None = getattr(
        source, "lookup_variants", None
    )
    if method is not None:
        return await method(image, platforms)
    spec = await source.lookup(image)
    return None if spec is None else ImageSpec(image, spec)


class StaticFeatures:
    """A table that is complete from the start (files, tests, what-if)."""

    def __init__(self, table: FeatureTable) -> None:
        self._table = table

    @property
    def table(self) -> FeatureTable:
        return self._table

    @property
    def ready(self) -> bool:
        return True


class StaticSpecs:
    """image reference -> spec, from memory. A value that is an :class:`ImageSpec` with variants is
    a multi-arch image: its variants answer for their platforms, every other platform is missing
    from its index."""

    def __init__(self, specs: Mapping[str, Spec | ImageSpec], failing: dict[str, str] | None = None) -> None:
        self._specs = specs
        self._failing = failing or {}

    def known_images(self) -> list[str]:
        return list(self._specs)

    async def lookup(self, image: str) -> Spec | None:
        if image in self._failing:
            raise SpecLookupError(self._failing[image])
        found = self._specs.get(image)
        return found.spec if isinstance(found, ImageSpec) else found

    async def lookup_variants(self, image: str, platforms: Sequence[str]) -> ImageSpec | None:
        if image in self._failing:
            raise SpecLookupError(self._failing[image])
        found = self._specs.get(image)
        if found is None or isinstance(found, ImageSpec):
            return found
        return ImageSpec(image, found)


class WatchedSource(Protocol):
    """A source that loads or watches something and can be partly broken: what it cannot load now
    (place -> why) and how many reloads changed something. Read by /metrics and /debug/sources."""

    @property
    def errors(self) -> dict[str, str]: ...

    reloads: int
