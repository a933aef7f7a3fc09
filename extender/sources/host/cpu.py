"""The ``cpu`` source: ``cpu.cpuid``, ``cpu.model``, ``cpu.topology``, ``cpu.cstate``, ``cpu.pstate``,
``cpu.rdt``, ``cpu.security``, ``cpu.sst`` and ``cpu.coprocessor`` (NFD ``source/cpu``).

NFD executes CPUID (x86) or reads the ELF hwcaps and MIDR_EL1 (arm64); we read ``/proc/cpuinfo``
and sysfs, which show the same bits through the kernel (see :mod:`.cpuflags` for the flag names and
what cannot be seen). The architecture is the inspected host's, told by the shape of its cpuinfo
(``flags`` on x86, ``Features`` on arm64), not this process's. Other architectures (ppc64le,
s390x...) are not supported: only ``cpu.topology`` is reported there, with a problem.

Per feature:

* ``cpu.cpuid``: flags; on x86 also an attribute set, empty, as NFD's when the CPU has no AVX10
  (``AVX10_VERSION`` needs CPUID leaf 0x24, which cpuinfo does not show).
* ``cpu.model``: ``vendor_id`` (klauspost's names: ``Intel``, ``AMD``, ``Hygon``, ``VIA``...;
  arm64 by MIDR implementer: ``ARM``, ``Ampere``, ``NVIDIA``, ``Qualcomm``...; unknown:
  ``VendorUnknown``), ``family``, ``id`` and ``hypervisor``. On x86, family and model are cpuinfo's
  ``cpu family`` and ``model`` (the kernel and klauspost combine the extended fields alike). On arm64
  klauspost reads MIDR_EL1 only when the ``cpuid`` hwcap is present (else ``VendorUnknown``/0/0):
  ``family`` = bits 23..16 (variant and architecture), ``id`` = bits 15..0 (part and revision), from
  sysfs ``midr_el1`` or rebuilt from cpuinfo with architecture 0xf. ``hypervisor`` is ``none`` without
  the x86 ``hypervisor`` flag, and always on arm64 (klauspost never sets it there). With the flag NFD
  names the vendor from CPUID leaf 0x40000000; we infer it from ``kvm-clock``/Hyper-V/Xen clock
  sources, ``/sys/hypervisor/type`` and the DMI system vendor, and say ``unknown`` (with a problem)
  when nothing tells, where NFD would give the raw vendor string.
* ``cpu.topology``: ``hardware_multithreading`` (some ``thread_siblings_list`` holds ``,`` or ``-``)
  and ``socket_count`` (distinct ``physical_package_id``); empty when any file is unreadable, as NFD.
* ``cpu.cstate``: ``enabled`` from intel_idle's ``max_cstate``; empty with another idle driver.
* ``cpu.pstate``: ``status``, ``turbo``, ``scaling_governor`` from intel_pstate.
* ``cpu.rdt``: ``RDTMON``, ``RDTCMT``, ``RDTMBM``, ``RDTL3CA``, ``RDTL2CA``, ``RDTMBA`` from the kernel's
  ``cqm*``/``rdt_a``/``cat_l3``/``cat_l2``/``mba`` flags (the same CPUID leaves NFD reads) and
  ``RDTL3CA_NUM_CLOSID`` from ``/sys/fs/resctrl/info/L3/num_closids`` when resctrl is mounted there.
* ``cpu.security``: ``sgx.enabled``/``sgx.epc`` from the ``sgx`` flag and the per-node
  ``x86/sgx_total_bytes`` (NFD sums the EPC sections of CPUID leaf 0x12), ``tdx.*``, ``sev.*`` from
  kvm module parameters and the misc cgroup capacities, ``tdx.protected`` from ``tdx_guest``.
* ``cpu.sst``: ``bf.enabled`` when a CPU's ``cpufreq/base_frequency`` exceeds the nominal base
  frequency. NFD takes that from CPUID leaf 0x16; we take Intel's from the ``@ 2.30GHz`` of the
  model name (the same figure) or ACPI CPPC's ``nominal_freq``, and leave ``cpu.sst`` out, with a
  problem, when neither is there but base frequencies are. AMD has no leaf 0x16, so NFD's answer
  there is always empty, and so is ours.
* ``cpu.coprocessor``: empty (NFD fills it on ppc64le only).

On arm64 the x86-only features exist but are empty, exactly as NFD's stubs make them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from extender.sources.host import cpuflags
from extender.sources.host.found import Found
from extender.sources.host.hostfs import describe, is_missing

CPUINFO = "/proc/cpuinfo"
CPU_DIR = "/sys/devices/system/cpu"
CPU_DEVICES = "/sys/bus/cpu/devices"
CPUINFO_LIMIT = 1 << 20  # cpuinfo can exceed this on very large machines; the first blocks suffice

# klauspost/cpuid vendorMapping (leaf 0 vendor string -> Vendor.String()).
X86_VENDORS = {
    "AMDisbetter!": "AMD",
    "AuthenticAMD": "AMD",
    "CentaurHauls": "VIA",
    "GenuineIntel": "Intel",
    "TransmetaCPU": "Transmeta",
    "GenuineTMx86": "Transmeta",
    "Geode by NSC": "NSC",
    "VIA VIA VIA": "VIA",
    "HygonGenuine": "Hygon",
    "Vortex86 SoC": "SiS",
    "SiS SiS SiS": "SiS",
    "RiseRiseRise": "SiS",
    "Genuine  RDC": "RDC",
}
# klauspost/cpuid detect_arm64.go: MIDR_EL1 implementer -> Vendor.String().
ARM64_IMPLEMENTERS = {
    0xC0: "Ampere",
    0x41: "ARM",
    0x42: "Broadcom",
    0x43: "Cavium",
    0x44: "DEC",
    0x46: "Fujitsu",
    0x49: "Infineon",
    0x4D: "Motorola",
    0x4E: "NVIDIA",
    0x50: "AMCC",
    0x51: "Qualcomm",
    0x56: "Marvell",
    0x69: "Intel",
}
UNKNOWN_VENDOR = "VendorUnknown"

_GO_INT = re.compile(r"[+-]?[0-9]+")
_NOMINAL_GHZ = re.compile(r"@\s*([0-9]+(?:\.[0-9]+)?)\s*GHz")


def go_atoi(text: str) -> int | None:
    """Go's ``strconv.Atoi`` for the values we read: optional sign, ASCII digits, nothing else."""
    return int(text) if _GO_INT.fullmatch(text) else None


