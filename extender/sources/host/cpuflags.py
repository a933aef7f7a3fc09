"""Linux ``/proc/cpuinfo`` flag names -> the names NFD puts in ``cpu.cpuid``.

On x86-64 nfd-worker runs the CPUID instruction through ``github.com/klauspost/cpuid/v2`` and
publishes its ``FeatureSet()`` names (``AVX2``, ``SSE42``, ``FMA3``...) plus ``X86_64_V1`` ..
``X86_64_V4``. We read the kernel's view instead, so :data:`X86` maps each Linux flag (the names in
the kernel's ``arch/x86/include/asm/cpufeatures.h``) to the klauspost feature(s) decided by the *same
CPUID bit*. Only flags with such a one-to-one bit are listed; every other Linux flag (``pcid``,
``smep``, ``constant_tsc``...) is left out rather than guessed — klauspost has no name for most of
them, so NFD does not report them either. Read from klauspost/cpuid ``detect_x86.go``/``cpuid.go``
at 8f34153 (2025-11; NFD pins v2.4.0).

klauspost features we cannot see in ``/proc/cpuinfo`` and therefore never report (an image spec that
requires one of them fails on our discovery where nfd-worker's would pass): ``AVX10``,
``AVX10_128/256/512`` and the ``AVX10_VERSION`` attribute (leaf 0x24), ``APX_F``, ``AVXVNNIINT8``,
``AVXVNNIINT16``, ``AVXNECONVERT``, ``AMXTF32``, ``AMXCOMPLEX``, ``AMXTRANSPOSE``, ``AMXFP8``,
``PREFETCHI``, ``HRESET``, ``MSRLIST``, ``KEYLOCKER(W)``, ``CETSS``, ``SGXPQC``, ``IA32_CORE_CAP``,
``IBRS*``, ``SPEC_CTRL_SSBD``, ``BHI_CTRL``, ``RRSBA_CTRL``, ``IDPRED_CTRL``, ``MCDT_NO``, ``HWA``,
``FP128``/``FP256``/``MOVU``, the ``IBS*`` details, most ``SEV_*`` details, ``SRSO_*`` beyond
``SRSO_NO``, ``AVX512BMM`` and the ``PMU_*`` counters.

Kernel view vs CPUID: the kernel hides features it disabled (``noxsave``, ``clearcpuid=``,
``nosgx``...) and clears dependants (no ``xsave`` -> no ``avx``/``fma``...), which klauspost would
still report from raw CPUID; ``sme``/``sev`` only appear when firmware enabled them.

Derived (klauspost computes them, and so do we, from the same inputs):

* ``OSXSAVE`` when ``xsave`` is listed (Linux keeps ``xsave`` only after setting CR4.OSXSAVE);
* ``FXSROPT`` with ``sse``: klauspost reads FXSROPT from CPUID.1:EDX bit 25, which is the SSE bit;
* ``AVXSLOW`` from vendor/family/model (Intel family 6 before model 60, AMD before Zen 2);
* ``TSA_L1_NO``/``TSA_SQ_NO`` for AMD family < 0x19 and the listed family 0x1a models;
* ``HTT`` (klauspost: CPUID says >1 thread per core) from ``/sys/devices/system/cpu/smt/control``;
* ``X86_64_V1``..``V4`` (NFD's ``microarchLevelFlags`` over klauspost's ``X64Level``).

On arm64 NFD does not use klauspost's names at all: it walks the ELF ``AT_HWCAP``/``AT_HWCAP2`` bits
with its own table, whose names are the kernel's hwcap names in upper case (``asimd`` -> ``ASIMD``,
``smei16i64`` -> ``SMEI16I64``). Linux prints exactly those names in ``Features``, so
:data:`ARM64` is NFD's table; newer hwcaps NFD has no name for (``sve2p1``, ``sme2``...) are dropped,
as NFD drops them.
"""

from __future__ import annotations

from collections.abc import Iterable

