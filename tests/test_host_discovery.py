"""Host discovery against fake host roots (exact features) and against this machine (sanity).

Tests run as root, and root reads files whatever their mode, so "unreadable" is made real in two
honest ways: a directory (or FIFO) where a file is expected, which the kernel refuses to read as
a file for root too, and a PermissionError injected into the single read/list helper of
:class:`~extender.sources.host.hostfs.HostFS`, for the exact message a permission failure gives.
"""

from __future__ import annotations

import ast
import errno
import importlib
import os
import platform
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import pytest

from extender.features.nodefeature import NodeFeatures
from extender.match.reference import evaluate_node
from extender.match.result import Status
from extender.sources import host as host_package
from extender.sources.host.cpu import parse_cpuinfo
from extender.sources.host.discover import SOURCES, HostDiscovery, HostPaths, discover
from extender.sources.host.hostfs import HostFS
from extender.sources.host.kernel import parse_version
from extender.sources.host.memory import binary_quantity
from extender.spec.parse import parse_spec
from tests.fake_host import FakeHost, arm64_cpuinfo, arm64_host, intel_cpuinfo, intel_host

# the package re-exports the function discover() under the submodule's name
discover_module = importlib.import_module("extender.sources.host.discover")


@pytest.fixture(autouse=True)
def _no_node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)


def _intel(tmp_path: Path, prefix: str = "") -> FakeHost:
    return intel_host(FakeHost.at(tmp_path, prefix))


def _arm(tmp_path: Path, prefix: str = "") -> FakeHost:
    return arm64_host(FakeHost.at(tmp_path, prefix))


def _run(h: FakeHost, sources: Collection[str] | None = None, node_name: str | None = None) -> HostDiscovery:
    return discover(h.paths, sources=sources, node_name=node_name)


def _as_plain(nf: NodeFeatures) -> dict[str, object]:
    return {
        "node": nf.node,
        "flags": {k: sorted(v) for k, v in nf.flags.items()},
        "attributes": {k: dict(v) for k, v in nf.attributes.items()},
        "instances": {k: [dict(r) for r in v] for k, v in nf.instances.items()},
    }


# -- the Intel box -------------------------------------------------------------------------------


def _names(text: str) -> list[str]:
    return sorted(text.split())


INTEL_CPUID = _names(
    """ADX AESNI AMXBF16 AMXINT8 AMXTILE AVX AVX2 AVX512BF16 AVX512BITALG AVX512BW AVX512CD AVX512DQ
    AVX512F AVX512FP16 AVX512IFMA AVX512VBMI AVX512VBMI2 AVX512VL AVX512VNNI AVX512VPOPCNTDQ AVXVNNI
    BMI1 BMI2 CETIBT CLDEMOTE CLMUL CMOV CMPXCHG8 CX16 ENQCMD ERMS F16C FLUSH_L1D FMA3 FSRM FXSR FXSROPT
    GFNI HTT IA32_ARCH_CAP IBPB LAHF LZCNT MD_CLEAR MMX MOVBE MOVDIR64B MOVDIRI NX OSXSAVE PCONFIG POPCNT
    RDRAND RDSEED RDTSCP SERIALIZE SHA SSE SSE2 SSE3 SSE4 SSE42 SSSE3 STIBP SYSCALL SYSEE TME TSXLDTRK
    VAES VMX VPCLMULQDQ WAITPKG WBNOINVD X87 XGETBV1 XSAVE XSAVEC XSAVEOPT XSAVES
    X86_64_V1 X86_64_V2 X86_64_V3 X86_64_V4"""
)