@dataclass(frozen=True)
class CpuInfo:
    """The first processor's fields of ``/proc/cpuinfo`` (and the arch they imply)."""

    arch: str | None  # "x86", "arm64" or None (not recognised)
    fields: dict[str, str]
    flags: frozenset[str]


def parse_cpuinfo(text: str) -> CpuInfo:
    """Blocks are separated by blank lines, lines are ``key : value``. x86 lists ``flags`` per
    processor; arm64 ``Features``. Keys seen before the first flag line (older arm64 kernels print a
    global header) are kept unless the processor block repeats them."""
    fields: dict[str, str] = {}
    for block in re.split(r"\n\s*\n", text):
        current: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                current.setdefault(key.strip(), value.strip())
        fields.update(current)
        if "flags" in current or "Features" in current:
            break
    if "flags" in fields and "vendor_id" in fields:
        return CpuInfo("x86", fields, frozenset(fields["flags"].split()))
    if "Features" in fields and "CPU implementer" in fields:
        return CpuInfo("arm64", fields, frozenset(fields["Features"].split()))
    return CpuInfo(None, fields, frozenset())


def _read(found: Found, feature: str, path: str) -> str | None:
    """A stripped file, or None with a problem recorded."""
    try:
        return found.fs.read_text(path).strip()
    except OSError as exc:
        found.unreadable(feature, path, exc)
        return None


def _read_quiet(found: Found, feature: str, path: str) -> str | None:
    """A stripped file, or None if missing; other errors still become problems."""
    try:
        return found.fs.read_text(path).strip()
    except OSError as exc:
        if not is_missing(exc):
            found.unreadable(feature, path, exc)
        return None


