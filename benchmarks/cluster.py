"""A deterministic generator of realistic NodeFeature objects for benchmarking the matcher.

Why a generator and not random noise: the vectorized matcher's cost depends on the *shape* of a real
cluster — few distinct values per attribute (a handful of kernels, OS releases and CPU models shared
by many nodes), a few hundred distinct flag names, and dozens of PCI functions per node drawn from a
small device catalogue. Uniformly random strings would make every value distinct and measure a
cluster that does not exist. So nodes are drawn from a handful of hardware/OS *pool profiles* (a GPU
training pool, a DPDK/SR-IOV pool, general-purpose AMD nodes, an older Intel pool, Ampere arm64 nodes,
KVM virtual machines) and then jittered per node: rolling kernel upgrades, TSX/SGX switched off in
some BIOSes, a GPU node whose NVIDIA driver failed to load, a varying number of NVMe drives, a few
extra CNI/storage modules.

Objects are raw dicts shaped exactly like what the API server returns for
``nfd.k8s-sigs.io/v1alpha1`` ``NodeFeature`` (``apiVersion``, ``kind``, ``metadata`` with the
``nfd.node.kubernetes.io/node-name`` label, ``spec.features.{flags,attributes,instances}`` and the
``spec.labels`` nfd-worker would request), with the values NFD's built-in sources produce
(docs/nfd-semantics.md §1.2, §8): lower-case hex PCI ids without ``0x``, ``uname -r`` kernel strings
(RHEL's ``5.14.0-427.13.1.el9_4.x86_64`` is not semver, which matters for ``type: version``),
``VERSION_ID.major``/``.minor`` split as NFD does. ``kernel.config`` is trimmed to a few options (a
real one can hold thousands, usually dropped with ``core.noPublishFeatures``).

Everything is drawn from ``random.Random`` seeded by the caller, and no Python ``set`` is iterated, so
the same ``(n_nodes, seed)`` gives identical objects in every process, whatever ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from extender.features.nodefeature import (
    API_VERSION,
    DEFAULT_NFD_NAMESPACE,
    NODE_NAME_LABEL,
    RawInstance,
    RawNodeFeature,
)

__all__ = [
    "MODULE_POOL",
    "POOLS",
    "PoolProfile",
    "average_json_size",
    "cluster_shape",
    "generate_cluster",
    "generate_node",
    "iter_cluster",
    "json_size",
    "mutate_node",
]

LABEL_PREFIX = "feature.node.kubernetes.io/"


def _w(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# ---------------------------------------------------------------------------------------------------
# cpu.cpuid flag names (klauspost/cpuid names, as nfd-worker publishes them), grouped by generation.

_X86_COMMON: tuple[str, ...] = _w(
    "ADX AESNI AVX AVX2 BMI1 BMI2 CLMUL CMOV CMPXCHG8 CX16 ERMS F16C FMA3 FXSR FXSROPT HTT IBPB "
    "LAHF LZCNT MMX MOVBE NX OSXSAVE POPCNT RDRAND RDSEED RDTSCP SPEC_CTRL_SSBD SSE SSE2 SSE3 SSE4 "
    "SSE42 SSSE3 STIBP SYSCALL SYSEE X87 XGETBV1 XSAVE XSAVEC XSAVEOPT XSAVES"
)
_INTEL_BROADWELL: tuple[str, ...] = (
    *_X86_COMMON,
    *_w("FLUSH_L1D HLE IA32_ARCH_CAP IBRS MD_CLEAR RTM VMX VTE"),
)
_INTEL_ICELAKE_SP: tuple[str, ...] = (
    *_INTEL_BROADWELL,
    *_w(
        "AVX512BITALG AVX512BW AVX512CD AVX512DQ AVX512F AVX512IFMA AVX512VBMI AVX512VBMI2 "
        "AVX512VL AVX512VNNI AVX512VPOPCNTDQ FSRM GFNI IA32_CORE_CAP IBRS_PREFERRED MOVSB_ZL "
        "PCONFIG PPIN RRSBA_CTRL SGX SGXLC SHA SRBDS_CTRL STOSB_SHORT TME VAES VPCLMULQDQ WBNOINVD"
    ),
)
_INTEL_SAPPHIRE_RAPIDS: tuple[str, ...] = (
    *_INTEL_ICELAKE_SP,
    *_w(
        "AMXBF16 AMXINT8 AMXTILE AVX512BF16 AVX512FP16 AVXVNNI BHI_CTRL CETIBT CETSS CLDEMOTE "
        "CMPSB_SCADBS_SHORT ENQCMD IDPRED_CTRL MCDT_NO MOVDIR64B MOVDIRI PSFD SERIALIZE TSXLDTRK "
        "WAITPKG"
    ),
)
_AMD_MILAN: tuple[str, ...] = (
    *_X86_COMMON,
    *_w(
        "CLZERO CPBOOST CPPC FP256 FSRM HWA IBRS IBS IBSBRNTRGT IBSFETCHSAM IBSFFV IBSOPCNT "
        "IBSOPCNTEXT IBSOPSAM IBSRDWROPCNT IBSRIPINVALIDCHK INT_WBINVD INVLPGB LBRVIRT MCAOVERFLOW "
        "MCOMMIT MMXEXT MSRIRC NRIPS PPIN RDPRU SEV SEV_64BIT SEV_ALTERNATIVE SEV_DEBUGSWAP SEV_ES "
        "SEV_RESTRICTED SEV_SNP SHA SME SME_COHERENT SSE4A STIBP_ALWAYSON SUCCOR SVM SVMDA SVMFBASID "
        "SVML SVMNP SVMPF SVMPFT TOPEXT TSCRATEMSR VAES VMCBCLEAN VMPL VMSA_REGPROT VPCLMULQDQ VTE "
        "WBNOINVD"
    ),
)
_AMD_GENOA: tuple[str, ...] = (
    *_AMD_MILAN,
    *_w(
        "AVX512BF16 AVX512BITALG AVX512BW AVX512CD AVX512DQ AVX512F AVX512IFMA AVX512VBMI "
        "AVX512VBMI2 AVX512VL AVX512VNNI AVX512VPOPCNTDQ GFNI IBPB_BRTYPE IBRS_PROVIDES_SMP "
        "IBS_FETCH_CTLX IBS_OPDATA4 IBS_OPFUSE IBS_PREVENTHOST IBS_ZEN4 SBPB SRSO_NO"
    ),
)
_KVM_GUEST_ICELAKE: tuple[str, ...] = (
    *(f for f in _INTEL_ICELAKE_SP if f not in {"VMX", "SGX", "SGXLC", "PCONFIG", "TME", "PPIN"}),
    "HYPERVISOR",
)
_ARM64_NEOVERSE_N1: tuple[str, ...] = _w(
    "AESARM ARMCPUID ASIMD ASIMDDP ASIMDHP ASIMDRDM ATOMICS CRC32 DCPOP EVTSTRM FP FPHP LRCPC "
    "PMULL SHA1 SHA2 SSBS"
)
_ARM64_NEOVERSE_V1: tuple[str, ...] = (
    *_ARM64_NEOVERSE_N1,
    *_w("FCMA GPA JSCVT SHA3 SHA512 SM3 SM4 SVE"),
)

# ---------------------------------------------------------------------------------------------------
# kernel.loadedmodule names (as /proc/modules shows them; ``vfio-pci`` spelled as NFD's docs do).


_MOD_COMMON = _w(
    """overlay br_netfilter bridge stp llc nf_conntrack nf_nat nf_defrag_ipv4 nf_defrag_ipv6 nf_tables
    nfnetlink nft_chain_nat nft_compat nft_counter xt_conntrack xt_MASQUERADE xt_addrtype xt_comment
    xt_mark xt_nat xt_tcpudp xt_multiport xt_statistic ip_set ip_tables ip6_tables iptable_filter
    iptable_nat iptable_mangle iptable_raw ip6table_filter ip6table_nat ip6table_mangle x_tables veth
    vxlan ip6_udp_tunnel udp_tunnel libcrc32c tls binfmt_misc nls_iso8859_1 joydev input_leds hid
    hid_generic usbhid mac_hid sch_fq_codel msr efi_pstore autofs4 nvme nvme_core nvme_auth xfs btrfs
    blake2b_generic xor raid6_pq raid0 raid1 raid10 raid456 async_raid6_recov async_memcpy async_pq
    async_xor async_tx linear multipath ipmi_devintf ipmi_msghandler ipmi_si ipmi_ssif acpi_ipmi
    dmi_sysfs ast drm_kms_helper drm drm_shmem_helper i2c_algo_bit"""
)
_MOD_X86 = _w(
    """crc32_pclmul crc32c_intel ghash_clmulni_intel aesni_intel crypto_simd cryptd sha256_ssse3
    sha1_ssse3 polyval_clmulni polyval_generic rapl kvm irqbypass wmi ahci libahci acpi_power_meter
    acpi_pad"""
)
_MOD_INTEL = _w(
    """kvm_intel intel_rapl_msr intel_rapl_common intel_uncore intel_uncore_frequency
    intel_uncore_frequency_common intel_powerclamp coretemp isst_if_common isst_if_mbox_pci
    isst_if_mmio i10nm_edac skx_edac_common nfit x86_pkg_temp_thermal intel_cstate mei mei_me
    i2c_i801 i2c_smbus lpc_ich ioatdma dca pmt_telemetry pmt_class intel_vsec intel_pmc_core"""
)
_MOD_INTEL_OLD = tuple(
    "sb_edac" if m == "i10nm_edac" else m
    for m in _MOD_INTEL
    if m not in ("pmt_telemetry", "pmt_class", "intel_vsec", "isst_if_mbox_pci", "isst_if_mmio")
)
_MOD_SPR = _w("idxd idxd_bus qat_4xxx intel_qat intel_ifs intel_sdsi pfr_telemetry pfr_update")
_MOD_AMD = _w(
    """kvm_amd ccp k10temp amd64_edac edac_mce_amd sp5100_tco i2c_piix4 ptdma ae4dma amd_atl
    amd_uncore_frequency"""
)
_MOD_ARM64 = _w(
    """crct10dif_ce sha2_ce sha256_arm64 sha1_ce sha3_ce sha512_ce sha512_arm64 aes_ce_blk
    aes_ce_cipher ghash_ce polyval_ce polyval_generic sm4_ce_gcm sm4_ce_ccm sm4_ce sm4_ce_cipher sm4
    sm3_ce sm3 arm_spe_pmu arm_smmuv3_pmu arm_cmn arm_dsu_pmu sbsa_gwdt xgene_hwmon cppc_cpufreq
    acpi_tad ampere_cspmu arm_cspmu_module uio_pdrv_genirq"""
)
_MOD_RHEL = _w(
    """rfkill sunrpc vfat fat dm_log dm_region_hash dm_mirror sg t10_pi crc64_rocksoft_generic
    crc64_rocksoft crc64 fuse sd_mod intel_rapl"""
)
_MOD_NVIDIA = _w("nvidia nvidia_uvm nvidia_drm nvidia_modeset nvidia_peermem nvidia_fs gdrdrv video ecc")
_MOD_NOUVEAU = _w("nouveau mxm_wmi ttm drm_ttm_helper gpu_sched drm_display_helper drm_gpuvm drm_exec")
_MOD_MLX = _w(
    """mlx5_core mlx5_ib mlxfw psample pci_hyperv_intf ib_core ib_uverbs ib_umad ib_ipoib ib_cm iw_cm
    rdma_cm rdma_ucm"""
)
_MOD_ICE = _w("ice irdma gnss ib_core ib_uverbs")
_MOD_I40E = _w("i40e iavf")
_MOD_IGB = _w("igb")
_MOD_VFIO = _w("vfio-pci vfio_pci_core vfio_iommu_type1 vfio iommufd")
_MOD_VIRTIO = _w(
    "virtio_net net_failover failover virtio_blk virtio_scsi virtio_balloon virtio_rng virtio_console"
)
#: Modules that come and go with workloads (CNI plugins, storage drivers, debugging): per-pool role
#: sets and per-node jitter are drawn from here.
_MOD_OPTIONAL = _w(
    """geneve wireguard curve25519_x86_64 libchacha20poly1305 chacha_x86_64 poly1305_x86_64
    libcurve25519_generic libchacha ip6_tunnel tunnel6 ipip tunnel4 ip_tunnel sit openvswitch nsh
    nf_conncount cls_bpf sch_ingress act_mirred cls_u32 sch_htb bonding 8021q garp mrp macvlan ipvlan
    dummy xfrm_user xfrm_algo xt_bpf xt_u32 xt_owner xt_REDIRECT xt_CT xt_CHECKSUM xt_connmark nft_ct
    nft_fib_inet nft_fib_ipv4 nft_fib_ipv6 nft_fib nft_reject_inet nf_reject_ipv4 nf_reject_ipv6
    nft_reject nft_masq nf_conntrack_netlink nft_limit xt_LOG nf_log_syslog xt_limit xt_recent
    xt_hashlimit xt_physdev xt_NFQUEUE xt_TPROXY nf_tproxy_ipv4 nf_tproxy_ipv6 xt_socket nf_socket_ipv4
    nf_socket_ipv6 xt_length xt_helper xt_state xt_tcpmss xt_dscp xt_DSCP xt_CLASSIFY xt_pkttype
    xt_iprange xt_ipvs ip6t_REJECT ipt_REJECT ip6t_rpfilter ipt_rpfilter ip_set_hash_ipport
    ip_set_hash_ipportip ip_set_hash_ipportnet ip_set_hash_netport ip_set_bitmap_port
    ip_set_hash_netnet ip_set_list_set ip_vs_lc ip_vs_wlc ip_vs_mh ip_vs_dh ip_vs_sed ip_vs_nq
    ip_vs_ftp sctp ip6_gre ip_gre gre fou fou6 vhost_net vhost vhost_iotlb tap nbd rbd libceph ceph
    fscache netfs nfs nfsv4 nfsv3 nfs_acl lockd grace auth_rpcgss rpcsec_gss_krb5 dns_resolver cifs
    iscsi_tcp libiscsi_tcp libiscsi scsi_transport_iscsi target_core_mod target_core_user uio
    dm_thin_pool dm_persistent_data dm_bio_prison dm_bufio dm_snapshot dm_crypt dm_raid dm_zero
    nvme_fabrics nvme_tcp nvme_rdma nvmet nvmet_tcp nvme_keyring ecryptfs squashfs isofs udf crc_itu_t
    cdrom sr_mod usb_storage uas lz4 lz4_compress zram zsmalloc softdog ipmi_poweroff cuse ib_srp
    scsi_transport_srp rpcrdma rdma_rxe siw tcp_diag inet_diag udp_diag raw_diag unix_diag
    af_packet_diag netlink_diag sch_prio sch_netem sch_sfq sch_tbf sch_fq cls_flower cls_matchall
    act_ct nf_flow_table nf_flow_table_inet vrf team team_mode_loadbalance team_mode_activebackup ip_vs
    ip_vs_rr ip_vs_wrr ip_vs_sh ip_set_hash_ip ip_set_hash_net xt_set ramoops reed_solomon pstore_blk
    pstore_zone cdc_ether usbnet mii ses enclosure scsi_transport_sas dm_multipath scsi_dh_rdac
    scsi_dh_emc scsi_dh_alua"""
)

#: Every module name the generator can emit (≈400), in a fixed order.
MODULE_POOL: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            *_MOD_COMMON,
            *_MOD_X86,
            *_MOD_INTEL,
            *_MOD_INTEL_OLD,
            *_MOD_SPR,
            *_MOD_AMD,
            *_MOD_ARM64,
            *_MOD_RHEL,
            *_MOD_NVIDIA,
            *_MOD_NOUVEAU,
            *_MOD_MLX,
            *_MOD_ICE,
            *_MOD_I40E,
            *_MOD_IGB,
            *_MOD_VFIO,
            *_MOD_VIRTIO,
            *_MOD_OPTIONAL,
        )
    )
)

# ---------------------------------------------------------------------------------------------------
# PCI functions: (class, vendor, device, subsystem_vendor, subsystem_device, extra attributes).


@dataclass(frozen=True, slots=True)
class PciDevice:
    cls: str
    vendor: str
    device: str
    subsystem_vendor: str
    subsystem_device: str
    extra: tuple[tuple[str, str], ...] = ()
    #: network.device name prefix when this function is a NIC port (empty = not a NIC)
    netdev: str = ""
    speed: str = ""

    def attributes(self, iommu: tuple[tuple[str, str], ...]) -> dict[str, str]:
        attrs = {
            "class": self.cls,
            "vendor": self.vendor,
            "device": self.device,
            "subsystem_vendor": self.subsystem_vendor,
            "subsystem_device": self.subsystem_device,
        }
        attrs.update(self.extra)
        attrs.update(iommu)
        return attrs


def _pci(
    cls: str,
    vendor: str,
    device: str,
    sub: str = "",
    *extra: tuple[str, str],
    netdev: str = "",
    speed: str = "",
) -> PciDevice:
    sv, _, sd = (sub or f"{vendor}:0000").partition(":")
    return PciDevice(cls, vendor, device, sv, sd, tuple(extra), netdev, speed)


def _times(n: int, dev: PciDevice) -> tuple[PciDevice, ...]:
    return (dev,) * n


_SRIOV_E810 = ("sriov_totalvfs", "128")
_SRIOV_X710 = ("sriov_totalvfs", "64")
_SRIOV_I350 = ("sriov_totalvfs", "7")
_SRIOV_CX6 = ("sriov_totalvfs", "8")
_SRIOV_CX7 = ("sriov_totalvfs", "16")

_ASPEED = (_pci("0604", "1a03", "1150", "1a03:1150"), _pci("0300", "1a03", "2000", "1a03:2000"))
_CHIPSET_ICX = (
    *_times(2, _pci("0600", "8086", "09a2", "8086:0000")),
    *_times(2, _pci("0880", "8086", "09a4", "8086:0000")),
    *_times(2, _pci("0880", "8086", "09a3", "8086:0000")),
    *_times(4, _pci("0604", "8086", "347a", "8086:0000")),
    _pci("0601", "8086", "a1cb", "15d9:1c2d"),
    _pci("0c05", "8086", "a1a3", "15d9:1c2d"),
    _pci("0c03", "8086", "a1af", "15d9:1c2d"),
    _pci("0106", "8086", "a182", "15d9:1c2d"),
    _pci("0780", "8086", "a1ba", "15d9:1c2d"),
    *_ASPEED,
)
_CHIPSET_SPR = (
    *_times(2, _pci("0880", "8086", "3240", "8086:0000")),
    *_times(4, _pci("0604", "8086", "352a", "8086:0000")),
    _pci("0601", "8086", "1b81", "1028:0b1a"),
    _pci("0c05", "8086", "1bc9", "1028:0b1a"),
    _pci("0c03", "8086", "1bcd", "1028:0b1a"),
    _pci("0106", "8086", "1bf2", "1028:0b1a"),
    *_times(2, _pci("0b40", "8086", "4940", "8086:0000")),  # QAT 4xxx
    *_times(2, _pci("0880", "8086", "0b25", "8086:0000")),  # DSA
    *_times(2, _pci("0b40", "8086", "2710", "8086:0000")),  # DLB
    *_ASPEED,
)
_CHIPSET_BROADWELL = (
    _pci("0600", "8086", "6f00", "15d9:0832"),
    *_times(3, _pci("0604", "8086", "6f08", "8086:0000")),
    *_times(2, _pci("0880", "8086", "6f28", "8086:0000")),
    _pci("0601", "8086", "8d44", "15d9:0832"),
    _pci("0c05", "8086", "8d22", "15d9:0832"),
    _pci("0c03", "8086", "8d31", "15d9:0832"),
    _pci("0106", "8086", "8d62", "15d9:0832"),
    *_ASPEED,
)
_CHIPSET_MILAN = (
    *_times(4, _pci("0600", "1022", "1480", "1022:1480")),
    *_times(4, _pci("0600", "1022", "1482", "1022:0000")),
    *_times(4, _pci("0604", "1022", "1483", "1022:0000")),
    *_times(2, _pci("1080", "1022", "1498", "1022:1498")),
    _pci("0c05", "1022", "790b", "15d9:1b26"),
    _pci("0601", "1022", "790e", "15d9:1b26"),
    _pci("0c03", "1022", "148c", "15d9:1b26"),
    _pci("1080", "1022", "1486", "1022:1486"),
    *_ASPEED,
)
_CHIPSET_GENOA = (
    *_times(4, _pci("0600", "1022", "14a4", "1022:0000")),
    *_times(4, _pci("0600", "1022", "149f", "1022:0000")),
    *_times(4, _pci("0604", "1022", "14ab", "1022:0000")),
    *_times(2, _pci("1080", "1022", "14dc", "1022:14dc")),
    _pci("0c05", "1022", "790b", "1028:0c2b"),
    _pci("0601", "1022", "790e", "1028:0c2b"),
    _pci("0c03", "1022", "14c9", "1028:0c2b"),
    *_ASPEED,
)
_CHIPSET_AMPERE = (
    *_times(8, _pci("0604", "1def", "e100", "1def:0000")),
    _pci("0c03", "1912", "0014", "1912:0014"),
    *_ASPEED,
)
_CHIPSET_Q35 = (
    _pci("0600", "8086", "29c0", "1af4:1100"),
    _pci("0601", "8086", "2918", "1af4:1100"),
    _pci("0106", "8086", "2922", "1af4:1100"),
    _pci("0c05", "8086", "2930", "1af4:1100"),
    *_times(8, _pci("0604", "1b36", "000c", "1b36:0000")),
    _pci("0300", "1234", "1111", "1af4:1100"),
    _pci("0780", "1af4", "1043", "1af4:1100"),
    _pci("00ff", "1af4", "1045", "1af4:1100"),
    _pci("00ff", "1af4", "1044", "1af4:1100"),
    _pci("0c03", "1b36", "000d", "1af4:1100"),
)

_NVME_PM9A3 = _pci("0108", "144d", "a80a", "144d:a812")
_NVME_P5510 = _pci("0108", "8086", "0b60", "8086:8008")
_NVME_CD6 = _pci("0108", "1e0f", "0003", "1e0f:0001")
_NVME_7450 = _pci("0108", "1344", "51c3", "1344:2100")
_SATA_SSD_HBA = _pci("0107", "1000", "0097", "15d9:0808")  # LSI SAS3008

_E810 = _pci("0200", "8086", "159b", "8086:0003", _SRIOV_E810, netdev="ens{}f{}np{}", speed="25000")
_X710 = _pci("0200", "8086", "1572", "8086:0007", _SRIOV_X710, netdev="ens{}f{}", speed="10000")
_I350 = _pci("0200", "8086", "1521", "15d9:1521", _SRIOV_I350, netdev="eno{}", speed="1000")
_CX6DX = _pci("0200", "15b3", "101d", "15b3:0016", _SRIOV_CX6, netdev="ens{}f{}np{}", speed="100000")
_CX6LX = _pci("0200", "15b3", "101f", "15b3:0012", _SRIOV_CX6, netdev="ens{}f{}np{}", speed="25000")
_CX6_IB = _pci("0207", "15b3", "101b", "15b3:0007", _SRIOV_CX6, netdev="ibp{}s0", speed="200000")
_CX7_IB = _pci("0207", "15b3", "1021", "15b3:0041", _SRIOV_CX7, netdev="ibp{}s0", speed="400000")
_VIRTIO_NET = _pci("0200", "1af4", "1041", "1af4:1100", netdev="enp{}s0", speed="-1")
_VIRTIO_BLK = _pci("0100", "1af4", "1042", "1af4:1100")
_H100 = _pci("0302", "10de", "2330", "10de:16c1")
_NVSWITCH = _pci("0680", "10de", "22a3", "10de:1796")
_A100 = _pci("0302", "10de", "20b2", "10de:1463")


# ---------------------------------------------------------------------------------------------------
# Pool profiles.


@dataclass(frozen=True, slots=True)
class PoolProfile:
    """One kind of node in the cluster: the hardware and OS that all its nodes share, plus the
    probabilities of the per-node deviations."""

    name: str
    weight: float
    vendor_id: str
    family: str
    model_ids: tuple[tuple[str, float], ...]
    hypervisor: str
    cpuid: tuple[str, ...]
    kernels: tuple[tuple[str, float], ...]
    os_id: str
    os_version: str
    base_modules: tuple[str, ...]
    pci: tuple[PciDevice, ...]
    nvme: tuple[PciDevice, int, int]  # drive model, min count, max count
    numa_nodes: tuple[tuple[str, float], ...]
    sockets: str
    smt: str
    kernel_config: tuple[tuple[str, str], ...]
    #: CPU models of the pool whose flags differ from ``cpuid`` (model id -> flags)
    cpuid_by_model: tuple[tuple[str, tuple[str, ...]], ...] = ()
    selinux: str = "false"
    iommu: tuple[tuple[str, str], ...] = ()
    #: probability that vfio-pci & co. are loaded (DPDK / SR-IOV / passthrough)
    p_vfio: float = 0.0
    #: probability that the GPU driver failed to load (nouveau bound instead)
    p_driver_broken: float = 0.0
    #: probability that TSX (HLE/RTM) / SGX are switched off in the BIOS
    p_tsx_off: float = 0.0
    p_sgx_off: float = 0.0
    role_modules: int = 20  # optional modules every node of the pool runs
    jitter_modules: int = 8  # up to this many extra optional modules per node
    extra_modules: tuple[str, ...] = field(default=())


_UBUNTU_CONFIG = (("NO_HZ", "y"), ("NO_HZ_IDLE", "y"), ("PREEMPT_VOLUNTARY", "y"))
_UBUNTU_24_CONFIG = (("NO_HZ", "y"), ("NO_HZ_FULL", "y"), ("PREEMPT_DYNAMIC", "y"))
_RHEL_CONFIG = (("NO_HZ", "y"), ("NO_HZ_FULL", "y"), ("PREEMPT_VOLUNTARY", "y"))
_IOMMU_PT_INTEL = (("iommu_group/type", "identity"), ("iommu/intel-iommu/version", "1:0"))
_IOMMU_DMA_FQ = (("iommu_group/type", "DMA-FQ"),)

POOLS: tuple[PoolProfile, ...] = (
    PoolProfile(
        name="gpu-h100",
        weight=0.20,
        vendor_id="Intel",
        family="6",
        model_ids=(("143", 1.0),),
        hypervisor="none",
        cpuid=_INTEL_SAPPHIRE_RAPIDS,
        kernels=(("6.8.0-45-generic", 0.6), ("6.5.0-41-generic", 0.3), ("5.15.0-119-generic", 0.1)),
        os_id="ubuntu",
        os_version="22.04",
        base_modules=(*_MOD_COMMON, *_MOD_X86, *_MOD_INTEL, *_MOD_SPR, *_MOD_NVIDIA, *_MOD_MLX),
        pci=(
            *_CHIPSET_SPR,
            *_times(8, _H100),
            *_times(4, _NVSWITCH),
            *_times(4, _CX7_IB),
            *_times(2, _CX6DX),
        ),
        nvme=(_NVME_PM9A3, 2, 8),
        numa_nodes=(("2", 1.0),),
        sockets="2",
        smt="true",
        kernel_config=_UBUNTU_CONFIG,
        iommu=_IOMMU_PT_INTEL,
        p_vfio=0.4,
        p_driver_broken=0.06,
        p_tsx_off=0.3,
        role_modules=4,
    ),
    PoolProfile(
        name="gpu-a100-rhel",
        weight=0.10,
        vendor_id="AMD",
        family="25",
        model_ids=(("1", 1.0),),
        hypervisor="none",
        cpuid=_AMD_MILAN,
        kernels=(("5.14.0-427.13.1.el9_4.x86_64", 0.7), ("5.14.0-362.24.1.el9_3.x86_64", 0.3)),
        os_id="rhel",
        os_version="9.4",
        base_modules=(*_MOD_COMMON, *_MOD_X86, *_MOD_AMD, *_MOD_RHEL, *_MOD_NVIDIA, *_MOD_MLX),
        pci=(*_CHIPSET_MILAN, *_times(8, _A100), *_times(4, _CX6_IB), *_times(2, _I350)),
        nvme=(_NVME_CD6, 2, 6),
        numa_nodes=(("2", 0.7), ("8", 0.3)),
        sockets="2",
        smt="true",
        kernel_config=_RHEL_CONFIG,
        selinux="true",
        iommu=_IOMMU_DMA_FQ,
        p_driver_broken=0.05,
        role_modules=3,
    ),
    PoolProfile(
        name="dpdk-e810",
        weight=0.25,
        vendor_id="Intel",
        family="6",
        model_ids=(("106", 0.9), ("108", 0.1)),
        hypervisor="none",
        cpuid=_INTEL_ICELAKE_SP,
        kernels=(("5.15.0-91-generic", 0.5), ("5.15.0-105-generic", 0.4), ("6.5.0-41-generic", 0.1)),
        os_id="ubuntu",
        os_version="22.04",
        base_modules=(*_MOD_COMMON, *_MOD_X86, *_MOD_INTEL, *_MOD_ICE, *_MOD_IGB),
        pci=(*_CHIPSET_ICX, *_times(4, _E810), *_times(2, _I350)),
        nvme=(_NVME_P5510, 2, 4),
        numa_nodes=(("2", 0.9), ("1", 0.1)),
        sockets="2",
        smt="true",
        kernel_config=_UBUNTU_CONFIG,
        iommu=_IOMMU_PT_INTEL,
        p_vfio=1.0,
        p_tsx_off=0.5,
        p_sgx_off=0.2,
        role_modules=12,
    ),
    PoolProfile(
        name="general-genoa",
        weight=0.20,
        vendor_id="AMD",
        family="25",
        model_ids=(("17", 0.8), ("160", 0.2)),
        hypervisor="none",
        cpuid=_AMD_GENOA,
        kernels=(("6.8.0-45-generic", 0.5), ("6.8.0-49-generic", 0.5)),
        os_id="ubuntu",
        os_version="24.04",
        base_modules=(*_MOD_COMMON, *_MOD_X86, *_MOD_AMD, *_MOD_MLX[:5]),
        pci=(*_CHIPSET_GENOA, *_times(2, _CX6LX)),
        nvme=(_NVME_7450, 2, 10),
        numa_nodes=(("1", 0.7), ("2", 0.2), ("4", 0.1)),
        sockets="1",
        smt="true",
        kernel_config=_UBUNTU_24_CONFIG,
        role_modules=30,
    ),
    PoolProfile(
        name="legacy-broadwell",
        weight=0.10,
        vendor_id="Intel",
        family="6",
        model_ids=(("79", 1.0),),
        hypervisor="none",
        cpuid=_INTEL_BROADWELL,
        kernels=(("5.4.0-169-generic", 0.6), ("5.4.0-182-generic", 0.4)),
        os_id="ubuntu",
        os_version="20.04",
        base_modules=(*_MOD_COMMON, *_MOD_X86, *_MOD_INTEL_OLD, *_MOD_I40E[:1], *_MOD_IGB),
        pci=(*_CHIPSET_BROADWELL, *_times(2, _X710), *_times(2, _I350), _SATA_SSD_HBA),
        nvme=(_NVME_P5510, 0, 2),
        numa_nodes=(("2", 1.0),),
        sockets="2",
        smt="true",
        kernel_config=_UBUNTU_CONFIG,
        p_vfio=0.5,
        p_tsx_off=0.8,
        role_modules=20,
    ),
    PoolProfile(
        name="arm-ampere",
        weight=0.10,
        vendor_id="ARM",
        family="8",
        model_ids=(("3340", 0.7), ("3392", 0.3)),
        hypervisor="none",
        cpuid=_ARM64_NEOVERSE_N1,
        cpuid_by_model=(("3392", _ARM64_NEOVERSE_V1),),
        kernels=(("6.8.0-45-generic", 0.7), ("6.5.0-1022-aws", 0.3)),
        os_id="ubuntu",
        os_version="22.04",
        base_modules=(*_MOD_COMMON, *_MOD_ARM64, *_MOD_MLX[:5]),
        pci=(*_CHIPSET_AMPERE, *_times(2, _CX6LX)),
        nvme=(_NVME_7450, 1, 4),
        numa_nodes=(("1", 1.0),),
        sockets="1",
        smt="false",
        kernel_config=_UBUNTU_CONFIG,
        role_modules=30,
        jitter_modules=10,
    ),
    PoolProfile(
        name="vm-kvm",
        weight=0.05,
        vendor_id="Intel",
        family="6",
        model_ids=(("106", 1.0),),
        hypervisor="KVM",
        cpuid=_KVM_GUEST_ICELAKE,
        kernels=(("5.15.0-1053-kvm", 0.5), ("6.8.0-1015-kvm", 0.5)),
        os_id="ubuntu",
        os_version="22.04",
        base_modules=(*_MOD_COMMON, *_MOD_X86[:12], *_MOD_VIRTIO),
        pci=(*_CHIPSET_Q35, *_times(2, _VIRTIO_NET), *_times(2, _VIRTIO_BLK)),
        nvme=(_NVME_PM9A3, 0, 0),
        numa_nodes=(("1", 1.0),),
        sockets="1",
        smt="false",
        kernel_config=_UBUNTU_CONFIG,
        role_modules=40,
        jitter_modules=10,
    ),
)

# ---------------------------------------------------------------------------------------------------
# Generation.


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _kernel_attrs(full: str) -> dict[str, str]:
    """kernel.version as NFD derives it from ``uname -r`` (major/minor/revision from the leading
    ``x.y.z``)."""
    head = full.split("-", 1)[0]
    parts = head.split(".")
    return {
        "full": full,
        "major": parts[0],
        "minor": parts[1] if len(parts) > 1 else "",
        "revision": parts[2] if len(parts) > 2 else "",
    }


def _os_attrs(os_id: str, version: str) -> dict[str, str]:
    major, _, minor = version.partition(".")
    attrs = {"ID": os_id, "VERSION_ID": version, "VERSION_ID.major": major}
    if minor:
        attrs["VERSION_ID.minor"] = minor
    return attrs


_label_keys: dict[str, str] = {}


def _label(suffix: str) -> str:
    """Label keys are shared across nodes (a real decoder would intern them too)."""
    key = _label_keys.get(suffix)
    if key is None:
        key = _label_keys[suffix] = LABEL_PREFIX + suffix
    return key


# Per pool, its fixed "role" modules (drawn once from the optional pool, seeded by the pool name so
# that every cluster of every size agrees on what a pool runs).
def _role_modules(pool: PoolProfile) -> tuple[str, ...]:
    rng = random.Random(f"role:{pool.name}")
    return tuple(rng.sample(_MOD_OPTIONAL, pool.role_modules))


_ROLE_MODULES: dict[str, tuple[str, ...]] = {p.name: _role_modules(p) for p in POOLS}


def _modules(rng: random.Random, pool: PoolProfile, gpu_broken: bool, vfio: bool) -> list[str]:
    mods = list(dict.fromkeys((*pool.base_modules, *_ROLE_MODULES[pool.name])))
    if gpu_broken:
        mods = [m for m in mods if m not in _MOD_NVIDIA] + list(_MOD_NOUVEAU)
    if vfio:
        mods.extend(_MOD_VFIO)
    # drop a couple of the role modules (unloaded after idle), add some extra optional ones
    for _ in range(rng.randrange(3)):
        role = _ROLE_MODULES[pool.name]
        if role:
            victim = role[rng.randrange(len(role))]
            if victim in mods:
                mods.remove(victim)
    extra = rng.sample(_MOD_OPTIONAL, rng.randrange(pool.jitter_modules + 1))
    return list(dict.fromkeys((*mods, *extra)))


def _cpuid(rng: random.Random, pool: PoolProfile, model: str) -> list[str]:
    flags = list(dict(pool.cpuid_by_model).get(model, pool.cpuid))
    drop: set[str] = set()
    if "RTM" in flags and rng.random() < pool.p_tsx_off:
        drop.update(("HLE", "RTM", "TSXLDTRK"))
        flags.append("RTM_ALWAYS_ABORT")
    if "SGX" in flags and rng.random() < pool.p_sgx_off:
        drop.update(("SGX", "SGXLC"))
    if "SEV_SNP" in flags and rng.random() < 0.2:
        drop.update(("SEV_SNP", "VMPL", "VMSA_REGPROT"))
    return [f for f in flags if f not in drop]


def _pci_and_net(
    rng: random.Random, pool: PoolProfile
) -> tuple[list[RawInstance], list[RawInstance], list[RawInstance]]:
    """pci.device, network.device and storage.block instances."""
    drive, lo, hi = pool.nvme
    devices = [*pool.pci, *(drive,) * rng.randint(lo, hi)]
    pci: list[RawInstance] = []
    net: list[RawInstance] = []
    slot = 1
    ports: dict[str, int] = {}
    for dev in devices:
        pci.append({"attributes": dev.attributes(pool.iommu)})
        if dev.netdev:
            port = ports.get(dev.netdev, 0)
            ports[dev.netdev] = port + 1
            name = dev.netdev.format(slot + port // 2, port % 2, port % 2)
            up = rng.random() < 0.9
            attrs = {
                "name": name,
                "operstate": "up" if up else "down",
                "speed": dev.speed if up else "-1",
                "mtu": "9000" if dev.cls == "0207" or pool.p_vfio else "1500",
            }
            for k, v in dev.extra:
                if k == "sriov_totalvfs":
                    attrs["sriov_totalvfs"] = v
                    attrs["sriov_numvfs"] = v if pool.p_vfio and port == 0 else "0"
            net.append({"attributes": attrs})
    blocks: list[RawInstance] = []
    n_nvme = len(devices) - len(pool.pci)
    for i in range(n_nvme):
        blocks.append(
            {
                "attributes": {
                    "name": f"nvme{i}n1",
                    "dax": "0",
                    "rotational": "0",
                    "nr_zones": "0",
                    "zoned": "none",
                }
            }
        )
    if pool.name == "vm-kvm":
        for i in range(2):
            blocks.append(
                {
                    "attributes": {
                        "name": f"vd{'ab'[i]}",
                        "dax": "0",
                        "rotational": "1",
                        "nr_zones": "0",
                        "zoned": "none",
                    }
                }
            )
    if any(d is _SATA_SSD_HBA for d in devices):
        for i in range(2):
            blocks.append(
                {
                    "attributes": {
                        "name": f"sd{'ab'[i]}",
                        "dax": "0",
                        "rotational": "1",
                        "nr_zones": "0",
                        "zoned": "none",
                    }
                }
            )
    return pci, net, blocks


def _labels(
    cpuid: Sequence[str], attrs: dict[str, dict[str, str]], pci: Sequence[RawInstance]
) -> dict[str, str]:
    """The labels nfd-worker asks nfd-master for (its default label set, roughly)."""
    labels: dict[str, str] = {}
    for flag in cpuid:
        labels[_label(f"cpu-cpuid.{flag}")] = "true"
    for key in ("vendor_id", "family", "id"):
        labels[_label(f"cpu-model.{key}")] = attrs["cpu.model"][key]
    labels[_label("cpu-hardware_multithreading")] = attrs["cpu.topology"]["hardware_multithreading"]
    for key, value in attrs["kernel.version"].items():
        if value:
            labels[_label(f"kernel-version.{key}")] = value
    for key, value in attrs["kernel.config"].items():
        labels[_label(f"kernel-config.{key}")] = "true" if value == "y" else value
    for key, value in attrs["system.osrelease"].items():
        labels[_label(f"system-os_release.{key}")] = value
    labels[_label("memory-numa")] = attrs["memory.numa"]["is_numa"]
    for inst in pci:
        a = inst["attributes"]
        if a["class"] in ("0200", "0207", "0300", "0302", "0b40", "0380"):
            labels[_label(f"pci-{a['class']}_{a['vendor']}.present")] = "true"
            if "sriov_totalvfs" in a:
                labels[_label(f"pci-{a['class']}_{a['vendor']}.sriov.capable")] = "true"
    if any(i["attributes"]["class"] == "0108" for i in pci):
        labels[_label("storage-nonrotationaldisk")] = "true"
    return labels


def generate_node(index: int, pool: PoolProfile, rng: random.Random) -> RawNodeFeature:
    """One NodeFeature object for node number ``index`` of ``pool``."""
    node = f"{pool.name}-{index:05d}"
    gpu_broken = rng.random() < pool.p_driver_broken
    vfio = rng.random() < pool.p_vfio
    model = _pick(rng, pool.model_ids)
    cpuid = _cpuid(rng, pool, model)
    modules = _modules(rng, pool, gpu_broken, vfio)
    numa = _pick(rng, pool.numa_nodes)
    attrs: dict[str, dict[str, str]] = {
        "cpu.model": {
            "vendor_id": pool.vendor_id,
            "family": pool.family,
            "id": model,
            "hypervisor": pool.hypervisor,
        },
        "cpu.topology": {"hardware_multithreading": pool.smt, "socket_count": pool.sockets},
        "kernel.version": _kernel_attrs(_pick(rng, pool.kernels)),
        "kernel.config": dict(pool.kernel_config),
        "kernel.selinux": {"enabled": pool.selinux},
        "system.osrelease": _os_attrs(pool.os_id, pool.os_version),
        "memory.numa": {"is_numa": "true" if numa != "1" else "false", "node_count": numa},
        "system.name": {"nodename": node},
    }
    pci, net, blocks = _pci_and_net(rng, pool)
    uid = uuid.UUID(int=rng.getrandbits(128), version=4)
    obj: RawNodeFeature = {
        "apiVersion": API_VERSION,
        "kind": "NodeFeature",
        "metadata": {
            "name": node,
            "namespace": DEFAULT_NFD_NAMESPACE,
            "labels": {NODE_NAME_LABEL: node},
            "resourceVersion": str(rng.randrange(10**6, 10**8)),
            "uid": str(uid),
        },
        "spec": {
            "features": {
                "flags": {
                    "cpu.cpuid": {"elements": {f: {} for f in cpuid}},
                    "kernel.loadedmodule": {"elements": {m: {} for m in modules}},
                },
                "attributes": {name: {"elements": values} for name, values in attrs.items()},
                "instances": {
                    "pci.device": {"elements": pci},
                    "network.device": {"elements": net},
                    "storage.block": {"elements": blocks},
                },
            },
            "labels": _labels(cpuid, attrs, pci),
        },
    }
    return obj


def iter_cluster(n_nodes: int, seed: int = 0) -> Iterator[RawNodeFeature]:
    """The objects of :func:`generate_cluster`, one at a time: a consumer that streams them (the memory
    benchmark, as a watch would deliver them) never holds the whole raw cluster."""
    if n_nodes < 0:
        raise ValueError("n_nodes must be >= 0")
    rng = random.Random(seed)
    counters = dict.fromkeys((p.name for p in POOLS), 0)
    weights = [p.weight for p in POOLS]
    for _ in range(n_nodes):
        pool = rng.choices(POOLS, weights=weights)[0]
        index = counters[pool.name]
        counters[pool.name] = index + 1
        yield generate_node(index, pool, random.Random(rng.getrandbits(64)))


def generate_cluster(n_nodes: int, seed: int = 0) -> list[RawNodeFeature]:
    """``n_nodes`` NodeFeature objects (one per node), identical for identical arguments."""
    return list(iter_cluster(n_nodes, seed))


def cluster_shape(objs: Sequence[RawNodeFeature]) -> dict[str, float]:
    """What a node looks like on average (cpuid flags, loaded modules, PCI functions, attribute
    elements, compact JSON bytes) and how many pools and distinct values the cluster has: printed with
    every result so a reader can judge the cluster's realism without reading this module."""
    if not objs:
        return {}
    flags = modules = pci = attrs = 0
    kernels: set[str] = set()
    pools: set[str] = set()
    for obj in objs:
        feats = obj["spec"]["features"]
        flags += len(feats["flags"]["cpu.cpuid"]["elements"])
        modules += len(feats["flags"]["kernel.loadedmodule"]["elements"])
        pci += len(feats["instances"]["pci.device"]["elements"])
        attrs += sum(len(a["elements"]) for a in feats["attributes"].values())
        kernels.add(feats["attributes"]["kernel.version"]["elements"]["full"])
        pools.add(obj["metadata"]["name"].rsplit("-", 1)[0])
    n = len(objs)
    avg, _, _ = average_json_size(objs)
    return {
        "nodes": n,
        "pools": len(pools),
        "cpuid_flags_avg": flags / n,
        "loaded_modules_avg": modules / n,
        "pci_devices_avg": pci / n,
        "attribute_elements_avg": attrs / n,
        "distinct_kernels": len(kernels),
        "json_bytes_avg": avg,
    }


