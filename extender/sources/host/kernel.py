"""The ``kernel`` source: ``kernel.version``, ``kernel.config``, ``kernel.loadedmodule``,
``kernel.enabledmodule``, ``kernel.selinux`` and ``kernel.kvm`` (NFD ``source/kernel``).

* ``kernel.version``: ``full`` is ``/proc/sys/kernel/osrelease`` with every character outside
  ``[-A-Za-z0-9_.]`` replaced by ``_`` and leading/trailing ``-_.`` trimmed; ``major``, ``minor``,
  ``revision`` come from ``^major(.minor)?(.revision)?(-anything)?$`` on that, and an absent
  ``minor``/``revision`` is the empty string (``6.8`` -> revision ``""``); when the pattern does
  not match, only ``full`` is set.
* ``kernel.config``: every ``CONFIG_<NAME>=<value>`` line as ``NAME: value`` with surrounding ``"``
  removed, **values as written** (``y``, ``m``, ``1000``; NFD turns ``y``/``m`` into ``true`` only
  for its legacy labels). ``# CONFIG_X is not set`` lines are skipped. The first readable file of
  NFD's list wins: ``/proc/config.gz``, ``/usr/src/linux-<r>/.config``,
  ``/usr/src/linux-rt-<r>/.config``, ``/usr/src/linux/.config``, ``/usr/lib/modules/<r>/config``,
  ``/usr/lib/ostree-boot/config-<r>``, ``/usr/lib/kernel/config-<r>``,
  ``/usr/src/linux-headers-<r>/.config``, ``/lib/modules/<r>/build/.config``,
  ``/usr/src/linux-rt-headers-<r>/.config``, ``/boot/config-<r>`` (``<r>`` = osrelease; without it
  only the first and ``/usr/src/linux/.config``). NFD reads ``/proc/config.gz`` and
  ``/lib/modules/...`` without its host prefix; we read all of them under the host directories.
* ``kernel.loadedmodule``: the first field of each ``/proc/modules`` line (names as the kernel
  shows them, with ``_``: ``vfio_pci``).
* ``kernel.enabledmodule``: the loaded modules plus the builtin ones from
  ``/lib/modules/<r>/modules.builtin`` — the base name of every line ending in ``.ko``, without
  ``.ko`` and **not** normalised (a builtin ``vfio-pci.ko`` stays ``vfio-pci``). It exists only when
  ``modules.builtin`` was read, as in NFD (so a kernel without module support has neither).
* ``kernel.selinux``: ``enabled`` is ``true`` when ``/sys/fs/selinux/enforce`` starts with ``1``
  (permissive mode is ``false``), ``false`` when the file is missing; not reported when ``/sys/fs``
  is missing.
* ``kernel.kvm``: ``enabled`` is whether ``/sys/devices/virtual/misc/kvm`` exists.
"""

from __future__ import annotations

import re

from extender.sources.host.found import Found
from extender.sources.host.hostfs import describe, is_missing

OSRELEASE = "/proc/sys/kernel/osrelease"
MODULES = "/proc/modules"
KCONFIG_LIMIT = 8 << 20

_FORBIDDEN = re.compile(r"[^-A-Za-z0-9_.]")
_VERSION = re.compile(r"(?P<major>[0-9]+)(\.(?P<minor>[0-9]+))?(\.(?P<revision>[0-9]+))?(-.*)?")


def parse_version(raw: str) -> dict[str, str]:
    """NFD's ``parseVersion``."""
    full = _FORBIDDEN.sub("_", raw).strip("-_.")
    version = {"full": full}
    m = _VERSION.fullmatch(full)
    if m:
        version.update({k: v or "" for k, v in m.groupdict().items()})
    return version


def kconfig_paths(release: str | None) -> list[str]:
    if release is None:
        return ["/proc/config.gz", "/usr/src/linux/.config"]
    return [
        "/proc/config.gz",
        f"/usr/src/linux-{release}/.config",
        f"/usr/src/linux-rt-{release}/.config",
        "/usr/src/linux/.config",
        f"/usr/lib/modules/{release}/config",
        f"/usr/lib/ostree-boot/config-{release}",
        f"/usr/lib/kernel/config-{release}",
        f"/usr/src/linux-headers-{release}/.config",
        f"/lib/modules/{release}/build/.config",
        f"/usr/src/linux-rt-headers-{release}/.config",
        f"/boot/config-{release}",
    ]


