"""Run the host sources and assemble one :class:`~extender.features.nodefeature.NodeFeatures`.

The sources are the ones ``nfd compat validate-node`` runs (cpu, kernel, memory, network, pci,
storage, system, usb); features are named ``<source>.<feature>``. NFD's ``local`` (feature files) and
``custom`` (label rules) sources are not implemented. Where nfd-worker logs an error and publishes a
feature without it (or not at all), we do the same and add a line to ``problems``; where
``validate-node`` would abort the whole run (a source whose ``Discover`` fails, e.g. no PCI bus), we
keep going with that feature missing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from extender.features.nodefeature import NodeFeatures
from extender.sources.host import cpu, kernel, memory, network, pci, storage, system, usb
from extender.sources.host.found import Found
from extender.sources.host.hostfs import HostFS, describe
from extender.sources.host.paths import HostPaths

_SOURCES: dict[str, Callable[[Found], None]] = {
    "cpu": cpu.discover,
    "kernel": kernel.discover,
    "memory": memory.discover,
    "network": network.discover,
    "pci": pci.discover,
    "storage": storage.discover,
    "usb": usb.discover,
}
#: Every source name :func:`discover` accepts, in the order they run.
SOURCES: tuple[str, ...] = (*_SOURCES, "system")

__all__ = ["SOURCES", "HostDiscovery", "HostPaths", "discover"]


@dataclass(frozen=True)
class HostDiscovery:
    """What one discovery found: the features (``node`` = the host's node name) and human-readable
    notes about everything that could not be read or had to be approximated."""

    features: NodeFeatures
    problems: tuple[str, ...]


def discover(
    paths: HostPaths, *, sources: Collection[str] | None = None, node_name: str | None = None
) -> HostDiscovery:
    """Discover the host's features the way nfd-worker does, reading only under ``paths``.

    ``sources`` limits the run to some of :data:`SOURCES` (None = all); an unknown name raises
    ValueError. ``node_name`` overrides the node name (else ``$NODE_NAME``, else the host name; see
    :mod:`extender.sources.host.system`). Never raises for anything found on the host."""
    wanted = SOURCES if sources is None else tuple(sources)
    unknown = sorted(set(wanted) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown host feature sources: {', '.join(unknown)} (known: {', '.join(SOURCES)})")
    found = Found(HostFS(paths))
    node = system.node_name(found, node_name)
    runs: list[tuple[str, Callable[[Found], None]]] = [(n, r) for n, r in _SOURCES.items() if n in wanted]
    if "system" in wanted:
        runs.append(("system", lambda f: system.discover(f, node)))
    for name, run in runs:
        try:
            run(found)
        except OSError as exc:  # every expected failure is handled inside; this is a safety net
            found.problem(name, f"discovery stopped early: {describe(exc)}")
    features = NodeFeatures(
        node=node, flags=found.flags, attributes=found.attributes, instances=found.instances
    )
    return HostDiscovery(features, tuple(found.problems))