# -- cpu.model -----------------------------------------------------------------------------------


def _x86_hypervisor(found: Found, info: CpuInfo) -> str:
    if "hypervisor" not in info.flags:
        return "none"
    clocks = (
        _read_quiet(found, "cpu.model", "/sys/devices/system/clocksource/clocksource0/available_clocksource")
        or ""
    )
    clocks_set = set(clocks.split())
    hv_type = _read_quiet(found, "cpu.model", "/sys/hypervisor/type") or ""
    vendor = _read_quiet(found, "cpu.model", "/sys/devices/virtual/dmi/id/sys_vendor") or ""
    if "kvm-clock" in clocks_set:
        return "kvm"
    if clocks_set & {"hyperv_clocksource_tsc_page", "hyperv_clocksource_msr"}:
        return "msvm"
    if hv_type == "xen" or "xen" in clocks_set:
        return "xenhvm"
    by_dmi = {"VMware, Inc.": "vmware", "Microsoft Corporation": "msvm", "Xen": "xenhvm"}
    if vendor in by_dmi:
        return by_dmi[vendor]
    found.problem(
        "cpu.model",
        "the hypervisor flag is set but no clock source, /sys/hypervisor/type or DMI vendor names it; "
        'hypervisor reported as "unknown"',
    )
    return "unknown"


def _arm64_midr(found: Found, info: CpuInfo) -> int | None:
    raw = _read_quiet(found, "cpu.model", f"{CPU_DIR}/cpu0/regs/identification/midr_el1")
    if raw is not None:
        try:
            return int(raw, 16)
        except ValueError:
            found.problem("cpu.model", f"midr_el1 is not hex: {raw[:40]!r}; using cpuinfo")
    try:
        impl = int(info.fields["CPU implementer"], 16)
        variant = int(info.fields.get("CPU variant", "0"), 16)
        part = int(info.fields["CPU part"], 16)
        rev = int(info.fields.get("CPU revision", "0"), 0)
    except (KeyError, ValueError):
        found.problem("cpu.model", f"{found.fs.display(CPUINFO)}: no usable CPU implementer/part fields")
        return None
    return (impl & 0xFF) << 24 | (variant & 0xF) << 20 | 0xF << 16 | (part & 0xFFF) << 4 | (rev & 0xF)


def _model(found: Found, info: CpuInfo) -> dict[str, str] | None:
    if info.arch == "x86":
        family = go_atoi(info.fields.get("cpu family", ""))
        model = go_atoi(info.fields.get("model", ""))
        if family is None or model is None:
            found.problem("cpu.model", f"{found.fs.display(CPUINFO)}: no numeric 'cpu family'/'model'")
            return None
        return {
            "vendor_id": X86_VENDORS.get(info.fields["vendor_id"].strip(), UNKNOWN_VENDOR),
            "family": str(family),
            "id": str(model),
            "hypervisor": _x86_hypervisor(found, info),
        }
    if "cpuid" not in info.flags:
        return {"vendor_id": UNKNOWN_VENDOR, "family": "0", "id": "0", "hypervisor": "none"}
    midr = _arm64_midr(found, info)
    if midr is None:
        return None
    return {
        "vendor_id": ARM64_IMPLEMENTERS.get((midr >> 24) & 0xFF, UNKNOWN_VENDOR),
        "family": str((midr >> 16) & 0xFF),
        "id": str(midr & 0xFFFF),
        "hypervisor": "none",
    }


# -- cpu.cpuid -----------------------------------------------------------------------------------


def _smt_capable(found: Found, info: CpuInfo) -> bool:
    """Does CPUID report more than one thread per core (klauspost's threadsPerCore() > 1)?
    ``smt/control`` is ``on``/``off``/``forceoff`` when the hardware has SMT (even if the kernel
    turned it off, as CPUID still reports it) and ``notsupported`` when not; without it, compare
    cpuinfo's ``siblings`` and ``cpu cores``."""
    control = _read_quiet(found, "cpu.cpuid", f"{CPU_DIR}/smt/control")
    if control in ("on", "off", "forceoff"):
        return True
    if control == "notsupported":
        return False
    siblings = go_atoi(info.fields.get("siblings", ""))
    cores = go_atoi(info.fields.get("cpu cores", ""))
    return siblings is not None and cores is not None and siblings > cores


