"""The ``system`` source: ``system.name``, ``system.osrelease`` and ``system.dmiid`` (NFD
``source/system``).

* ``system.name``: ``nodename``. NFD uses the ``NODE_NAME`` environment variable only (empty when
  unset, as for a bare ``nfd compat validate-node``); we use it too and fall back to the host name
  in ``/proc/sys/kernel/hostname``. That file shows the *reading process's* UTS namespace, so inside
  a pod without ``hostNetwork`` it is the pod's name: set ``NODE_NAME`` from ``spec.nodeName`` there.
* ``system.osrelease``: every ``KEY=value`` line of ``/etc/os-release`` (``KEY`` of ASCII word
  characters, a non-empty value with surrounding ``"``/``'`` characters removed, no unescaping; later
  lines win), plus ``VERSION_ID.major`` and ``VERSION_ID.minor`` from ``^major(.minor)?(..*)?$``,
  each only when non-empty. NFD reads ``/etc/os-release`` only; we fall back to
  ``/usr/lib/os-release`` as os-release(5) says, and follow ``/etc/os-release`` if it is a link into
  ``/usr/lib`` on the host.
* ``system.dmiid``: ``bios_*``, ``board_*``, ``chassis_*``, ``product_*`` (no serials, no uuid) and
  ``sys_vendor`` from ``/sys/devices/virtual/dmi/id``, trimmed; files that are missing are left out,
  and the feature exists only when at least one was read (no DMI on most arm64 boards and microVMs).
"""

from __future__ import annotations

import os
import re

from extender.sources.host.found import Found
from extender.sources.host.hostfs import is_missing

HOSTNAME = "/proc/sys/kernel/hostname"
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
DMI_DIR = "/sys/devices/virtual/dmi/id"
DMI_ATTRS = (
    "bios_date",
    "bios_vendor",
    "bios_version",
    "board_asset_tag",
    "board_name",
    "board_vendor",
    "board_version",
    "chassis_asset_tag",
    "chassis_type",
    "chassis_vendor",
    "chassis_version",
    "product_family",
    "product_name",
    "product_sku",
    "product_version",
    "sys_vendor",
)

_LINE = re.compile(r"(\w+)=(.+)", re.ASCII)
_VERSION_ID = re.compile(r"(?P<major>[0-9]+)(\.(?P<minor>[0-9]+))?(\..*)?")


def parse_os_release(text: str) -> dict[str, str]:
    release: dict[str, str] = {}
    for line in text.split("\n"):
        m = _LINE.match(line.removesuffix("\r"))  # Go's line scanner drops one CR before LF
        if m:
            release[m.group(1)] = m.group(2).strip("\"'")
    version = release.get("VERSION_ID")
    if version is not None:
        m = _VERSION_ID.fullmatch(version)
        if m:
            for key, value in m.groupdict().items():
                if value:
                    release[f"VERSION_ID.{key}"] = value
    return release


def node_name(found: Found, explicit: str | None = None) -> str:
    """``explicit``, else ``$NODE_NAME``, else the host name (see the module docstring)."""
    if explicit is not None:
        return explicit
    env = os.environ.get("NODE_NAME", "")
    if env:
        return env
    try:
        return found.fs.read_text(HOSTNAME).strip()
    except OSError as exc:
        found.unreadable("system.name", HOSTNAME, exc, "nodename left empty")
        return ""


def _os_release(found: Found) -> None:
    feature = "system.osrelease"
    errors: list[tuple[str, OSError]] = []
    for path in OS_RELEASE:
        try:
            text = found.fs.read_text(path)
        except OSError as exc:
            errors.append((path, exc))
            continue
        found.attr(feature, parse_os_release(text))
        return
    for path, error in errors:
        last = path == OS_RELEASE[-1]
        found.unreadable(feature, path, error, "system.osrelease not reported" if last else "")


def _dmiid(found: Found) -> None:
    attrs: dict[str, str] = {}
    for name in DMI_ATTRS:
        path = f"{DMI_DIR}/{name}"
        try:
            attrs[name] = found.fs.read_text(path).strip()
        except OSError as exc:
            if not is_missing(exc):
                found.unreadable("system.dmiid", path, exc)
    if attrs:
        found.attr("system.dmiid", attrs)
    else:
        where = found.fs.display(DMI_DIR)
        found.problem("system.dmiid", f"nothing readable in {where} (system.dmiid not reported)")


def discover(found: Found, node: str) -> None:
    found.attr("system.name", {"nodename": node})
    _os_release(found)
    _dmiid(found)
