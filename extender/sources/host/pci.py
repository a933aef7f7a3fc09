"""The ``pci`` source: ``pci.device`` instances (NFD ``source/pci``).

One instance per entry of ``/sys/bus/pci/devices`` (in name order), with ``class``, ``vendor``,
``device``, ``subsystem_vendor``, ``subsystem_device`` (all required: a device missing one is skipped
with a problem) and, when readable, ``sriov_totalvfs``, ``iommu_group/type`` and
``iommu/intel-iommu/version`` (the attribute names keep the slash). Values are the file contents
with a leading ``0x`` removed and whitespace trimmed, so lower-case hex as the kernel writes it;
``class`` keeps its first four characters (class and subclass, without the programming interface:
``0x030000`` -> ``0300``).

A host whose kernel has no PCI bus (no ``/sys/bus/pci/devices``) gets no ``pci.device`` at all,
with a problem, as nfd-worker logs an error and publishes nothing for it; an empty bus gives an
empty instance list.
"""

from __future__ import annotations

from extender.sources.host.found import Found
from extender.sources.host.hostfs import describe

DEVICES = "/sys/bus/pci/devices"
MANDATORY = ("class", "vendor", "device", "subsystem_vendor", "subsystem_device")
OPTIONAL = ("sriov_totalvfs", "iommu_group/type", "iommu/intel-iommu/version")


def _value(raw: str, attr: str) -> str:
    value = raw.removeprefix("0x").strip()
    if attr == "class" and len(value) > 4:
        value = value[:4]
    return value


def discover(found: Found) -> None:
    feature = "pci.device"
    try:
        names = found.fs.listdir(DEVICES)
    except OSError as exc:
        found.unreadable(feature, DEVICES, exc, "pci.device not reported")
        return
    rows = []
    for name in names:
        base = f"{DEVICES}/{name}"
        attrs: dict[str, str] = {}
        try:
            for attr in MANDATORY:
                attrs[attr] = _value(found.fs.read_text(f"{base}/{attr}"), attr)
        except OSError as exc:
            found.problem(feature, f"{name}: {attr}: {describe(exc)} (device skipped)")
            continue
        for attr in OPTIONAL:
            value = found.fs.try_read(f"{base}/{attr}")
            if value is not None:
                attrs[attr] = _value(value, attr)
        rows.append(attrs)
    found.inst(feature, rows)