# fmt: off
X86: dict[str, tuple[str, ...]] = {
    # CPUID.1:EDX
    "fpu": ("X87",), "cx8": ("CMPXCHG8",), "sep": ("SYSEE",), "cmov": ("CMOV",), "mmx": ("MMX",),
    "fxsr": ("FXSR",), "sse": ("SSE", "FXSROPT"), "sse2": ("SSE2",),
    # CPUID.1:ECX
    "pni": ("SSE3",), "pclmulqdq": ("CLMUL",), "vmx": ("VMX",), "ssse3": ("SSSE3",), "fma": ("FMA3",),
    "cx16": ("CX16",), "sse4_1": ("SSE4",), "sse4_2": ("SSE42",), "movbe": ("MOVBE",),
    "popcnt": ("POPCNT",), "aes": ("AESNI",), "xsave": ("XSAVE", "OSXSAVE"), "avx": ("AVX",),
    "f16c": ("F16C",), "rdrand": ("RDRAND",), "hypervisor": ("HYPERVISOR",),
    # CPUID.(7,0):EBX
    "bmi1": ("BMI1",), "avx2": ("AVX2",), "bmi2": ("BMI2",), "sgx": ("SGX",), "hle": ("HLE",),
    "erms": ("ERMS",), "rtm": ("RTM",), "mpx": ("MPX",), "rdseed": ("RDSEED",), "adx": ("ADX",),
    "sha_ni": ("SHA",), "avx512f": ("AVX512F",), "avx512dq": ("AVX512DQ",),
    "avx512ifma": ("AVX512IFMA",), "avx512pf": ("AVX512PF",), "avx512er": ("AVX512ER",),
    "avx512cd": ("AVX512CD",), "avx512bw": ("AVX512BW",), "avx512vl": ("AVX512VL",),
    # CPUID.(7,0):ECX
    "avx512vbmi": ("AVX512VBMI",), "waitpkg": ("WAITPKG",), "avx512_vbmi2": ("AVX512VBMI2",),
    "gfni": ("GFNI",), "vaes": ("VAES",), "vpclmulqdq": ("VPCLMULQDQ",),
    "avx512_vnni": ("AVX512VNNI",), "avx512_bitalg": ("AVX512BITALG",), "tme": ("TME",),
    "avx512_vpopcntdq": ("AVX512VPOPCNTDQ",), "cldemote": ("CLDEMOTE",), "movdiri": ("MOVDIRI",),
    "movdir64b": ("MOVDIR64B",), "enqcmd": ("ENQCMD",), "sgx_lc": ("SGXLC",),
    # CPUID.(7,0):EDX
    "fsrm": ("FSRM",), "avx512_vp2intersect": ("AVX512VP2INTERSECT",), "srbds_ctrl": ("SRBDS_CTRL",),
    "md_clear": ("MD_CLEAR",), "rtm_always_abort": ("RTM_ALWAYS_ABORT",), "serialize": ("SERIALIZE",),
    "hybrid_cpu": ("HYBRID_CPU",), "tsxldtrk": ("TSXLDTRK",), "pconfig": ("PCONFIG",),
    "ibt": ("CETIBT",), "amx_bf16": ("AMXBF16",), "avx512_fp16": ("AVX512FP16",),
    "amx_tile": ("AMXTILE",), "amx_int8": ("AMXINT8",), "flush_l1d": ("FLUSH_L1D",),
    "arch_capabilities": ("IA32_ARCH_CAP",),
    # Intel CPUID.(7,0):EDX bits 26/27 or their AMD 0x80000008:EBX twins; Linux merges them likewise
    "ibpb": ("IBPB",), "stibp": ("STIBP",),
    # CPUID.(7,1):EAX
    "sm3": ("SM3_X86",), "sm4": ("SM4_X86",), "avx_vnni": ("AVXVNNI",), "avx512_bf16": ("AVX512BF16",),
    "cmpccxadd": ("CMPCCXADD",), "fzrm": ("MOVSB_ZL",), "fsrs": ("STOSB_SHORT",),
    "fsrc": ("CMPSB_SCADBS_SHORT",), "wrmsrns": ("WRMSRNS",), "amx_fp16": ("AMXFP16",),
    "avx_ifma": ("AVXIFMA",), "lam": ("LAM",),
    # CPUID.(0xd,1):EAX
    "xsaveopt": ("XSAVEOPT",), "xsavec": ("XSAVEC",), "xgetbv1": ("XGETBV1",), "xsaves": ("XSAVES",),
    # CPUID.0x80000001:ECX (abm is LZCNT; klauspost sets POPCNT with it)
    "lahf_lm": ("LAHF",), "svm": ("SVM",), "abm": ("LZCNT", "POPCNT"), "sse4a": ("SSE4A",),
    "ibs": ("IBS",), "xop": ("XOP",), "fma4": ("FMA4",), "topoext": ("TOPEXT",),
    # CPUID.0x80000001:EDX
    "syscall": ("SYSCALL",), "nx": ("NX",), "mmxext": ("MMXEXT",), "fxsr_opt": ("FXSROPT",),
    "rdtscp": ("RDTSCP",), "3dnowext": ("AMD3DNOWEXT",), "3dnow": ("AMD3DNOW",),
    # CPUID.0x80000007
    "overflow_recov": ("MCAOVERFLOW",), "succor": ("SUCCOR",), "cpb": ("CPBOOST",),
    # CPUID.0x80000008:EBX
    "clzero": ("CLZERO",), "irperf": ("MSRIRC",), "invlpgb": ("INVLPGB",), "rdpru": ("RDPRU",),
    "wbnoinvd": ("WBNOINVD",), "amd_ppin": ("PPIN",), "cppc": ("CPPC",), "amd_psfd": ("PSFD",),
    # CPUID.0x8000000A:EDX (SVM details)
    "npt": ("SVMNP",), "lbrv": ("LBRVIRT",), "svm_lock": ("SVML",), "nrip_save": ("NRIPS",),
    "tsc_scale": ("TSCRATEMSR",), "vmcb_clean": ("VMCBCLEAN",), "flushbyasid": ("SVMFBASID",),
    "decodeassists": ("SVMDA",), "pausefilter": ("SVMPF",), "pfthreshold": ("SVMPFT",),
    # CPUID.0x8000001F:EAX (AMD memory encryption)
    "sme": ("SME",), "sev": ("SEV",), "sev_es": ("SEV_ES",), "sev_snp": ("SEV_SNP",),
    "sme_coherent": ("SME_COHERENT",), "debug_swap": ("SEV_DEBUGSWAP",),
    # CPUID.0x80000021:EAX
    "sbpb": ("SBPB",), "ibpb_brtype": ("IBPB_BRTYPE",), "srso_no": ("SRSO_NO",),
    # Intel TDX guest (leaf 0x21 identity)
    "tdx_guest": ("TDX_GUEST",),
}

