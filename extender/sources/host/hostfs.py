"""Reading the inspected host's files: confined to the host directories and bounded.

Every source names files by their path *on the host* (``/sys/bus/pci/devices``); :class:`HostFS` maps
the first component through :class:`~extender.sources.host.paths.HostPaths` and resolves symbolic
links itself, component by component, as the host's kernel would: a relative target is taken from
the link's (already resolved) directory, an absolute one from the host's root, and ``..`` climbs
host directories. sysfs is mostly links (``/sys/bus/pci/devices/0000:00:02.0`` points to
``../../../devices/pci0000:00/0000:00:02.0``), so under ``/host-sys`` that lands in
``/host-sys/devices/...`` and never in the container's own ``/sys``. A link that leaves the mounted
host directories (say to ``/run/...``) is an error, not a read of this machine's file. The
directories themselves (``/host-sys`` or ``/lib``) are taken as given, even if they are links.

Reads are bounded: at most :data:`MAX_FILE_BYTES` per file unless a caller asks for another
limit, :data:`MAX_DIR_ENTRIES` per directory, :data:`MAX_SYMLINKS` links per path; non-regular
files (FIFOs, devices) are refused so a hostile root cannot block a read. Every failure is an
:class:`OSError`, so sources catch one exception type and turn it into a problem string.
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from collections import deque
from pathlib import Path

from extender.errors import HostPathError
from extender.sources.host.paths import HostPaths

MAX_FILE_BYTES = 1 << 20
MAX_DIR_ENTRIES = 1 << 16
MAX_SYMLINKS = 40


def describe(exc: OSError) -> str:
    """The human part of an error: ``Permission denied``, ``No such file or directory``..."""
    return exc.strerror or str(exc) or type(exc).__name__


def is_missing(exc: OSError) -> bool:
    """Errors that mean "this path does not exist" (as Go's ``os.IsNotExist``, plus ENOTDIR)."""
    return isinstance(exc, FileNotFoundError | NotADirectoryError)


class HostFS:
    """The host's files as seen through one :class:`HostPaths`."""

    def __init__(self, paths: HostPaths) -> None:
        self.paths = paths
        self._roots = paths.roots()

    # -- paths ---------------------------------------------------------------------------------

    @staticmethod
    def _parts(host_path: str) -> list[str]:
        if not host_path.startswith("/"):
            raise ValueError(f"host paths are absolute: {host_path!r}")
        return [p for p in host_path.split("/") if p]

    def _real(self, parts: list[str]) -> Path:
        return self._roots[parts[0]].joinpath(*parts[1:])

    def display(self, host_path: str) -> str:
        """Where ``host_path`` is, without resolving links (for messages): ``/host-sys/bus/pci``."""
        parts = self._parts(host_path)
        if parts and parts[0] in self._roots:
            return str(self._real(parts))
        return host_path

    def resolve(self, host_path: str) -> Path:
        """The real path of ``host_path`` with every link resolved inside the host directories.

        Raises FileNotFoundError (or another OSError) when a component is missing, and
        :class:`HostPathError` when a link leads outside the host directories or loops."""
        todo = deque(self._parts(host_path))
        done: list[str] = []
        links = 0
        while todo:
            part = todo.popleft()
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            done.append(part)
            if len(done) == 1:
                if part not in self._roots:
                    raise HostPathError(errno.ENOENT, f"/{part} is not among the host directories", host_path)
                continue
            real = self._real(done)
            st = os.lstat(real)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise HostPathError(errno.ELOOP, "too many levels of symbolic links", host_path)
                target = os.readlink(real)
                done.pop()
                if target.startswith("/"):
                    done.clear()
                todo.extendleft(reversed([p for p in target.split("/") if p]))
        if not done:
            raise HostPathError(errno.EISDIR, "the host root itself cannot be read", host_path)
        return self._real(done)

    # -- files ---------------------------------------------------------------------------------

    def read_bytes(self, host_path: str, *, limit: int = MAX_FILE_BYTES, truncate: bool = False) -> bytes:
        """At most ``limit`` bytes of a regular file. Longer files are an error unless ``truncate``
        is set, in which case the first ``limit`` bytes are returned."""
        real = self.resolve(host_path)
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(real))
            if not stat.S_ISREG(mode):
                raise HostPathError(errno.EINVAL, "not a regular file", str(real))
            chunks: list[bytes] = []
            size = 0
            while size <= limit:
                chunk = os.read(fd, min(65536, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if len(data) > limit:
            if not truncate:
                raise HostPathError(errno.EFBIG, f"larger than {limit} bytes", str(real))
            data = data[:limit]
        return data

    def read_text(self, host_path: str, *, limit: int = MAX_FILE_BYTES, truncate: bool = False) -> str:
        """:meth:`read_bytes` decoded as UTF-8; undecodable bytes become U+FFFD (Go keeps the raw
        bytes in its strings; ours must stay valid text for JSON)."""
        return self.read_bytes(host_path, limit=limit, truncate=truncate).decode("utf-8", "replace")

    def read_gzip_text(self, host_path: str, *, limit: int = MAX_FILE_BYTES) -> str:
        """A gzip file, decompressed; both the file and its contents are bounded by ``limit``."""
        data = self.read_bytes(host_path, limit=limit)
        inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out = inflate.decompress(data, limit + 1)
        except zlib.error as exc:
            raise HostPathError(errno.EINVAL, f"not gzip data ({exc})", host_path) from None
        if len(out) > limit:
            raise HostPathError(errno.EFBIG, f"decompresses to more than {limit} bytes", host_path)
        if not inflate.eof:
            raise HostPathError(errno.EINVAL, "truncated gzip data", host_path)
        return out.decode("utf-8", "replace")

    def try_read(self, host_path: str) -> str | None:
        """A small file's stripped text, or None when it cannot be read for any reason (for the
        optional attributes NFD reads and silently skips)."""
        try:
            return self.read_text(host_path).strip()
        except OSError:
            return None

    # -- directories ---------------------------------------------------------------------------

    def listdir(self, host_path: str) -> list[str]:
        """Entry names of a directory, sorted (Go's ``os.ReadDir`` order); at most
        :data:`MAX_DIR_ENTRIES`, more is an error."""
        real = self.resolve(host_path)
        names: list[str] = []
        with os.scandir(real) as it:
            for entry in it:
                names.append(entry.name)
                if len(names) > MAX_DIR_ENTRIES:
                    raise HostPathError(errno.E2BIG, f"more than {MAX_DIR_ENTRIES} entries", str(real))
        return sorted(names)

    def is_dir_entry(self, host_path: str) -> bool:
        """Whether the entry itself is a directory, not following a final link (Go's
        ``DirEntry.IsDir``). Missing entries are not directories."""
        parts = self._parts(host_path)
        parent = self.resolve("/" + "/".join(parts[:-1])) if len(parts) > 1 else None
        if parent is None:
            return False
        try:
            return stat.S_ISDIR(os.lstat(parent / parts[-1]).st_mode)
        except OSError as exc:
            if is_missing(exc):
                return False
            raise

    def exists(self, host_path: str) -> bool:
        """Whether ``host_path`` exists, following links (Go's ``os.Stat`` == nil). A missing
        component is False; other errors (permission, a link out of the host) are raised."""
        try:
            os.stat(self.resolve(host_path))
        except OSError as exc:
            if is_missing(exc):
                return False
            raise
        return True