INTEL_EXPECTED = {
    "node": "gpu-spr-01",
    "flags": {
        "cpu.cpuid": INTEL_CPUID,
        "kernel.loadedmodule": sorted(["nvidia_uvm", "nvidia", "vfio_pci", "vfio_iommu_type1", "ice"]),
        "kernel.enabledmodule": _names(
            "nvidia_uvm nvidia vfio_pci vfio_iommu_type1 ice ext4 vfio-pci-core e1000e crc32c-intel"
        ),
    },
    "attributes": {
        "cpu.cpuid": {},
        "cpu.model": {"vendor_id": "Intel", "family": "6", "id": "143", "hypervisor": "none"},
        "cpu.topology": {"hardware_multithreading": "true", "socket_count": "2"},
        "cpu.cstate": {"enabled": "true"},
        "cpu.pstate": {"status": "active", "turbo": "true", "scaling_governor": "performance"},
        "cpu.rdt": {
            "RDTMON": "true",
            "RDTCMT": "true",
            "RDTMBM": "true",
            "RDTL3CA": "true",
            "RDTL3CA_NUM_CLOSID": "15",
            "RDTL2CA": "true",
            "RDTMBA": "true",
        },
        "cpu.security": {"tdx.enabled": "true", "tdx.total_keys": "31"},
        "cpu.sst": {"bf.enabled": "true"},
        "cpu.coprocessor": {},
        "kernel.version": {"full": "6.1.0-18-amd64", "major": "6", "minor": "1", "revision": "0"},
        "kernel.config": {
            "CC_VERSION_TEXT": "gcc-12 (Debian 12.2.0-14) 12.2.0",
            "X86_64": "y",
            "X86": "y",
            "NO_HZ": "y",
            "PREEMPT_VOLUNTARY": "y",
            "HZ": "250",
            "VFIO_PCI": "m",
            "LSM": "landlock,lockdown,yama,loadpin,safesetid,integrity,apparmor,selinux",
        },
        "kernel.selinux": {"enabled": "true"},
        "kernel.kvm": {"enabled": "true"},
        "memory.numa": {"is_numa": "true", "node_count": "2"},
        "memory.swap": {"enabled": "true"},
        "memory.hugepages": {"enabled": "true", "hugepages-1Gi": "4", "hugepages-2Mi": "0"},
        "system.name": {"nodename": "gpu-spr-01"},
        "system.osrelease": {
            "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
            "NAME": "Debian GNU/Linux",
            "VERSION_ID": "12",
            "VERSION": "12 (bookworm)",
            "VERSION_CODENAME": "bookworm",
            "ID": "debian",
            "HOME_URL": "https://www.debian.org/",
            "VERSION_ID.major": "12",
        },
        "system.dmiid": {
            "sys_vendor": "Dell Inc.",
            "product_name": "PowerEdge R760",
            "bios_version": "1.6.6",
        },
    },
    "instances": {
        "pci.device": [
            {
                "class": "0600",
                "vendor": "8086",
                "device": "09a2",
                "subsystem_vendor": "8086",
                "subsystem_device": "0000",
            },
            {
                "class": "0302",
                "vendor": "10de",
                "device": "2330",
                "subsystem_vendor": "10de",
                "subsystem_device": "16c1",
                "iommu_group/type": "DMA",
                "iommu/intel-iommu/version": "1:0",
            },
            {
                "class": "0200",
                "vendor": "8086",
                "device": "1592",
                "subsystem_vendor": "8086",
                "subsystem_device": "0002",
                "sriov_totalvfs": "128",
                "iommu_group/type": "identity",
                "iommu/intel-iommu/version": "1:0",
            },
        ],
        "usb.device": [
            {"class": "03", "vendor": "413c", "device": "2113"},
            {"class": "03", "vendor": "413c", "device": "2113"},
            {"class": "09", "vendor": "1d6b", "device": "0002", "serial": "0000:00:14.0"},
        ],
        "memory.nv": [],
        "storage.block": [
            {"name": "nvme0n1", "dax": "0", "rotational": "0", "nr_zones": "0", "zoned": "none"},
            {"name": "sda", "dax": "0", "rotational": "1", "nr_zones": "0", "zoned": "none"},
        ],
        "network.device": [
            {
                "name": "ens1f0",
                "operstate": "up",
                "speed": "25000",
                "sriov_numvfs": "8",
                "sriov_totalvfs": "128",
                "mtu": "9000",
            }
        ],
        "network.virtual": [
            {"name": "docker0", "operstate": "down", "speed": "-1", "mtu": "1500"},
            {"name": "lo", "operstate": "unknown", "mtu": "65536"},
        ],
    },
}


def test_intel_host_exactly(tmp_path: Path) -> None:
    result = _run(_intel(tmp_path))
    assert _as_plain(result.features) == INTEL_EXPECTED
    assert result.problems == ()


