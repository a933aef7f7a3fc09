"""Where the inspected host's directories are: NFD's ``pkg/utils/hostpath``.

nfd-worker finds the host's ``/sys``, ``/proc``, ``/etc``, ``/boot``, ``/lib``, ``/usr`` and ``/var``
at a path prefix plus the directory name: prefix ``/`` reads the machine it runs on, and its
DaemonSet (like our validate-image Job) mounts them at ``/host-sys``, ``/host-proc``, ... (prefix
``/host-``). :class:`HostPaths` is that table; unlike NFD's package-level variables, each directory
can be overridden on its own (``HostPaths.with_prefix("/host-").replace(boot="/mnt/boot")``).

One difference: NFD hard-codes a few paths without the prefix (``/proc/sys/kernel/osrelease``,
``/proc/modules``, ``/proc/config.gz``, ``/lib/modules/<release>/build/.config``); we read every
path under these directories, so a host root assembled elsewhere is read consistently.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

#: Host directories in the order NFD declares them; the first path component of every host path
#: we read must be one of these.
HOST_DIRS = ("proc", "sys", "etc", "boot", "lib", "usr", "var")

#: The prefix of the validate-image Job's (and nfd-worker's) mounts.
CONTAINER_PREFIX = "/host-"


@dataclass(frozen=True)
class HostPaths:
    """The directories that stand for the host's ``/proc``, ``/sys``, ``/etc``, ``/boot``, ``/lib``,
    ``/usr`` and ``/var``."""

    proc: Path
    sys: Path
    etc: Path
    boot: Path
    lib: Path
    usr: Path
    var: Path

    @classmethod
    def with_prefix(cls, prefix: str) -> HostPaths:
        """``prefix + name`` for every directory, as NFD does: ``"/"`` gives ``/proc``, ``/sys``...;
        ``"/host-"`` gives ``/host-proc``, ``/host-sys``...; ``"/mnt/root/"`` gives ``/mnt/root/proc``."""
        if not prefix:
            raise ValueError("empty host path prefix (use '/' for this machine)")
        return cls(**{name: Path(prefix + name) for name in HOST_DIRS})

    @classmethod
    def detect(cls, root: str = "/") -> HostPaths:
        """``/host-`` when ``/host-sys`` and ``/host-proc`` both exist (running in the validate-image
        Job or next to nfd-worker's mounts), else ``/``. ``root`` relocates the check (for tests)."""
        base = root if root.endswith("/") else root + "/"
        container = base + CONTAINER_PREFIX.lstrip("/")
        if os.path.isdir(container + "sys") and os.path.isdir(container + "proc"):
            return cls.with_prefix(container)
        return cls.with_prefix(base)

    def replace(self, **dirs: str | os.PathLike[str]) -> HostPaths:
        """A copy with some directories moved, e.g. ``replace(boot="/mnt/boot")``."""
        unknown = set(dirs) - set(HOST_DIRS)
        if unknown:
            raise TypeError(f"unknown host directories: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **{k: Path(v) for k, v in dirs.items()})

    def roots(self) -> dict[str, Path]:
        """Host directory name -> where it is, e.g. ``{"sys": Path("/host-sys"), ...}``."""
        return {name: getattr(self, name) for name in HOST_DIRS}
