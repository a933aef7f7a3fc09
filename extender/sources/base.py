"""The interfaces the decision layer sees: where node features and image specs come from.

A file source (the embedded default), the Kubernetes watch and the OCI registry all sit behind these
two protocols, so the HTTP layer never knows which one it is talking to.
"""

from __future__ import annotations

from typing import Protocol

from extender.errors import SpecLookupError
from extender.match.table import FeatureTable
from extender.spec.model import Spec


class FeatureSource(Protocol):
    @property
    def table(self) -> FeatureTable: ...

    @property
    def ready(self) -> bool:
        """True once the initial list of NodeFeatures is in the table."""
        ...


class SpecSource(Protocol):
    async def lookup(self, image: str) -> Spec | None:
        """The image's spec, ``None`` when it has none; raises SpecLookupError when unknown."""
        ...


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
    """image reference -> spec, from memory."""

    def __init__(self, specs: dict[str, Spec], failing: dict[str, str] | None = None) -> None:
        self._specs = specs
        self._failing = failing or {}

    async def lookup(self, image: str) -> Spec | None:
        if image in self._failing:
            raise SpecLookupError(self._failing[image])
        return self._specs.get(image)


class WatchedSource(Protocol):
    """A source that loads or watches something and can be partly broken: what it cannot load now
    (place -> why) and how many reloads changed something. Read by /metrics and /debug/sources."""

    @property
    def errors(self) -> dict[str, str]: ...

    reloads: int