def test_the_job_layout_reads_the_same_host(tmp_path: Path) -> None:
    """``/host-`` prefix: every link in the fake sysfs resolves under host-sys. A plain ``/``-style
    tree next to it holds a different machine that must not leak in."""
    _arm(tmp_path)  # tmp/proc, tmp/sys, ... : a decoy arm64 box
    result = _run(_intel(tmp_path, "host-"))
    assert _as_plain(result.features) == INTEL_EXPECTED
    assert result.problems == ()


# -- the arm64 box -------------------------------------------------------------------------------

ARM64_CPUID = _names(
    """FP ASIMD EVTSTRM AES PMULL SHA1 SHA2 CRC32 ATOMICS FPHP ASIMDHP CPUID ASIMDRDM JSCVT FCMA LRCPC
    DCPOP SHA3 SM3 SM4 ASIMDDP SHA512 SVE ASIMDFHM DIT USCAT ILRCPC FLAGM SSBS PACA PACG DCPODP
    SVEI8MM SVEBF16 I8MM BF16 DGH RNG"""
)

ARM64_EXPECTED = {
    "node": "ip-10-0-3-7",
    "flags": {
        "cpu.cpuid": ARM64_CPUID,
        "kernel.loadedmodule": ["ena"],
        "kernel.enabledmodule": ["ena", "nvme-core"],
    },
    "attributes": {
        # MIDR 0x411fd401: implementer 0x41, variant 1, architecture 0xf, part 0xd40, revision 1
        "cpu.model": {"vendor_id": "ARM", "family": "31", "id": "54273", "hypervisor": "none"},
        "cpu.topology": {"hardware_multithreading": "false", "socket_count": "1"},
        "cpu.cstate": {},
        "cpu.pstate": {},
        "cpu.rdt": {},
        "cpu.security": {},
        "cpu.sst": {},
        "cpu.coprocessor": {},
        "kernel.version": {"full": "6.8.0-1009-aws", "major": "6", "minor": "8", "revision": "0"},
        "kernel.config": {"ARM64": "y", "ARM64_SVE": "y", "HZ": "250"},
        "kernel.selinux": {"enabled": "false"},
        "kernel.kvm": {"enabled": "false"},
        "memory.numa": {"is_numa": "false", "node_count": "1"},
        "memory.swap": {"enabled": "false"},
        "memory.hugepages": {
            "enabled": "false",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "hugepages-32Mi": "0",
            "hugepages-64Ki": "0",
        },
        "system.name": {"nodename": "ip-10-0-3-7"},
        "system.osrelease": {
            "PRETTY_NAME": "Ubuntu 24.04 LTS",
            "NAME": "Ubuntu",
            "VERSION_ID": "24.04",
            "VERSION": "24.04 LTS (Noble Numbat)",
            "ID": "ubuntu",
            "ID_LIKE": "debian",
            "VERSION_ID.major": "24",
            "VERSION_ID.minor": "04",
        },
    },
    "instances": {
        "pci.device": [
            {
                "class": "0108",
                "vendor": "1d0f",
                "device": "0061",
                "subsystem_vendor": "1d0f",
                "subsystem_device": "0061",
            },
            {
                "class": "0200",
                "vendor": "1d0f",
                "device": "ec20",
                "subsystem_vendor": "0000",
                "subsystem_device": "0000",
            },
        ],
        "usb.device": [],
        "memory.nv": [],
        "storage.block": [
            {"name": "nvme0n1", "dax": "0", "rotational": "0", "nr_zones": "0", "zoned": "none"}
        ],
        "network.device": [{"name": "ens5", "operstate": "up", "mtu": "9001"}],
        "network.virtual": [{"name": "lo", "operstate": "unknown", "mtu": "65536"}],
    },
}


def test_arm64_host_exactly(tmp_path: Path) -> None:
    """No /proc/config.gz (kernel.config from /boot), os-release only under /usr/lib, no DMI."""
    h = _arm(tmp_path, "host-")
    result = _run(h)
    assert _as_plain(result.features) == ARM64_EXPECTED
    assert result.problems == (
        f"system.dmiid: nothing readable in {tmp_path}/host-sys/devices/virtual/dmi/id "
        "(system.dmiid not reported)",
    )


