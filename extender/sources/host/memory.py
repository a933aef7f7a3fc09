"""The ``memory`` source: ``memory.numa``, ``memory.swap``, ``memory.nv`` and ``memory.hugepages``
(NFD ``source/memory``).

* ``memory.numa``: ``node_count`` = number of entries in ``/sys/bus/node/devices``, ``is_numa`` =
  more than one; not reported when that directory cannot be listed.
* ``memory.swap``: ``enabled`` = ``/proc/swaps`` has more than its header line (non-blank lines).
* ``memory.nv``: one instance per ``/sys/bus/nd/devices`` entry: ``name``, and ``devtype``/``mode``
  when readable; an empty list when the directory is missing (no NVDIMM support).
* ``memory.hugepages``: ``enabled`` (some pool has ``nr_hugepages`` > 0) and one
  ``hugepages-<size>`` per ``/sys/kernel/mm/hugepages/hugepages-<n>kB`` directory holding its
  ``nr_hugepages`` as written (empty if unreadable, as NFD). ``<size>`` is Kubernetes' canonical
  quantity of ``<n>Ki``: ``2Mi``, ``1Gi``, ``64Ki``. Without the directory: just ``enabled: false``.
"""

from __future__ import annotations

import re

from extender.sources.host.found import Found
from extender.sources.host.hostfs import is_missing

NODES = "/sys/bus/node/devices"
SWAPS = "/proc/swaps"
ND = "/sys/bus/nd/devices"
HUGEPAGES = "/sys/kernel/mm/hugepages"

_BINARY_SUFFIXES = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def binary_quantity(kib: int) -> str:
    """Kubernetes' canonical form of ``<kib>Ki``: the largest binary suffix that divides it."""
    if kib == 0:
        return "0"
    value, suffix = kib, 0
    while value % 1024 == 0 and suffix < len(_BINARY_SUFFIXES) - 1:
        value //= 1024
        suffix += 1
    return f"{value}{_BINARY_SUFFIXES[suffix]}"


def _numa(found: Found) -> None:
    try:
        nodes = found.fs.listdir(NODES)
    except OSError as exc:
        found.unreadable("memory.numa", NODES, exc, "memory.numa not reported")
        return
    found.attr("memory.numa", {"is_numa": str(len(nodes) > 1).lower(), "node_count": str(len(nodes))})


def _swap(found: Found) -> None:
    try:
        text = found.fs.read_text(SWAPS)
    except OSError as exc:
        found.unreadable("memory.swap", SWAPS, exc, "memory.swap not reported")
        return
    lines = sum(1 for line in text.split("\n") if line.strip())
    found.attr("memory.swap", {"enabled": str(lines > 1).lower()})


def _nv(found: Found) -> None:
    try:
        names = found.fs.listdir(ND)
    except OSError as exc:
        if is_missing(exc):
            found.inst("memory.nv", [])
        else:
            found.unreadable("memory.nv", ND, exc, "memory.nv not reported")
        return
    rows = []
    for name in names:
        attrs = {"name": name}
        for attr in ("devtype", "mode"):
            value = found.fs.try_read(f"{ND}/{name}/{attr}")
            if value is not None:
                attrs[attr] = value
        rows.append(attrs)
    found.inst("memory.nv", rows)


def _hugepages(found: Found) -> None:
    feature = "memory.hugepages"
    attrs = {"enabled": "false"}
    try:
        entries = found.fs.listdir(HUGEPAGES)
    except OSError as exc:
        if is_missing(exc):
            found.attr(feature, attrs)
        else:
            found.unreadable(feature, HUGEPAGES, exc, "memory.hugepages not reported")
        return
    for entry in entries:
        path = f"{HUGEPAGES}/{entry}"
        try:
            if not found.fs.is_dir_entry(path):
                continue
        except OSError as exc:
            found.unreadable(feature, path, exc)
            continue
        try:
            total = found.fs.read_text(f"{path}/nr_hugepages").strip()
        except OSError as exc:
            found.unreadable(feature, f"{path}/nr_hugepages", exc)
            total = ""
        size = entry.removeprefix("hugepages-").rstrip("kB")
        if not re.fullmatch(r"[0-9]+", size):
            found.problem(feature, f"{entry}: page size {size!r} is not a number (skipped)")
            continue
        attrs[f"hugepages-{binary_quantity(int(size))}"] = total
        if re.fullmatch(r"[+-]?[0-9]+", total) and int(total) > 0:
            attrs["enabled"] = "true"
    found.attr(feature, attrs)


def discover(found: Found) -> None:
    _numa(found)
    _swap(found)
    _nv(found)
    _hugepages(found)