def _cpuid(found: Found, info: CpuInfo, model: dict[str, str] | None) -> None:
    if info.arch == "arm64":
        found.flag("cpu.cpuid", cpuflags.arm64_features(info.flags))
        return
    family = go_atoi(info.fields.get("cpu family", ""))
    number = go_atoi(info.fields.get("model", ""))
    vendor = model["vendor_id"] if model else UNKNOWN_VENDOR
    flags = cpuflags.x86_features(
        info.flags, vendor=vendor, family=family, model=number, smt_capable=_smt_capable(found, info)
    )
    found.flag("cpu.cpuid", flags)
    found.attr("cpu.cpuid", {})


# -- cpu.topology --------------------------------------------------------------------------------


def _topology(found: Found) -> None:
    feature = "cpu.topology"
    try:
        cpus = found.fs.listdir(CPU_DEVICES)
    except OSError as exc:
        found.unreadable(feature, CPU_DEVICES, exc, "cpu.topology left empty, as NFD")
        found.attr(feature, {})
        return
    threads = False
    packages: set[str] = set()
    for cpu in cpus:
        try:
            siblings = found.fs.read_text(f"{CPU_DEVICES}/{cpu}/topology/thread_siblings_list")
            package = found.fs.read_text(f"{CPU_DEVICES}/{cpu}/topology/physical_package_id")
        except OSError as exc:
            found.problem(feature, f"{cpu}: {describe(exc)} (cpu.topology left empty, as NFD)")
            found.attr(feature, {})
            return
        threads = threads or "," in siblings or "-" in siblings
        packages.add(package.strip())
    found.attr(feature, {"hardware_multithreading": str(threads).lower(), "socket_count": str(len(packages))})


# -- x86 power and security ----------------------------------------------------------------------


def _cstate(found: Found) -> None:
    feature = "cpu.cstate"
    try:
        if not found.fs.exists(CPU_DIR):
            found.problem(feature, f"{found.fs.display(CPU_DIR)} missing (cpu.cstate not reported)")
            return
        if not found.fs.exists(f"{CPU_DIR}/cpuidle"):
            found.attr(feature, {})
            return
    except OSError as exc:
        found.unreadable(feature, CPU_DIR, exc, "cpu.cstate not reported")
        return
    driver = _read(found, feature, f"{CPU_DIR}/cpuidle/current_driver")
    if driver is None:
        return
    if driver != "intel_idle":
        found.attr(feature, {})
        return
    raw = _read(found, feature, "/sys/module/intel_idle/parameters/max_cstate")
    if raw is None:
        return
    value = go_atoi(raw)
    if value is None:
        found.problem(feature, f"max_cstate is not an integer: {raw[:40]!r}")
        return
    found.attr(feature, {"enabled": str(value > 0).lower()})


def _pstate(found: Found) -> None:
    feature = "cpu.pstate"
    found.attr(feature, {})  # NFD sets it even when detection fails
    base = f"{CPU_DIR}/intel_pstate"
    try:
        if not found.fs.exists(CPU_DIR):
            found.problem(feature, f"{found.fs.display(CPU_DIR)} missing")
            return
        if not found.fs.exists(base):
            return
    except OSError as exc:
        found.unreadable(feature, base, exc)
        return
    status = _read(found, feature, f"{base}/status")
    if status is None or status == "off":
        return
    attrs = {"status": status}
    try:
        no_turbo = found.fs.read_text(f"{base}/no_turbo")
    except OSError as exc:
        found.unreadable(feature, f"{base}/no_turbo", exc)
    else:
        if no_turbo:
            attrs["turbo"] = str(no_turbo[0] == "0").lower()
        else:
            found.problem(feature, "no_turbo is empty")
    if status == "active":
        scaling = _scaling_governor(found)
        if scaling:
            attrs["scaling_governor"] = scaling
    found.attr(feature, attrs)