def test_arm64_midr_from_sysfs_wins_and_unknown_hwcaps_are_dropped(tmp_path: Path) -> None:
    h = _arm(tmp_path)
    h.write("/sys/devices/system/cpu/cpu0/regs/identification/midr_el1", "0x00000000c00fac31\n")
    h.write("/proc/cpuinfo", arm64_cpuinfo().replace("Features\t: fp ", "Features\t: sve2p1 sme2 fp "))
    nf = _run(h).features
    assert nf.attributes["cpu.model"] == {
        "vendor_id": "Ampere",
        "family": "15",
        "id": "44081",
        "hypervisor": "none",
    }
    assert nf.flags["cpu.cpuid"] == frozenset(ARM64_CPUID)


def test_arm64_without_the_cpuid_hwcap_has_no_midr_as_klauspost(tmp_path: Path) -> None:
    h = _arm(tmp_path)
    h.write("/proc/cpuinfo", arm64_cpuinfo().replace(" cpuid ", " "))
    nf = _run(h).features
    assert nf.attributes["cpu.model"] == {
        "vendor_id": "VendorUnknown",
        "family": "0",
        "id": "0",
        "hypervisor": "none",
    }
    assert "CPUID" not in nf.flags["cpu.cpuid"]


# -- odd hosts -----------------------------------------------------------------------------------


def test_no_pci_bus_at_all_vs_an_empty_one(tmp_path: Path) -> None:
    h = _arm(tmp_path)
    h.remove("/sys/bus/pci")
    result = _run(h, sources={"pci"})
    assert "pci.device" not in result.features.feature_names()
    assert result.problems == (
        f"pci.device: {tmp_path}/sys/bus/pci/devices missing: No such file or directory "
        "(pci.device not reported)",
    )
    h.mkdir("/sys/bus/pci/devices")
    result = _run(h, sources={"pci"})
    assert result.features.instances["pci.device"] == ()
    assert result.problems == ()


def _deny(monkeypatch: pytest.MonkeyPatch, fs_method: str, denied: Callable[[str], bool]) -> None:
    """Make HostFS.<fs_method> raise PermissionError for some host paths, as an unreadable file
    or directory would for a non-root reader."""
    original = getattr(HostFS, fs_method)

    def guarded(self: HostFS, host_path: str, *args: object, **kwargs: object) -> object:
        if denied(host_path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), host_path)
        return original(self, host_path, *args, **kwargs)

    monkeypatch.setattr(HostFS, fs_method, guarded)


def test_permission_denied_on_the_pci_bus_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _intel(tmp_path, "host-")
    _deny(monkeypatch, "listdir", lambda p: p == "/sys/bus/pci/devices")
    result = _run(h)
    assert "pci.device" not in result.features.feature_names()
    assert result.problems == (
        f"pci.device: {tmp_path}/host-sys/bus/pci/devices unreadable: Permission denied "
        "(pci.device not reported)",
    )
    assert result.features.attributes["kernel.version"]["major"] == "6", "the rest is still discovered"


def test_one_unreadable_mandatory_pci_attribute_skips_that_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _intel(tmp_path)
    _deny(monkeypatch, "read_bytes", lambda p: p == "/sys/bus/pci/devices/0000:17:00.0/vendor")
    result = _run(h, sources={"pci"})
    assert [d["vendor"] for d in result.features.instances["pci.device"]] == ["8086", "8086"]
    assert result.problems == ("pci.device: 0000:17:00.0: vendor: Permission denied (device skipped)",)


def test_everything_denied_is_problems_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = _intel(tmp_path, "host-")
    _deny(monkeypatch, "read_bytes", lambda p: True)
    _deny(monkeypatch, "listdir", lambda p: True)
    result = _run(h)
    assert _as_plain(result.features) == {
        "node": "",
        "flags": {},
        "attributes": {
            "cpu.topology": {},
            "kernel.kvm": {"enabled": "true"},  # a stat, not a read
            "system.name": {"nodename": ""},
        },
        "instances": {"usb.device": []},
    }
    assert len(result.problems) > 20
    assert all("Permission denied" in p or "not reported" in p for p in result.problems), result.problems


