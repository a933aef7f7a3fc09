"""The ``network`` source: ``network.device`` and ``network.virtual`` instances (NFD
``source/network``).

Every entry of ``/sys/class/net`` except ``bonding_masters``, in name order. An interface whose
``device`` link resolves (it sits on a bus: PCI, USB, virtio...) is a ``network.device`` with
``name``, ``operstate``, ``speed``, ``sriov_numvfs``, ``sriov_totalvfs`` (from ``device/``) and ``mtu``;
any other (``lo``, bridges, veths, tunnels) is a ``network.virtual`` with ``name``, ``operstate``,
``speed`` and ``mtu``. Unreadable attributes are left out; reading ``speed`` of a link that is down
fails with EINVAL, which is expected and silent, as in NFD. Neither feature is reported when
``/sys/class/net`` cannot be listed.

Under a host prefix these are the host's interfaces only when ``/host-sys`` is a mount of the host's
sysfs made from the host's network namespace (a pod's own ``/sys/class/net`` shows the pod's).
"""

from __future__ import annotations

import errno

from extender.sources.host.found import Found
from extender.sources.host.hostfs import is_missing

NET = "/sys/class/net"
DEVICE_ATTRS = ("operstate", "speed", "device/sriov_numvfs", "device/sriov_totalvfs", "mtu")
VIRTUAL_ATTRS = ("operstate", "speed", "mtu")


def _iface(found: Found, name: str, files: tuple[str, ...]) -> dict[str, str]:
    attrs = {"name": name}
    for file in files:
        path = f"{NET}/{name}/{file}"
        try:
            attrs[file.rsplit("/", 1)[-1]] = found.fs.read_text(path).strip()
        except OSError as exc:
            if not (is_missing(exc) or exc.errno == errno.EINVAL):
                found.unreadable("network", path, exc)
    return attrs


def _has_device(found: Found, name: str) -> bool:
    try:
        return found.fs.exists(f"{NET}/{name}/device")
    except OSError:
        return False  # NFD: any Stat error makes it a virtual interface


def discover(found: Found) -> None:
    try:
        names = [n for n in found.fs.listdir(NET) if n != "bonding_masters"]
    except OSError as exc:
        found.unreadable("network.device", NET, exc, "network.device and network.virtual not reported")
        return
    devices, virtual = [], []
    for name in names:
        if _has_device(found, name):
            devices.append(_iface(found, name, DEVICE_ATTRS))
        else:
            virtual.append(_iface(found, name, VIRTUAL_ATTRS))
    found.inst("network.device", devices)
    found.inst("network.virtual", virtual)