def mutate_node(obj: RawNodeFeature, seed: int = 0) -> RawNodeFeature:
    """The same node after a typical single change seen by nfd-worker: a kernel upgrade (new
    ``kernel.version``) and a driver being (un)loaded (``vfio-pci`` toggled, ``nvidia_peermem``
    toggled). Returns a deep copy; ``obj`` is left alone."""
    rng = random.Random(seed)
    new: RawNodeFeature = copy.deepcopy(obj)
    features = new["spec"]["features"]
    modules = features["flags"]["kernel.loadedmodule"]["elements"]
    for name in ("vfio-pci", "nvidia_peermem"):
        if name in modules:
            del modules[name]
        else:
            modules[name] = {}
    kv = features["attributes"]["kernel.version"]["elements"]
    upgrade = f"6.8.0-{rng.randrange(50, 60)}-generic"
    kv.update(_kernel_attrs(upgrade))
    meta = new["metadata"]
    meta["resourceVersion"] = str(int(meta.get("resourceVersion", "0")) + 1)
    return new


def json_size(obj: Any) -> int:
    """Bytes of the object serialised as compact JSON (what the API server sends, roughly)."""
    return len(orjson.dumps(obj))


def average_json_size(objs: Sequence[Any], sample: int = 500) -> tuple[float, int, int]:
    """(mean, min, max) JSON size over an evenly spaced sample of at most ``sample`` objects."""
    if not objs:
        return 0.0, 0, 0
    step = max(1, len(objs) // sample)
    sizes = [json_size(o) for o in objs[::step]]
    return sum(sizes) / len(sizes), min(sizes), max(sizes)