def parse_kconfig(text: str) -> dict[str, str]:
    config: dict[str, str] = {}
    for line in text.split("\n"):
        if line.startswith("CONFIG_"):
            name, sep, value = line.partition("=")
            if sep:
                config[name[len("CONFIG_") :]] = value.strip('"')
    return config


def _release(found: Found) -> str | None:
    try:
        raw = found.fs.read_text(OSRELEASE).strip()
    except OSError as exc:
        found.unreadable("kernel.version", OSRELEASE, exc, "kernel.version not reported")
        return None
    found.attr("kernel.version", parse_version(raw))
    return raw


def _kconfig(found: Found, release: str | None) -> None:
    paths = kconfig_paths(release)
    failures = []
    for path in paths:
        try:
            if path.endswith(".gz"):
                text = found.fs.read_gzip_text(path, limit=KCONFIG_LIMIT)
            else:
                text = found.fs.read_text(path, limit=KCONFIG_LIMIT)
        except OSError as exc:  # NFD tries the next one whatever the error
            if not is_missing(exc):
                failures.append(f"; {found.fs.display(path)}: {describe(exc)}")
            continue
        found.attr("kernel.config", parse_kconfig(text))
        return
    tried = ", ".join(found.fs.display(p) for p in paths)
    found.problem("kernel.config", f"no kernel config found (tried {tried}){''.join(failures)}")


def _loaded(found: Found) -> list[str] | None:
    try:
        text = found.fs.read_text(MODULES)
    except OSError as exc:
        found.unreadable("kernel.loadedmodule", MODULES, exc, "kernel.loadedmodule not reported")
        return None
    mods = [line.split()[0] for line in text.split("\n") if line.split()]
    found.flag("kernel.loadedmodule", mods)
    return mods


def _enabled(found: Found, release: str | None, loaded: list[str] | None) -> None:
    feature = "kernel.enabledmodule"
    if release is None:
        found.problem(feature, "no kernel release, so no modules.builtin (kernel.enabledmodule not reported)")
        return
    path = f"/lib/modules/{release}/modules.builtin"
    try:
        text = found.fs.read_text(path)
    except OSError as exc:
        found.unreadable(feature, path, exc, "kernel.enabledmodule not reported")
        return
    builtin = []
    for line in text.split("\n"):
        line = line.strip()
        if line.endswith(".ko"):
            builtin.append(line.rsplit("/", 1)[-1][: -len(".ko")])
    found.flag(feature, [*(loaded or ()), *builtin])


def _selinux(found: Found) -> None:
    feature = "kernel.selinux"
    try:
        if not found.fs.exists("/sys/fs"):
            found.problem(feature, f"{found.fs.display('/sys/fs')} missing (kernel.selinux not reported)")
            return
        status = found.fs.read_text("/sys/fs/selinux/enforce")
    except OSError as exc:
        if is_missing(exc):
            found.attr(feature, {"enabled": "false"})
        else:
            found.unreadable(feature, "/sys/fs/selinux/enforce", exc, "kernel.selinux not reported")
        return
    if not status:
        found.problem(feature, "/sys/fs/selinux/enforce is empty (kernel.selinux not reported)")
        return
    found.attr(feature, {"enabled": str(status[0] == "1").lower()})


def _kvm(found: Found) -> None:
    path = "/sys/devices/virtual/misc/kvm"
    try:
        enabled = found.fs.exists(path)
    except OSError as exc:
        found.unreadable("kernel.kvm", path, exc, "kernel.kvm not reported")
        return
    found.attr("kernel.kvm", {"enabled": str(enabled).lower()})


def discover(found: Found) -> None:
    release = _release(found)
    _kconfig(found, release)
    loaded = _loaded(found)
    _enabled(found, release, loaded)
    _selinux(found)
    _kvm(found)