def test_an_unexpected_error_in_a_source_is_contained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(found: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setitem(discover_module._SOURCES, "memory", broken)
    result = _run(_intel(tmp_path))
    assert "memory: discovery stopped early: Input/output error" in result.problems
    assert "storage.block" in result.features.instances, "later sources still run"


def test_a_directory_where_a_file_should_be(tmp_path: Path) -> None:
    h = _intel(tmp_path)
    h.remove("/proc/modules")
    h.mkdir("/proc/modules")
    result = _run(h, sources={"kernel"})
    assert "kernel.loadedmodule" not in result.features.flags
    assert result.features.flags["kernel.enabledmodule"] == {
        "ext4",
        "vfio-pci-core",
        "e1000e",
        "crc32c-intel",
    }
    assert result.problems == (
        f"kernel.loadedmodule: {tmp_path}/proc/modules unreadable: Is a directory "
        "(kernel.loadedmodule not reported)",
    )


def test_a_fifo_in_proc_does_not_hang_discovery(tmp_path: Path) -> None:
    h = _intel(tmp_path)
    h.remove("/proc/swaps")
    os.mkfifo(h.path("/proc/swaps"))
    result = _run(h, sources={"memory"})
    assert "memory.swap" not in result.features.attributes
    assert result.problems == (
        f"memory.swap: {tmp_path}/proc/swaps unreadable: not a regular file (memory.swap not reported)",
    )


def test_kernel_config_falls_back_and_never_crashes(tmp_path: Path) -> None:
    h = _intel(tmp_path)
    h.write("/proc/config.gz", b"\x1f\x8b garbage, not gzip")
    nf = _run(h, sources={"kernel"}).features
    assert nf.attributes["kernel.config"] == {"FROM_BOOT": "y"}, "a corrupt config.gz falls through to /boot"
    h.remove("/proc/config.gz")
    h.remove(f"/boot/config-{'6.1.0-18-amd64'}")
    h.write("/usr/lib/modules/6.1.0-18-amd64/config", 'CONFIG_FROM_USR="quoted"\n')
    nf = _run(h, sources={"kernel"}).features
    assert nf.attributes["kernel.config"] == {"FROM_USR": "quoted"}, "earlier in NFD's list than /boot"
    h.remove("/usr/lib/modules/6.1.0-18-amd64/config")
    result = _run(h, sources={"kernel"})
    assert "kernel.config" not in result.features.attributes
    [problem] = result.problems
    assert problem.startswith(f"kernel.config: no kernel config found (tried {tmp_path}/proc/config.gz, ")
    assert problem.endswith(f"{tmp_path}/boot/config-6.1.0-18-amd64)")


def test_kernel_without_osrelease(tmp_path: Path) -> None:
    h = _intel(tmp_path)
    h.remove("/proc/sys/kernel/osrelease")
    result = _run(h, sources={"kernel"})
    nf = result.features
    assert "kernel.version" not in nf.attributes
    assert nf.attributes["kernel.config"]["X86"] == "y", "/proc/config.gz needs no release"
    assert "kernel.enabledmodule" not in nf.flags and "nvidia" in nf.flags["kernel.loadedmodule"]
    assert len(result.problems) == 2


def test_garbage_cpuinfo(tmp_path: Path) -> None:
    h = _intel(tmp_path)
    h.write("/proc/cpuinfo", b"\x00\xff\xfe garbage\n\n:::\nflags without a colon\n" * 50)
    result = _run(h, sources={"cpu"})
    assert set(result.features.feature_names()) == {"cpu.topology"}
    assert result.features.attributes["cpu.topology"] == {
        "hardware_multithreading": "true",
        "socket_count": "2",
    }
    [problem] = result.problems
    assert problem.startswith(
        f"cpu.cpuid: {tmp_path}/proc/cpuinfo has no x86 'flags' or arm64 'Features' line"
    )


def test_x86_cpuinfo_with_a_garbled_family(tmp_path: Path) -> None:
    h = _intel(tmp_path)
    h.write("/proc/cpuinfo", intel_cpuinfo().replace("cpu family\t: 6", "cpu family\t: six"))
    result = _run(h, sources={"cpu"})
    assert "cpu.model" not in result.features.attributes
    assert "AVX512F" in result.features.flags["cpu.cpuid"]
    assert result.problems == (f"cpu.model: {tmp_path}/proc/cpuinfo: no numeric 'cpu family'/'model'",)


def test_x86_hypervisor_vendor(tmp_path: Path) -> None:
    h = _intel(tmp_path)
    h.write("/proc/cpuinfo", intel_cpuinfo().replace(" ht tm ", " ht hypervisor tm "))
    result = _run(h, sources={"cpu"})
    assert result.features.attributes["cpu.model"]["hypervisor"] == "unknown"
    assert "HYPERVISOR" in result.features.flags["cpu.cpuid"]
    assert [p.split(":")[0] for p in result.problems] == ["cpu.model"]
    h.write(
        "/sys/devices/system/clocksource/clocksource0/available_clocksource", "kvm-clock tsc hpet acpi_pm \n"
    )
    assert _run(h, sources={"cpu"}).features.attributes["cpu.model"]["hypervisor"] == "kvm"
    h.remove("/sys/devices/system/clocksource/clocksource0/available_clocksource")
    h.write("/sys/devices/virtual/dmi/id/sys_vendor", "VMware, Inc.\n")
    assert _run(h, sources={"cpu"}).features.attributes["cpu.model"]["hypervisor"] == "vmware"


def test_x86_without_smt_or_with_an_old_amd(tmp_path: Path) -> None:
    h = _intel(tmp_path)
    h.write("/sys/devices/system/cpu/smt/control", "notsupported\n")
    assert "HTT" not in _run(h, sources={"cpu"}).features.flags["cpu.cpuid"]
    amd = (
        intel_cpuinfo()
        .replace("GenuineIntel", "AuthenticAMD")
        .replace("cpu family\t: 6", "cpu family\t: 23")
        .replace("model\t\t: 143", "model\t\t: 1")
    )
    h.write("/proc/cpuinfo", amd)
    nf = _run(h, sources={"cpu"}).features
    assert nf.attributes["cpu.model"] == {"vendor_id": "AMD", "family": "23", "id": "1", "hypervisor": "none"}
    assert {"AVXSLOW", "TSA_L1_NO", "TSA_SQ_NO"} <= nf.flags["cpu.cpuid"]
    assert nf.attributes["cpu.sst"] == {}, "no CPUID leaf 0x16 on AMD: NFD's SST-BF check gives nothing"


def test_os_release_in_etc_as_a_link_into_usr_lib(tmp_path: Path) -> None:
    h = _arm(tmp_path, "host-")
    h.write("/usr/lib/os-release-linked", "ID=linked\n")
    for target in ("../usr/lib/os-release-linked", "/usr/lib/os-release-linked"):
        h.link("/etc/os-release", target)
        nf = _run(h, sources={"system"}).features
        assert nf.attributes["system.osrelease"]["ID"] == "linked", f"followed {target} on the host"
        h.remove("/etc/os-release")
    h.write("/etc/os-release", "ID=frometc\r\nVERSION_ID=3\n=x\n NAME=indented\nEMPTY=\nQ='\"a'\"\n")
    nf = _run(h, sources={"system"}).features
    assert nf.attributes["system.osrelease"] == {
        "ID": "frometc",
        "VERSION_ID": "3",
        "VERSION_ID.major": "3",
        "Q": "a",
    }


def test_no_os_release_anywhere(tmp_path: Path) -> None:
    h = _arm(tmp_path)
    h.remove("/usr/lib/os-release")
    result = _run(h, sources={"system"})
    assert "system.osrelease" not in result.features.attributes
    assert result.problems[:2] == (
        f"system.osrelease: {tmp_path}/etc/os-release missing: No such file or directory",
        f"system.osrelease: {tmp_path}/usr/lib/os-release missing: No such file or directory "
        "(system.osrelease not reported)",
    )


def test_node_name_from_the_environment_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = _arm(tmp_path)
    monkeypatch.setenv("NODE_NAME", "worker-7")
    nf = _run(h, sources={"system"}).features
    assert nf.node == "worker-7" and nf.attributes["system.name"] == {"nodename": "worker-7"}
    assert _run(h, sources=(), node_name="given").features.node == "given"


def test_sources_select_features(tmp_path: Path) -> None:
    h = _intel(tmp_path)
    nf = _run(h, sources={"kernel", "usb"}).features
    assert {n.split(".")[0] for n in nf.feature_names()} == {"kernel", "usb"}
    assert nf.node == "gpu-spr-01"
    with pytest.raises(ValueError, match="gpu"):
        _run(h, sources={"gpu"})
    assert set(SOURCES) == {"cpu", "kernel", "memory", "network", "pci", "storage", "system", "usb"}


# -- small pieces, against NFD's own test tables -------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("6.2.3", {"full": "6.2.3", "major": "6", "minor": "2", "revision": "3"}),
        ("6.0.0-beta", {"full": "6.0.0-beta", "major": "6", "minor": "0", "revision": "0"}),
        ("6.8", {"full": "6.8", "major": "6", "minor": "8", "revision": ""}),
        (
            "6.0.10-100+123.x86_64~",
            {"full": "6.0.10-100_123.x86_64", "major": "6", "minor": "0", "revision": "10"},
        ),
        ("not-a-version", {"full": "not-a-version"}),
    ],
)
def test_kernel_version_as_nfd(raw: str, expected: Mapping[str, str]) -> None:
    assert parse_version(raw) == expected