def _scaling_governor(found: Found) -> str:
    """The governor shared by every cpufreq policy that has CPUs; "" if they differ."""
    cpufreq = f"{CPU_DIR}/cpufreq"
    try:
        policies = found.fs.listdir(cpufreq)
    except OSError as exc:
        if not is_missing(exc):
            found.unreadable("cpu.pstate", cpufreq, exc)
        return ""
    scaling = ""
    for policy in policies:
        try:
            cpus = found.fs.read_text(f"{cpufreq}/{policy}/affected_cpus").strip()
            if not cpus:
                continue
            governor = found.fs.read_text(f"{cpufreq}/{policy}/scaling_governor").strip()
        except OSError:
            continue  # NFD logs and skips such policies (e.g. the "boost" file)
        if scaling and scaling != governor:
            return ""
        scaling = governor
    return scaling


def _rdt(found: Found, info: CpuInfo) -> None:
    f = info.flags
    attrs: dict[str, str] = {}
    if "cqm" in f and "cqm_llc" in f:
        attrs["RDTMON"] = "true"
        if "cqm_occup_llc" in f:
            attrs["RDTCMT"] = "true"
        if "cqm_mbm_total" in f and "cqm_mbm_local" in f:
            attrs["RDTMBM"] = "true"
    if "rdt_a" in f:
        if "cat_l3" in f:
            attrs["RDTL3CA"] = "true"
            closids = go_atoi(_read_quiet(found, "cpu.rdt", "/sys/fs/resctrl/info/L3/num_closids") or "")
            if closids is not None:
                attrs["RDTL3CA_NUM_CLOSID"] = str(closids - 1)  # minus the default group, as NFD
        if "cat_l2" in f:
            attrs["RDTL2CA"] = "true"
        if "mba" in f:
            attrs["RDTMBA"] = "true"
    found.attr("cpu.rdt", attrs)


def _misc_capacity(found: Found, resource: str) -> int:
    """The ``<resource> <n>`` line of the misc cgroup's capacity file; -1 if absent (NFD)."""
    for path in ("/sys/fs/cgroup/misc.capacity", "/sys/fs/cgroup/misc/misc.capacity"):
        try:
            text = found.fs.read_text(path)
        except OSError as exc:
            if is_missing(exc):
                continue
            found.unreadable("cpu.security", path, exc)
            return -1
        for line in text.split("\n"):
            if line.startswith(resource):
                fields = line.split(" ")
                value = go_atoi(fields[1]) if len(fields) > 1 else None
                return -1 if value is None else value
        return -1
    return -1


def _kvm_param(found: Found, module: str, name: str) -> str | None:
    try:
        return found.fs.read_text(f"/sys/module/{module}/parameters/{name}")
    except OSError as exc:
        if not is_missing(exc):
            found.unreadable("cpu.security", f"/sys/module/{module}/parameters/{name}", exc)
        return None


def _sgx_epc(found: Found) -> int | None:
    """Total SGX EPC bytes over NUMA nodes, None if the kernel does not publish it."""
    try:
        nodes = [n for n in found.fs.listdir("/sys/devices/system/node") if n.startswith("node")]
    except OSError:
        return None
    total, seen = 0, False
    for node in nodes:
        raw = _read_quiet(found, "cpu.security", f"/sys/devices/system/node/{node}/x86/sgx_total_bytes")
        value = go_atoi(raw) if raw is not None else None
        if value is not None:
            total, seen = total + value, True
    return total if seen else None


