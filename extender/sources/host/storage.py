"""The ``storage`` source: ``storage.block`` instances (NFD ``source/storage``).

One instance per entry of ``/sys/block`` (loop, zram and partitions-less disks alike, in name
order): ``name``, and ``dax``, ``rotational``, ``nr_zones``, ``zoned`` from its ``queue`` directory
when readable (trimmed, as written: ``0``/``1``, ``none``/``host-managed``). Not reported when
``/sys/block`` cannot be listed.
"""

from __future__ import annotations

from extender.sources.host.found import Found

BLOCK = "/sys/block"
QUEUE_ATTRS = ("dax", "rotational", "nr_zones", "zoned")


def discover(found: Found) -> None:
    try:
        names = found.fs.listdir(BLOCK)
    except OSError as exc:
        found.unreadable("storage.block", BLOCK, exc, "storage.block not reported")
        return
    rows = []
    for name in names:
        attrs = {"name": name}
        for attr in QUEUE_ATTRS:
            value = found.fs.try_read(f"{BLOCK}/{name}/queue/{attr}")
            if value is not None:
                attrs[attr] = value
        rows.append(attrs)
    found.inst("storage.block", rows)
