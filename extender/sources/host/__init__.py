"""This host's features, discovered the way NFD's nfd-worker discovers them (pure stdlib).

:mod:`.hostfs` confines every read to the host directories of :class:`HostPaths` and bounds it.
"""

from __future__ import annotations

from extender.sources.host.paths import HostPaths

__all__ = ["HostPaths"]