def _security(found: Found, info: CpuInfo) -> None:
    attrs: dict[str, str] = {}
    if "sgx" in info.flags:
        epc = _sgx_epc(found)
        if epc is None:
            found.problem("cpu.security", "sgx flag set but no node*/x86/sgx_total_bytes; sgx.* not reported")
        elif epc > 0:
            attrs["sgx.enabled"] = "true"
            attrs["sgx.epc"] = str(epc)
    if _kvm_param(found, "kvm_intel", "tdx") == "Y\n":
        attrs["tdx.enabled"] = "true"
        keys = _misc_capacity(found, "tdx")
        if keys > -1:
            attrs["tdx.total_keys"] = str(keys)
    if "tdx_guest" in info.flags:
        attrs["tdx.protected"] = "true"
    for param, key, capacity_key in (
        ("sev", "sev.enabled", "sev.asids"),
        ("sev_es", "sev.es.enabled", "sev.encrypted_state_ids"),
        ("sev_snp", "sev.snp.enabled", ""),
    ):
        value = _kvm_param(found, "kvm_amd", param)
        if value and value[0] in "1Y":
            attrs[key] = "true"
            if capacity_key:
                n = _misc_capacity(found, param)
                if n > -1:
                    attrs[capacity_key] = str(n)
    found.attr("cpu.security", attrs)


def _nominal_mhz(found: Found, info: CpuInfo) -> int:
    """Intel's nominal base frequency (CPUID leaf 0x16 for NFD): the ``@ 2.30GHz`` of the model
    name, else ACPI CPPC's ``nominal_freq``; 0 when neither is there."""
    match = _NOMINAL_GHZ.search(info.fields.get("model name", ""))
    if match:
        return round(float(match.group(1)) * 1000)
    cppc = go_atoi(_read_quiet(found, "cpu.sst", f"{CPU_DIR}/cpu0/acpi_cppc/nominal_freq") or "")
    return cppc if cppc is not None and cppc > 0 else 0


def _sst(found: Found, info: CpuInfo, vendor: str) -> None:
    feature = "cpu.sst"
    try:
        cpus = found.fs.listdir(CPU_DEVICES)
    except OSError as exc:
        found.unreadable(feature, CPU_DEVICES, exc, "cpu.sst left empty, as NFD")
        found.attr(feature, {})
        return
    nominal_mhz = _nominal_mhz(found, info) if vendor == "Intel" else 0
    for cpu in cpus:
        path = f"{CPU_DEVICES}/{cpu}/cpufreq/base_frequency"
        try:
            raw = found.fs.read_text(path).strip()
        except OSError as exc:
            if is_missing(exc):
                continue
            found.unreadable(feature, path, exc, "cpu.sst left empty, as NFD")
            break
        khz = go_atoi(raw)
        if khz is None:
            found.problem(feature, f"{found.fs.display(path)} is not an integer (cpu.sst left empty, as NFD)")
            break
        if nominal_mhz == 0:
            if vendor == "Intel":
                found.problem(
                    feature, "no nominal base frequency (model name, acpi_cppc); cpu.sst not reported"
                )
                return
            break  # no CPUID leaf 0x16 outside Intel: NFD errors and leaves it empty
        if khz // 1000 > nominal_mhz:
            found.attr(feature, {"bf.enabled": "true"})
            return
    found.attr(feature, {})


# -- the source ----------------------------------------------------------------------------------


def discover(found: Found) -> None:
    try:
        text = found.fs.read_text(CPUINFO, limit=CPUINFO_LIMIT, truncate=True)
    except OSError as exc:
        found.unreadable("cpu.cpuid", CPUINFO, exc, "cpu.cpuid and cpu.model not reported")
        info = CpuInfo(None, {}, frozenset())
    else:
        info = parse_cpuinfo(text)
        if info.arch is None:
            found.problem(
                "cpu.cpuid",
                f"{found.fs.display(CPUINFO)} has no x86 'flags' or arm64 'Features' line "
                "(unsupported architecture or garbage); only cpu.topology reported",
            )
    if info.arch is not None:
        model = _model(found, info)
        if model is not None:
            found.attr("cpu.model", model)
        _cpuid(found, info, model)
    _topology(found)
    if info.arch == "x86":
        vendor = X86_VENDORS.get(info.fields["vendor_id"].strip(), UNKNOWN_VENDOR)
        _cstate(found)
        _pstate(found)
        _rdt(found, info)
        _security(found, info)
        _sst(found, info, vendor)
        found.attr("cpu.coprocessor", {})
    elif info.arch == "arm64":
        for name in ("cstate", "pstate", "rdt", "security", "sst", "coprocessor"):
            found.attr(f"cpu.{name}", {})
