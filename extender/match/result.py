"""What evaluating a spec produces, shared by both matchers.

Per node and per *selected* compatibility set: MATCHED, NOT_MATCHED or ERROR (NFD would have
reported an evaluation error, e.g. a kernel version that is not semver). Sets that the tag selection
skipped are not evaluated at all, exactly as ``nfd compat validate-node --tags`` skips them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


class Status(enum.IntEnum):
    NOT_MATCHED = 0
    MATCHED = 1
    ERROR = 2


@dataclass(frozen=True, slots=True)
class SetResult:
    index: int  # position in spec.compatibilities
    status: Status
    error: str = ""


@dataclass(frozen=True, slots=True)
class SpecEvaluation:
    """Results for ``nodes`` (rows) x ``set_indexes`` (columns).

    ``status`` is an int8 matrix of :class:`Status` values; ``errors`` maps (row, column) of every
    ERROR cell to NFD's error message; ``known[row]`` is False for a node that has no NodeFeature
    (it was evaluated against empty features).
    """

    spec_digest: str
    nodes: tuple[str, ...]
    set_indexes: tuple[int, ...]
    status: npt.NDArray[np.int8]
    known: npt.NDArray[np.bool_]
    errors: Mapping[tuple[int, int], str] = field(default_factory=dict)

    def node_results(self, node: str) -> tuple[SetResult, ...]:
        row = self.nodes.index(node)
        return tuple(
            SetResult(idx, Status(int(self.status[row, col])), self.errors.get((row, col), ""))
            for col, idx in enumerate(self.set_indexes)
        )

    def any_matched(self) -> npt.NDArray[np.bool_]:
        """Per node: does at least one selected set match? (No sets selected -> False.)"""
        return np.asarray((self.status == Status.MATCHED).any(axis=1), dtype=np.bool_)

    def as_dict(self) -> dict[str, list[SetResult]]:
        return {n: list(self.node_results(n)) for n in self.nodes}
