"""Fake host roots for the host-discovery tests: files shaped like a real host's.

:class:`FakeHost` writes through the same host-path mapping the discovery reads with, so one builder
serves both layouts: ``HostPaths.with_prefix(f"{tmp}/")`` (``tmp/proc``, ``tmp/sys``...) and
``HostPaths.with_prefix(f"{tmp}/host-")`` (``tmp/host-proc``...). sysfs is built as the kernel builds
it: devices live under ``/sys/devices/...`` and ``/sys/bus/*/devices``, ``/sys/block`` and
``/sys/class/net`` hold *relative* symlinks into that tree.

:func:`intel_host` is a two-socket Sapphire Rapids server (Debian 12, GPU, E810 NIC, USB keyboard,
intel_idle/intel_pstate, SST-BF on, TDX host) and :func:`arm64_host` a Graviton3-like VM (Ubuntu
24.04 with os-release only under /usr/lib, no /proc/config.gz, no DMI, no USB bus).
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

from extender.sources.host.paths import HostPaths


class FakeHost:
    def __init__(self, paths: HostPaths) -> None:
        self.paths = paths
        for root in paths.roots().values():
            root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def at(cls, base: Path, prefix: str = "") -> FakeHost:
        """A host under ``base`` with directories named ``<prefix>proc``, ``<prefix>sys``..."""
        return cls(HostPaths.with_prefix(f"{base}/{prefix}"))

    def path(self, host_path: str) -> Path:
        first, _, rest = host_path.lstrip("/").partition("/")
        return self.paths.roots()[first] / rest

    def write(self, host_path: str, content: str | bytes = "") -> Path:
        p = self.path(host_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        return p

    def write_gz(self, host_path: str, text: str) -> None:
        self.write(host_path, gzip.compress(text.encode()))

    def link(self, host_path: str, target: str) -> None:
        p = self.path(host_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p)

    def mkdir(self, host_path: str) -> None:
        self.path(host_path).mkdir(parents=True, exist_ok=True)

    def remove(self, host_path: str) -> None:
        p = self.path(host_path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()

    def attrs(self, host_dir: str, files: dict[str, str]) -> None:
        for name, value in files.items():
            self.write(f"{host_dir}/{name}", value + "\n")

    # -- sysfs pieces --------------------------------------------------------------------------

    def cpus(self, siblings: list[str], packages: list[str]) -> None:
        for n, (sib, pkg) in enumerate(zip(siblings, packages, strict=True)):
            self.attrs(
                f"/sys/devices/system/cpu/cpu{n}/topology",
                {"thread_siblings_list": sib, "physical_package_id": pkg},
            )
            self.link(f"/sys/bus/cpu/devices/cpu{n}", f"../../../devices/system/cpu/cpu{n}")

    def pci(self, domain_bus: str, bdf: str, files: dict[str, str]) -> str:
        dev = f"/sys/devices/pci{domain_bus}/{bdf}"
        self.attrs(dev, files)
        self.link(f"/sys/bus/pci/devices/{bdf}", f"../../../devices/pci{domain_bus}/{bdf}")
        return dev

    def iommu(self, dev: str, group: int, group_type: str, dmar: str | None) -> None:
        self.attrs(f"/sys/kernel/iommu_groups/{group}", {"type": group_type})
        self.link(f"{dev}/iommu_group", f"../../../kernel/iommu_groups/{group}")
        if dmar is not None:
            self.attrs(f"/sys/devices/virtual/iommu/{dmar}/intel-iommu", {"version": "1:0"})
            self.link(f"{dev}/iommu", f"../../virtual/iommu/{dmar}")

    def usb(self, parent: str, name: str, files: dict[str, str], interfaces: dict[str, str]) -> None:
        dev = f"{parent}/{name}"
        self.attrs(dev, files)
        rel = "../../.." + dev.removeprefix("/sys")
        self.link(f"/sys/bus/usb/devices/{name}", rel)
        for intf, cls in interfaces.items():
            self.attrs(f"{dev}/{intf}", {"bInterfaceClass": cls, "bInterfaceNumber": intf[-1:]})
            self.link(f"/sys/bus/usb/devices/{intf}", f"{rel}/{intf}")

    def block(self, dev_dir: str, name: str, queue: dict[str, str]) -> None:
        self.attrs(f"{dev_dir}/{name}/queue", queue)
        self.write(f"{dev_dir}/{name}/size", "2000409264\n")
        self.link(f"/sys/block/{name}", "../" + f"{dev_dir}/{name}".removeprefix("/sys/"))

    def net(self, dev_dir: str, name: str, files: dict[str, str], device: str | None) -> None:
        iface = f"{dev_dir}/net/{name}"
        self.attrs(iface, files)
        self.link(f"/sys/class/net/{name}", "../.." + iface.removeprefix("/sys"))
        if device is not None:
            self.link(f"{iface}/device", device)

    def numa(self, count: int) -> None:
        for n in range(count):
            self.write(f"/sys/devices/system/node/node{n}/cpulist", f"{n}\n")
            self.link(f"/sys/bus/node/devices/node{n}", f"../../../devices/system/node/node{n}")

    def hugepages(self, pools: dict[int, int]) -> None:
        for kib, count in pools.items():
            self.attrs(f"/sys/kernel/mm/hugepages/hugepages-{kib}kB", {"nr_hugepages": str(count)})


SSD_QUEUE = {"dax": "0", "rotational": "0", "nr_zones": "0", "zoned": "none"}
HDD_QUEUE = {"dax": "0", "rotational": "1", "nr_zones": "0", "zoned": "none"}

# -- the two hosts ---------------------------------------------------------------------------------

INTEL_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse "
    "sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl "
    "xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq dtes64 monitor ds_cpl vmx smx "
    "est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer "
    "aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 cat_l2 cdp_l3 intel_ppin "
    "cdp_l2 ssbd mba ibrs ibpb stibp ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad fsgsbase "
    "tsc_adjust bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a avx512f avx512dq rdseed adx smap avx512ifma "
    "clflushopt clwb intel_pt avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc "
    "cqm_occup_llc cqm_mbm_total cqm_mbm_local split_lock_detect user_shstk avx_vnni avx512_bf16 wbnoinvd "
    "dtherm ida arat pln pts hwp hwp_act_window hwp_epp hwp_pkg_req vnmi avx512vbmi umip pku ospke "
    "waitpkg avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg tme avx512_vpopcntdq la57 rdpid "
    "bus_lock_detect cldemote movdiri movdir64b enqcmd fsrm md_clear serialize tsxldtrk pconfig arch_lbr "
    "ibt amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d arch_capabilities"
)


def intel_cpuinfo(cpus: int = 4) -> str:
    blocks = []
    for n in range(cpus):
        blocks.append(
            f"processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
            "model name\t: Intel(R) Xeon(R) Platinum 8480+\nstepping\t: 8\nmicrocode\t: 0x2b0004b1\n"
            f"cpu MHz\t\t: 2000.000\ncache size\t: 107520 KB\nphysical id\t: {n // 2}\nsiblings\t: 2\n"
            f"core id\t\t: 0\ncpu cores\t: 1\napicid\t\t: {n}\nfpu\t\t: yes\nfpu_exception\t: yes\n"
            f"cpuid level\t: 31\nwp\t\t: yes\nflags\t\t: {INTEL_FLAGS}\n"
            "vmx flags\t: vnmi preemption_timer posted_intr invvpid ept_x_only ept_ad ept_1gb\n"
            "bugs\t\t: spectre_v1 spectre_v2 spec_store_bypass swapgs eibrs_pbrsb\nbogomips\t: 4000.00\n"
            "clflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 52 bits physical, 57 bits virtual\n"
            "power management:\n"
        )
    return "\n".join(blocks)


INTEL_RELEASE = "6.1.0-18-amd64"
INTEL_KCONFIG = (
    "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 6.1.76 Kernel Configuration\n#\n"
    'CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14) 12.2.0"\nCONFIG_X86_64=y\nCONFIG_X86=y\n'
    "CONFIG_NO_HZ=y\nCONFIG_PREEMPT_VOLUNTARY=y\n# CONFIG_PREEMPT is not set\nCONFIG_HZ=250\n"
    'CONFIG_VFIO_PCI=m\nCONFIG_LSM="landlock,lockdown,yama,loadpin,safesetid,integrity,apparmor,selinux"\n'
)


def intel_host(host: FakeHost) -> FakeHost:
    h = host
    h.write("/proc/cpuinfo", intel_cpuinfo())
    h.write("/proc/sys/kernel/osrelease", INTEL_RELEASE + "\n")
    h.write("/proc/sys/kernel/hostname", "gpu-spr-01\n")
    h.write_gz("/proc/config.gz", INTEL_KCONFIG)
    h.write(f"/boot/config-{INTEL_RELEASE}", "CONFIG_FROM_BOOT=y\n")
    h.write(
        "/proc/modules",
        "nvidia_uvm 1384448 0 - Live 0x0000000000000000 (POE)\n"
        "nvidia 56811520 1 nvidia_uvm, Live 0x0000000000000000 (POE)\n"
        "vfio_pci 16384 0 - Live 0x0000000000000000\n"
        "vfio_iommu_type1 45056 0 - Live 0x0000000000000000\n"
        "ice 1142784 0 - Live 0x0000000000000000\n",
    )
    h.write(
        f"/lib/modules/{INTEL_RELEASE}/modules.builtin",
        "kernel/fs/ext4/ext4.ko\nkernel/drivers/vfio/pci/vfio-pci-core.ko\n"
        "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko\n\nkernel/arch/x86/crypto/crc32c-intel.ko\n",
    )
    h.write(f"/lib/modules/{INTEL_RELEASE}/modules.builtin.modinfo", b"ext4.license=GPL\x00")
    h.attrs("/sys/fs/selinux", {"enforce": "1"})
    h.write("/sys/devices/virtual/misc/kvm/dev", "10:232\n")
    # cpu
    h.cpus(siblings=["0,2", "1,3", "0,2", "1,3"], packages=["0", "1", "0", "1"])
    h.attrs("/sys/devices/system/cpu/smt", {"control": "on", "active": "1"})
    h.attrs("/sys/devices/system/cpu/cpuidle", {"current_driver": "intel_idle", "current_governor": "menu"})
    h.attrs("/sys/module/intel_idle/parameters", {"max_cstate": "9"})
    h.attrs("/sys/devices/system/cpu/intel_pstate", {"status": "active", "no_turbo": "0"})
    for n in range(4):
        policy = f"/sys/devices/system/cpu/cpufreq/policy{n}"
        h.attrs(policy, {"affected_cpus": str(n), "scaling_governor": "performance"})
        base = "2300000" if n == 2 else "2000000"  # SST-BF: cpu2 runs a higher base frequency
        h.attrs(f"/sys/devices/system/cpu/cpu{n}/cpufreq", {"base_frequency": base})
    h.attrs("/sys/devices/system/cpu/cpu0/acpi_cppc", {"nominal_freq": "2000", "lowest_freq": "800"})
    h.attrs("/sys/fs/resctrl/info/L3", {"num_closids": "16", "cbm_mask": "7fff"})
    h.write("/sys/module/kvm_intel/parameters/tdx", "Y\n")
    h.write("/sys/fs/cgroup/misc.capacity", "tdx 31\n")
    # pci
    h.pci(
        "0000:00",
        "0000:00:00.0",
        {
            "class": "0x060000",
            "vendor": "0x8086",
            "device": "0x09a2",
            "subsystem_vendor": "0x8086",
            "subsystem_device": "0x0000",
        },
    )
    gpu = h.pci(
        "0000:17",
        "0000:17:00.0",
        {
            "class": "0x030200",
            "vendor": "0x10de",
            "device": "0x2330",
            "subsystem_vendor": "0x10de",
            "subsystem_device": "0x16c1",
            "numa_node": "0",
        },
    )
    h.iommu(gpu, 12, "DMA", "dmar1")
    nic = h.pci(
        "0000:4b",
        "0000:4b:00.0",
        {
            "class": "0x020000",
            "vendor": "0x8086",
            "device": "0x1592",
            "subsystem_vendor": "0x8086",
            "subsystem_device": "0x0002",
            "sriov_totalvfs": "128",
            "sriov_numvfs": "8",
        },
    )
    h.iommu(nic, 40, "identity", "dmar3")
    # usb: root hub (class 09) and a keyboard that declares its class per interface
    usb_root = "/sys/devices/pci0000:00/0000:00:14.0"
    h.usb(
        usb_root,
        "usb1",
        {"bDeviceClass": "09", "idVendor": "1d6b", "idProduct": "0002", "serial": "0000:00:14.0"},
        {"1-0:1.0": "09"},
    )
    h.usb(
        f"{usb_root}/usb1",
        "1-1",
        {"bDeviceClass": "00", "idVendor": "413c", "idProduct": "2113", "manufacturer": "Dell"},
        {"1-1:1.0": "03", "1-1:1.1": "03"},
    )
    # system
    h.write(
        "/etc/os-release",
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
        'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL="https://www.debian.org/"\n',
    )
    h.write("/usr/lib/os-release", 'ID=wrong\nVERSION_ID="0.0"\n')
    h.attrs(
        "/sys/devices/virtual/dmi/id",
        {"sys_vendor": "Dell Inc.", "product_name": "PowerEdge R760", "bios_version": "1.6.6"},
    )
    # memory
    h.numa(2)
    h.write(
        "/proc/swaps",
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/nvme0n1p3  partition\t8388604\t0\t-2\n",
    )
    h.hugepages({1048576: 4, 2048: 0})
    # storage
    h.block("/sys/devices/pci0000:64/0000:64:00.0/nvme/nvme0", "nvme0n1", SSD_QUEUE)
    h.block("/sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block", "sda", HDD_QUEUE)
    # network
    h.net(
        nic,
        "ens1f0",
        {"operstate": "up", "speed": "25000", "mtu": "9000", "address": "b4:96:91:00:00:01"},
        device="../../../0000:4b:00.0",
    )
    h.net("/sys/devices/virtual", "lo", {"operstate": "unknown", "mtu": "65536"}, device=None)
    h.net("/sys/devices/virtual", "docker0", {"operstate": "down", "mtu": "1500", "speed": "-1"}, device=None)
    h.write("/sys/class/net/bonding_masters", "\n")
    return h


ARM64_RELEASE = "6.8.0-1009-aws"
ARM64_FEATURES = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop "
    "sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm "
    "svebf16 i8mm bf16 dgh rng"
)


def arm64_cpuinfo(cpus: int = 2) -> str:
    return "\n".join(
        f"processor\t: {n}\nBogoMIPS\t: 2100.00\nFeatures\t: {ARM64_FEATURES}\nCPU implementer\t: 0x41\n"
        "CPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd40\nCPU revision\t: 1\n"
        for n in range(cpus)
    )


def arm64_host(host: FakeHost) -> FakeHost:
    h = host
    h.write("/proc/cpuinfo", arm64_cpuinfo())
    h.write("/proc/sys/kernel/osrelease", ARM64_RELEASE + "\n")
    h.write("/proc/sys/kernel/hostname", "ip-10-0-3-7\n")
    h.write(f"/boot/config-{ARM64_RELEASE}", "CONFIG_ARM64=y\nCONFIG_ARM64_SVE=y\nCONFIG_HZ=250\n")
    h.write("/proc/modules", "ena 151552 0 - Live 0xffff800079c50000\n")
    h.write(f"/lib/modules/{ARM64_RELEASE}/modules.builtin", "kernel/drivers/nvme/host/nvme-core.ko\n")
    h.mkdir("/sys/fs/cgroup")
    h.cpus(siblings=["0", "1"], packages=["0", "0"])
    h.write("/sys/devices/system/cpu/online", "0-1\n")
    h.pci(
        "0000:00",
        "0000:00:05.0",
        {
            "class": "0x020000",
            "vendor": "0x1d0f",
            "device": "0xec20",
            "subsystem_vendor": "0x0000",
            "subsystem_device": "0x0000",
        },
    )
    h.pci(
        "0000:00",
        "0000:00:04.0",
        {
            "class": "0x010802",
            "vendor": "0x1d0f",
            "device": "0x0061",
            "subsystem_vendor": "0x1d0f",
            "subsystem_device": "0x0061",
        },
    )
    h.write(
        "/usr/lib/os-release",
        'PRETTY_NAME="Ubuntu 24.04 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
        'VERSION="24.04 LTS (Noble Numbat)"\nID=ubuntu\nID_LIKE=debian\n',
    )
    h.numa(1)
    h.write("/proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
    h.hugepages({64: 0, 2048: 0, 32768: 0, 1048576: 0})
    h.block("/sys/devices/platform/4000000.pci/pci0000:00/0000:00:04.0/nvme/nvme0", "nvme0n1", SSD_QUEUE)
    h.net(
        "/sys/devices/pci0000:00/0000:00:05.0",
        "ens5",
        {"operstate": "up", "mtu": "9001"},
        device="../../../0000:00:05.0",
    )
    h.net("/sys/devices/virtual", "lo", {"operstate": "unknown", "mtu": "65536"}, device=None)
    return h
