"""HostPaths and the host reader: prefixes, links resolved inside the host, bounded reads."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from extender.errors import HostPathError
from extender.sources.host import hostfs as hostfs_module
from extender.sources.host.hostfs import HostFS
from extender.sources.host.paths import HostPaths


def test_with_prefix_is_prefix_plus_name_as_nfd() -> None:
    root = HostPaths.with_prefix("/")
    assert (root.proc, root.sys, root.etc, root.boot, root.lib, root.usr, root.var) == tuple(
        Path(p) for p in ("/proc", "/sys", "/etc", "/boot", "/lib", "/usr", "/var")
    )
    job = HostPaths.with_prefix("/host-")
    assert (job.proc, job.sys, job.etc, job.boot, job.lib, job.usr) == tuple(
        Path(p) for p in ("/host-proc", "/host-sys", "/host-etc", "/host-boot", "/host-lib", "/host-usr")
    )
    with pytest.raises(ValueError):
        HostPaths.with_prefix("")


def test_replace_moves_one_directory() -> None:
    paths = HostPaths.with_prefix("/host-").replace(boot="/mnt/boot")
    assert paths.boot == Path("/mnt/boot")
    assert paths.sys == Path("/host-sys")
    with pytest.raises(TypeError, match="dev"):
        HostPaths.with_prefix("/").replace(dev="/dev")


def test_detect_prefers_the_job_mounts(tmp_path: Path) -> None:
    assert HostPaths.detect(str(tmp_path)) == HostPaths.with_prefix(f"{tmp_path}/")
    (tmp_path / "host-sys").mkdir()
    assert HostPaths.detect(str(tmp_path)) == HostPaths.with_prefix(f"{tmp_path}/"), "needs both"
    (tmp_path / "host-proc").mkdir()
    assert HostPaths.detect(str(tmp_path)) == HostPaths.with_prefix(f"{tmp_path}/host-")


def _fs(tmp_path: Path, prefix: str = "host-") -> HostFS:
    paths = HostPaths.with_prefix(f"{tmp_path}/{prefix}")
    for d in paths.roots().values():
        d.mkdir(parents=True, exist_ok=True)
    return HostFS(paths)


def test_relative_sysfs_links_resolve_under_the_prefix(tmp_path: Path) -> None:
    fs = _fs(tmp_path)
    dev = tmp_path / "host-sys/devices/pci0000:00/0000:00:02.0"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x8086\n")
    (tmp_path / "host-sys/bus/pci/devices").mkdir(parents=True)
    os.symlink("../../../devices/pci0000:00/0000:00:02.0", tmp_path / "host-sys/bus/pci/devices/0000:00:02.0")
    # the same relative link resolved by the OS from tmp/host-sys/bus/pci/devices lands in
    # tmp/host-sys/devices too; make an absolute link to prove we re-root it instead of following it
    os.symlink("/sys/devices/pci0000:00/0000:00:02.0", tmp_path / "host-sys/bus/pci/devices/abs")
    decoy = tmp_path / "sys/devices/pci0000:00/0000:00:02.0"
    decoy.mkdir(parents=True)
    (decoy / "vendor").write_text("0xdead\n")
    assert fs.read_text("/sys/bus/pci/devices/0000:00:02.0/vendor") == "0x8086\n"
    assert fs.read_text("/sys/bus/pci/devices/abs/vendor") == "0x8086\n"
    assert fs.resolve("/sys/bus/pci/devices/abs") == dev


def test_links_across_host_directories_follow_the_host_layout(tmp_path: Path) -> None:
    fs = _fs(tmp_path)
    (tmp_path / "host-usr/lib").mkdir(parents=True)
    (tmp_path / "host-usr/lib/os-release").write_text("ID=debian\n")
    os.symlink("../usr/lib/os-release", tmp_path / "host-etc/os-release")
    # followed by the OS this link would look for tmp/usr/lib/os-release
    assert not (tmp_path / "usr/lib/os-release").exists()
    assert fs.read_text("/etc/os-release") == "ID=debian\n"


def test_links_out_of_the_host_directories_are_refused(tmp_path: Path) -> None:
    fs = _fs(tmp_path)
    os.symlink("/run/secrets/token", tmp_path / "host-sys/leak")
    os.symlink("../../../../../../../../run/x", tmp_path / "host-sys/climb")
    for path in ("/sys/leak", "/sys/climb", "/dev/null"):
        with pytest.raises(HostPathError, match="not among the host directories"):
            fs.read_text(path)


def test_link_loops_end(tmp_path: Path) -> None:
    fs = _fs(tmp_path)
    os.symlink("b", tmp_path / "host-sys/a")
    os.symlink("a", tmp_path / "host-sys/b")
    with pytest.raises(HostPathError) as info:
        fs.read_text("/sys/a")
    assert info.value.errno == errno.ELOOP


def test_reads_are_bounded(tmp_path: Path) -> None:
    fs = _fs(tmp_path)
    (tmp_path / "host-proc/big").write_bytes(b"x" * 100)
    with pytest.raises(HostPathError, match="larger than 10 bytes"):
        fs.read_bytes("/proc/big", limit=10)
    assert fs.read_bytes("/proc/big", limit=10, truncate=True) == b"x" * 10
    assert fs.read_bytes("/proc/big", limit=100) == b"x" * 100


def test_gzip_is_bounded_after_decompression(tmp_path: Path) -> None:
    import gzip

    fs = _fs(tmp_path)
    (tmp_path / "host-proc/bomb.gz").write_bytes(gzip.compress(b"\0" * 100_000))
    with pytest.raises(HostPathError, match="decompresses to more than"):
        fs.read_gzip_text("/proc/bomb.gz", limit=1000)
    (tmp_path / "host-proc/bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(HostPathError, match="not gzip"):
        fs.read_gzip_text("/proc/bad.gz")
    (tmp_path / "host-proc/cut.gz").write_bytes(gzip.compress(b"CONFIG_X=y\n" * 50)[:-12])
    with pytest.raises(HostPathError, match="truncated"):
        fs.read_gzip_text("/proc/cut.gz")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Opening a FIFO that has no writer blocks forever unless it is opened non-blocking: check the
    # mechanism (the flags of the open) rather than a wall-clock time.
    fs = _fs(tmp_path)
    os.mkfifo(tmp_path / "host-proc/swaps")
    flags_seen: list[int] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        flags_seen.append(flags)
        assert flags & os.O_NONBLOCK, "a blocking open of a FIFO would hang here"
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    with pytest.raises(HostPathError, match="not a regular file"):
        fs.read_text("/proc/swaps")
    assert flags_seen  # the open went through the spy


def test_directories_are_errors_for_reads_and_lists_are_sorted_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = _fs(tmp_path)
    for name in ("b", "a", "c"):
        (tmp_path / "host-sys" / name).mkdir()
    with pytest.raises(IsADirectoryError):
        fs.read_text("/sys/a")
    assert fs.listdir("/sys") == ["a", "b", "c"]
    monkeypatch.setattr(hostfs_module, "MAX_DIR_ENTRIES", 2)
    with pytest.raises(HostPathError, match="more than 2 entries"):
        fs.listdir("/sys")


def test_exists_and_is_dir_entry(tmp_path: Path) -> None:
    fs = _fs(tmp_path)
    (tmp_path / "host-sys/real").mkdir()
    os.symlink("real", tmp_path / "host-sys/link")
    assert fs.exists("/sys/link") and fs.exists("/sys/real")
    assert not fs.exists("/sys/nothing") and not fs.exists("/sys/real/nothing/deeper")
    assert fs.is_dir_entry("/sys/real")
    assert not fs.is_dir_entry("/sys/link"), "like Go's DirEntry.IsDir, a link is not a directory"
    assert not fs.is_dir_entry("/sys/nothing")
    assert fs.display("/sys/real/x") == f"{tmp_path}/host-sys/real/x"