ARM64: tuple[str, ...] = (
    # AT_HWCAP
    "FP", "ASIMD", "EVTSTRM", "AES", "PMULL", "SHA1", "SHA2", "CRC32", "ATOMICS", "FPHP", "ASIMDHP",
    "CPUID", "ASIMDRDM", "JSCVT", "FCMA", "LRCPC", "DCPOP", "SHA3", "SM3", "SM4", "ASIMDDP", "SHA512",
    "SVE", "ASIMDFHM", "DIT", "USCAT", "ILRCPC", "FLAGM", "SSBS", "SB", "PACA", "PACG",
    # AT_HWCAP2
    "DCPODP", "SVE2", "SVEAES", "SVEPMULL", "SVEBITPERM", "SVESHA3", "SVESM4", "FLAGM2", "FRINT",
    "SVEI8MM", "SVEF32MM", "SVEF64MM", "SVEBF16", "I8MM", "BF16", "DGH", "RNG", "BTI", "MTE", "ECV",
    "AFP", "RPRES", "MTE3", "SME", "SMEI16I64", "SMEF64F64", "SMEI8I32", "SMEF16F32", "SMEB16F32",
    "SMEF32F32", "SMEFA64", "WFXT", "EBF16", "SVEEBF16",
)
# fmt: on

_ARM64_BY_LINUX = {name.lower(): name for name in ARM64}

# klauspost's microarchitecture levels (cpuid.go: level1Features..level4Features, oneOfLevel).
_LEVEL_ONE_OF = frozenset({"SYSEE", "SYSCALL"})
_LEVEL1 = frozenset({"CMOV", "CMPXCHG8", "X87", "FXSR", "MMX", "SSE", "SSE2"})
_LEVEL2 = _LEVEL1 | {"CX16", "LAHF", "POPCNT", "SSE3", "SSE4", "SSE42", "SSSE3"}
_LEVEL3 = _LEVEL2 | {"AVX", "AVX2", "BMI1", "BMI2", "F16C", "FMA3", "LZCNT", "MOVBE", "OSXSAVE"}
_LEVEL4 = _LEVEL3 | {"AVX512F", "AVX512BW", "AVX512CD", "AVX512DQ", "AVX512VL"}


def x64_level(features: frozenset[str] | set[str]) -> int:
    """klauspost's ``X64Level``: 0..4."""
    if not features & _LEVEL_ONE_OF:
        return 0
    for level, needed in ((4, _LEVEL4), (3, _LEVEL3), (2, _LEVEL2), (1, _LEVEL1)):
        if needed <= features:
            return level
    return 0


def x86_features(
    linux_flags: Iterable[str], *, vendor: str, family: int | None, model: int | None, smt_capable: bool
) -> frozenset[str]:
    """``cpu.cpuid`` flags for an x86-64 host: mapped Linux flags, the derived ones above, and
    ``X86_64_V<n>``. ``vendor`` is klauspost's vendor name (``Intel``, ``AMD``...)."""
    flags = set(linux_flags)
    out: set[str] = set()
    for flag in flags:
        out.update(X86.get(flag, ()))
    if "AVX" in out and family is not None and model is not None:
        if vendor == "Intel" and family == 6 and model < 60:
            out.add("AVXSLOW")
        if vendor == "AMD" and (family < 23 or (family == 23 and model < 49)):
            out.add("AVXSLOW")
    if (
        vendor == "AMD"
        and family is not None
        and model is not None
        and (family < 0x19 or (family == 0x1A and (model <= 0x4F or 0x60 <= model <= 0x7F)))
    ):
        out.update(("TSA_L1_NO", "TSA_SQ_NO"))
    if vendor in ("Intel", "AMD") and "ht" in flags and smt_capable:
        out.add("HTT")
    out.update(f"X86_64_V{i}" for i in range(1, x64_level(out) + 1))
    return frozenset(out)


def arm64_features(linux_features: Iterable[str]) -> frozenset[str]:
    """``cpu.cpuid`` flags for an arm64 host: the hwcaps NFD has names for."""
    return frozenset(_ARM64_BY_LINUX[f] for f in linux_features if f in _ARM64_BY_LINUX)