@pytest.mark.parametrize(
    ("kib", "name"), [(64, "64Ki"), (2048, "2Mi"), (1048576, "1Gi"), (1536, "1536Ki"), (0, "0")]
)
def test_hugepage_sizes_as_kubernetes_quantities(kib: int, name: str) -> None:
    assert binary_quantity(kib) == name


def test_cpuinfo_parser_takes_the_first_processor() -> None:
    info = parse_cpuinfo(intel_cpuinfo(2).replace("apicid\t\t: 1\n", "apicid\t\t: 1\nflags\t\t: avx9\n", 1))
    assert info.arch == "x86" and "avx512f" in info.flags and "avx9" not in info.flags
    assert parse_cpuinfo("").arch is None


# -- end to end with the project's spec parser and reference matcher ----------------------------

SPEC = b"""
version: v1alpha1
compatibilities:
- tag: x86-gpu
  rules:
  - name: cpu
    matchFeatures:
    - feature: cpu.cpuid
      matchExpressions:
        AVX512F: {op: Exists}
        AMXTILE: {op: Exists}
    - feature: cpu.model
      matchExpressions:
        vendor_id: {op: In, value: [Intel]}
  - name: gpu-and-vfio
    matchFeatures:
    - feature: kernel.loadedmodule
      matchExpressions:
        vfio_pci: {op: Exists}
    - feature: pci.device
      matchExpressions:
        vendor: {op: In, value: ["10de"]}
        class: {op: In, value: ["0302"]}
    - feature: kernel.version
      matchExpressions:
        major: {op: Gt, value: ["5"]}
    - feature: kernel.config
      matchExpressions:
        VFIO_PCI: {op: In, value: ["y", "m"]}
- tag: arm-sve
  rules:
  - name: sve-on-ubuntu
    matchFeatures:
    - feature: cpu.cpuid
      matchExpressions:
        SVE: {op: Exists}
    - feature: system.osrelease
      matchExpressions:
        ID: {op: In, value: [ubuntu]}
        VERSION_ID.major: {op: Gt, value: ["21"]}
"""


