"""What the source modules add to: features by type (named ``<source>.<feature>``, as
``nfd compat validate-node`` sees them) and human-readable problems."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from extender.sources.host.hostfs import HostFS, describe, is_missing


@dataclass
class Found:
    fs: HostFS
    flags: dict[str, frozenset[str]] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    instances: dict[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def flag(self, feature: str, names: Iterable[str]) -> None:
        self.flags[feature] = frozenset(names)

    def attr(self, feature: str, values: Mapping[str, str]) -> None:
        self.attributes[feature] = dict(values)

    def inst(self, feature: str, rows: Iterable[Mapping[str, str]]) -> None:
        self.instances[feature] = tuple(dict(r) for r in rows)

    def problem(self, feature: str, text: str) -> None:
        self.problems.append(f"{feature}: {text}")

    def unreadable(self, feature: str, host_path: str, exc: OSError, consequence: str = "") -> None:
        """``pci.device: /host-sys/bus/pci/devices unreadable: Permission denied``."""
        what = "missing" if is_missing(exc) else "unreadable"
        tail = f" ({consequence})" if consequence else ""
        self.problem(feature, f"{self.fs.display(host_path)} {what}: {describe(exc)}{tail}")
