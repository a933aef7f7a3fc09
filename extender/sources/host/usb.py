"""The ``usb`` source: ``usb.device`` instances (NFD ``source/usb``).

Devices are the entries of ``/sys/bus/usb/devices`` that have an ``idProduct`` file (hubs' interface
entries and the like do not), in name order. Attributes: ``class`` from ``bDeviceClass``, ``vendor``
from ``idVendor``, ``device`` from ``idProduct`` and ``serial`` from ``serial``, each trimmed and
left out when missing or empty (values as the kernel writes them: ``0bda``, ``ff``).

USB devices often declare their class per interface: when ``bDeviceClass`` is ``00`` the device
yields one instance per interface directory with a ``bInterfaceClass`` file (sorted by name), each
a copy of the device's attributes with that interface's class (duplicates included, as NFD). An
unreadable interface class drops the whole device, with a problem.

NFD finds the devices by globbing, which ignores a missing or unreadable directory; so ``usb.device``
always exists, empty in those cases (an unreadable one still gets a problem here).
"""

from __future__ import annotations

from extender.sources.host.found import Found
from extender.sources.host.hostfs import describe, is_missing

DEVICES = "/sys/bus/usb/devices"
FILES = {"class": "bDeviceClass", "vendor": "idVendor", "device": "idProduct", "serial": "serial"}


def _device(found: Found, base: str) -> list[dict[str, str]]:
    attrs: dict[str, str] = {}
    for attr, file in FILES.items():
        try:
            value = found.fs.read_text(f"{base}/{file}").strip()
        except OSError:
            continue
        if value:
            attrs[attr] = value
    if attrs.get("class") != "00":
        return [attrs]
    rows = []
    for entry in found.fs.listdir(base):
        path = f"{base}/{entry}/bInterfaceClass"
        if not found.fs.exists(path):
            continue
        rows.append({**attrs, "class": found.fs.read_text(path).strip()})
    return rows


def discover(found: Found) -> None:
    feature = "usb.device"
    try:
        names = found.fs.listdir(DEVICES)
    except OSError as exc:
        if not is_missing(exc):
            found.unreadable(feature, DEVICES, exc, "usb.device left empty, as NFD")
        found.inst(feature, [])
        return
    rows: list[dict[str, str]] = []
    for name in names:
        base = f"{DEVICES}/{name}"
        try:
            if not found.fs.exists(f"{base}/idProduct"):
                continue
            rows.extend(_device(found, base))
        except OSError as exc:
            found.problem(feature, f"{name}: {describe(exc)} (device skipped)")
    found.inst(feature, rows)
