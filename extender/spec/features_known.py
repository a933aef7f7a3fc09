"""The feature names NFD publishes, in one place (for the spec linter, :mod:`extender.spec.lint`).

These are the features of the sources ``nfd compat validate-node`` and nfd-worker run (cpu, kernel,
memory, network, pci, storage, system, usb), named ``<source>.<feature>`` as
:mod:`extender.sources.host` discovers them; ``tests/test_spec_lint.py`` checks that host discovery
produces nothing outside this list. Add to both together.
"""

from __future__ import annotations

from extender.spec.model import RULE_BACKREF_FEATURE

#: Every ``<source>.<feature>`` NFD's built-in sources publish.
NFD_FEATURES: frozenset[str] = frozenset(
    {
        "cpu.coprocessor",
        "cpu.cpuid",
        "cpu.cstate",
        "cpu.model",
        "cpu.pstate",
        "cpu.rdt",
        "cpu.security",
        "cpu.sst",
        "cpu.topology",
        "kernel.config",
        "kernel.enabledmodule",
        "kernel.kvm",
        "kernel.loadedmodule",
        "kernel.selinux",
        "kernel.version",
        "memory.hugepages",
        "memory.numa",
        "memory.nv",
        "memory.swap",
        "network.device",
        "network.virtual",
        "pci.device",
        "storage.block",
        "system.dmiid",
        "system.name",
        "system.osrelease",
        "usb.device",
    }
)

#: Names that are never reported as unknown: the rules' back-reference feature.
ALWAYS_KNOWN: frozenset[str] = frozenset({RULE_BACKREF_FEATURE})

#: Prefixes of features published by something else than the built-in discovery: NFD's ``local``
#: source (feature files and hooks, e.g. ``local.feature``, ``local.label``), whose names the
#: node's administrator chooses.
CUSTOM_PREFIXES: tuple[str, ...] = ("local.",)

#: Features whose elements are kernel module names as ``/proc/modules`` (or modules.builtin) lists
#: them: always with ``_``, never ``-``.
MODULE_FEATURES: frozenset[str] = frozenset({"kernel.loadedmodule", "kernel.enabledmodule"})

#: Instance features whose id attributes NFD writes as bare lower-case hex (``10de``, ``0302``).
HEX_ID_FEATURES: frozenset[str] = frozenset({"pci.device", "usb.device"})
HEX_ID_ATTRIBUTES: frozenset[str] = frozenset(
    {"vendor", "device", "class", "subsystem_vendor", "subsystem_device"}
)


def is_known_feature(name: str) -> bool:
    """Whether NFD (or a custom source) can publish ``name``; feature names are case-insensitive."""
    key = name.lower()
    return key in NFD_FEATURES or key in ALWAYS_KNOWN or key.startswith(CUSTOM_PREFIXES)
