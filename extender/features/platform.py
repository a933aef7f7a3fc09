"""A node's platform (``os/arch[/variant]``) when nothing but its NodeFeature tells it. No I/O.

The Kubernetes source reads a node's platform from its Node object (``kubernetes.io/os`` and
``kubernetes.io/arch``, which the kubelet sets); the file source, ``/debug/whatif`` and a table built
in a test have only NodeFeatures. NFD publishes no architecture feature, but its ``cpu`` source
tells one apart unambiguously: on x86 it reports klauspost/cpuid's flag names (``SSE2``, ``CMOV``,
``X87``... every x86-64 CPU has them), on arm64 the kernel's hwcap names (``ASIMD``, ``FP``,
``EVTSTRM``...), which no x86 CPU reports. So, in order:

1. ``cpu.cpuid`` holds an x86-64 baseline flag (:data:`X86_64_FLAGS`): ``linux/amd64``;
2. ``cpu.cpuid`` holds an arm64 hwcap flag (:data:`ARM64_FLAGS`): ``linux/arm64``;
3. ``cpu.model``'s ``vendor_id`` is an x86 vendor (``Intel``, ``AMD``, ``Hygon``...) or an arm64
   implementer (``ARM``, ``Ampere``, ``NVIDIA``...): that architecture;
4. otherwise the default the caller gives (``registry.platform``, ``linux/amd64`` by default).

The OS is always ``linux``: nfd-worker runs on Linux only. The variant is the architecture's
implied one (``v8`` for arm64, ``v1`` for amd64, see :func:`extender.platforms.platform_key`).
"""

from __future__ import annotations

from collections.abc import Mapping

from extender.features.nodefeature import NodeFeatures
from extender.platforms import DEFAULT_PLATFORM, Platform, platform_key

#: Flags every x86-64 CPU has, as NFD names them (klauspost/cpuid's x86-64-v1 baseline).
X86_64_FLAGS = frozenset({"SSE2", "SSE", "CMOV", "X87", "CMPXCHG8", "FXSR", "MMX"})
#: arm64 hwcaps NFD reports (upper-cased kernel names) that no x86 CPU reports.
ARM64_FLAGS = frozenset({"ASIMD", "FP", "EVTSTRM", "ATOMICS", "ASIMDHP", "ASIMDRDM", "SVE"})
#: ``cpu.model`` ``vendor_id`` values (klauspost/cpuid's vendor names) by architecture.
X86_VENDORS = frozenset({"Intel", "AMD", "Hygon", "VIA", "Zhaoxin", "NSC", "Transmeta"})
ARM64_VENDORS = frozenset(
    {"ARM", "Ampere", "NVIDIA", "Qualcomm", "Fujitsu", "Cavium", "Marvell", "Broadcom", "HiSilicon", "Apple"}
)

OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
#: Optional: an architecture variant (``v7`` for 32-bit arm boards, ``v3`` for an amd64 level), set by
#: the operator where the implied one is wrong; no kubelet sets it.
VARIANT_LABEL = "compat-extender.nfd.io/arch-variant"

AMD64 = platform_key(Platform("linux", "amd64"))
ARM64 = platform_key(Platform("linux", "arm64"))


def platform_from_features(features: NodeFeatures, default: str = DEFAULT_PLATFORM) -> str:
    """The platform key :func:`platform_key` gives a node with these features (module docstring)."""
    flags = features.flags.get("cpu.cpuid")
    if flags:
        if not flags.isdisjoint(X86_64_FLAGS):
            return AMD64
        if not flags.isdisjoint(ARM64_FLAGS):
            return ARM64
    vendor = features.attributes.get("cpu.model", {}).get("vendor_id")
    if vendor in X86_VENDORS:
        return AMD64
    if vendor in ARM64_VENDORS:
        return ARM64
    return default


def platform_from_labels(labels: Mapping[str, object] | None) -> str | None:
    """The platform key a Node's labels give (``kubernetes.io/os``, ``kubernetes.io/arch``, the
    optional :data:`VARIANT_LABEL`), or ``None`` when the architecture label is missing or empty."""
    if not isinstance(labels, Mapping):
        return None
    arch = labels.get(ARCH_LABEL)
    if not isinstance(arch, str) or not arch or "/" in arch:
        return None
    os_ = labels.get(OS_LABEL)
    variant = labels.get(VARIANT_LABEL)
    return platform_key(
        Platform(
            os_ if isinstance(os_, str) and os_ and "/" not in os_ else "linux",
            arch,
            variant if isinstance(variant, str) and "/" not in variant else "",
        )
    )