def _verdicts(h: FakeHost) -> list[Status]:
    spec = parse_spec(SPEC)
    nf = _run(h).features
    return [r.status for r in evaluate_node(spec, nf, spec.selected_sets(None))]


def test_spec_against_discovered_hosts(tmp_path: Path) -> None:
    intel = _intel(tmp_path / "intel")
    arm = _arm(tmp_path / "arm", "host-")
    assert _verdicts(intel) == [Status.MATCHED, Status.NOT_MATCHED]
    assert _verdicts(arm) == [Status.NOT_MATCHED, Status.MATCHED]
    intel.write("/proc/modules", "nvidia 56811520 0 - Live 0x0\n")  # vfio_pci unloaded
    assert _verdicts(intel) == [Status.NOT_MATCHED, Status.NOT_MATCHED]


# -- this machine and the package's imports ------------------------------------------------------


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"), reason="x86-64/arm64 Linux"
)
def test_this_machine() -> None:
    result = discover(HostPaths.with_prefix("/"))
    nf = result.features
    assert len(nf.flags["cpu.cpuid"]) >= 5
    assert nf.attributes["kernel.version"]["major"] == os.uname().release.split(".")[0]
    assert nf.attributes["cpu.model"]["vendor_id"] not in ("", "VendorUnknown")
    assert all(isinstance(p, str) and ": " in p for p in result.problems)


def test_the_package_imports_only_the_standard_library() -> None:
    allowed_project = {"extender.features.nodefeature", "extender.errors"}
    package_dir = Path(host_package.__file__).parent
    for source in sorted(package_dir.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ok = (
                    top in sys.stdlib_module_names
                    or name.startswith("extender.sources.host")
                    or name in allowed_project
                )
                assert ok, f"{source.name} imports {name}"
