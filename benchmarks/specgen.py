"""A deterministic generator of image compatibility specs, from one expression to fifty.

Why: ``benchmarks/specs/bench.yaml`` is one hand-written spec of 20 expressions. What an image
attaches varies from a single flag (``AVX2: Exists``) to long lists of drivers, PCI functions and
kernel constraints, and the vectorized matcher's cost grows with the number of expressions and with
their kind (a regexp runs once per distinct value, an instance term reduces over every PCI row).
So the benchmarks need specs of chosen sizes that look like real ones: expressions are drawn from the
same vocabulary as :mod:`benchmarks.cluster` (its pools' cpuid flags, modules, kernels, OS releases
and PCI devices), so sets match a part of the cluster instead of nothing or everything.

Kinds of terms: flag ``Exists``/``DoesNotExist`` on ``cpu.cpuid`` and ``kernel.loadedmodule``,
``matchName`` (``InRegexp`` or ``In``) on both, attribute ``In``/``NotIn``/``InRegexp``/``IsTrue``/
``IsFalse``, integer ``Gt``/``Ge``/``GtLt`` and ``type: version`` ``Ge``/``Lt``/``GeLe`` on
``kernel.version`` (RHEL's kernels are not semver: those nodes get ERROR, as in NFD), instance terms
on ``pci.device``, ``network.device`` and ``storage.block``, and ``matchAny`` alternatives. From 8
expressions up, every spec has at least one regexp, one version-typed comparison, one instance term,
one ``matchName`` and one ``matchAny``.

The expression count is exact (``matchExpressions`` entries plus ``matchName``, as
:func:`benchmarks.matcher.count_expressions` counts them), and the same ``(expressions, seed)`` gives
the same bytes in every process.

Run: ``python -m benchmarks.specgen N [--seed S]`` prints the spec as YAML.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from benchmarks.cluster import POOLS, PoolProfile
from extender.spec.model import Spec
from extender.spec.parse import parse_spec

__all__ = ["MAX_EXPRESSIONS", "SIZES", "generate_spec", "spec_bytes", "spec_document"]

#: The sizes the benchmarks sweep: a single flag up to a long, every-kind spec.
SIZES: tuple[int, ...] = (1, 5, 10, 20, 50)
MAX_EXPRESSIONS = 50
#: From this size on, every kind (regexp, version, instance, matchName, matchAny) is present.
ALL_KINDS_FROM = 8

Expr = dict[str, Any]
Term = dict[str, Any]

# ---------------------------------------------------------------------------------------------------
# Vocabulary, from the cluster generator's pools (fixed order: no set iteration).


def _words(text: str) -> list[str]:
    return text.split()


#: Flags a real image would ask for, most often first (a build's -march baseline and extensions).
_CPUID_WANTED: tuple[str, ...] = tuple(
    _words(
        "AVX2 FMA3 BMI2 AVX512F AVX512BW AVX512VL AVX512VNNI AMXTILE AMXBF16 AVX512BF16 AESNI SHA VAES "
        "VPCLMULQDQ GFNI SSE42 POPCNT MOVBE ASIMD SVE SHA3 ATOMICS AESARM PMULL"
    )
)
#: Modules a real image would ask for (its drivers), most often first.
_MODULES_WANTED: tuple[str, ...] = tuple(
    _words(
        "nvidia nvidia_uvm nvidia_drm nvidia_peermem vfio-pci vfio_iommu_type1 ice irdma mlx5_core "
        "mlx5_ib ib_uverbs rdma_ucm i40e igb idxd qat_4xxx kvm_intel kvm_amd overlay br_netfilter "
        "virtio_net nvme xfs"
    )
)
_CPUID_NAME_PATTERNS: tuple[tuple[str, ...], ...] = (
    ("^AVX512",),
    ("^AVX512", "^AMX"),
    ("^AMX(BF16|INT8)$",),
    ("^SEV",),
    ("^SHA(3|512)?$",),
    ("^(ASIMD|SVE)",),
    ("^SSE4",),
)
_MODULE_NAME_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("InRegexp", ("^nvidia",)),
    ("InRegexp", ("^mlx5_", "^ice$")),
    ("In", ("vfio-pci", "vfio_pci_core")),
    ("InRegexp", ("^(kvm_intel|kvm_amd)$",)),
    ("InRegexp", ("^virtio_",)),
    ("InRegexp", ("^nvme",)),
)
#: Device classes a spec asks for (Ethernet, InfiniBand, 3D controller, accelerator) and the one it
#: would accept alongside.
_CLASS_PARTNER = {"0200": "0207", "0207": "0200", "0302": "0300", "0b40": "0b40"}
_VENDORS: tuple[str, ...] = tuple(
    dict.fromkeys(d.vendor for p in POOLS for d in p.pci if d.cls in _CLASS_PARTNER)
)


def _exists(op: str = "Exists") -> Expr:
    return {"op": op}


def _vals(op: str, *values: str, version: bool = False) -> Expr:
    expr: Expr = {"op": op, "value": list(values)}
    if version:
        expr["type"] = "version"
    return expr


def _kernel_base(kernel: str) -> str:
    """``6.8.0-45-generic`` -> ``6.8.0``."""
    return kernel.split("-", 1)[0]


def _flags_of(pool: PoolProfile) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*pool.cpuid, *(f for _, fl in pool.cpuid_by_model for f in fl))))


def _modules_of(pool: PoolProfile) -> tuple[str, ...]:
    return (*pool.base_modules, *(("vfio-pci", "vfio_pci_core", "vfio_iommu_type1") if pool.p_vfio else ()))


def _wanted(wanted: Sequence[str], present: Sequence[str]) -> list[str]:
    have = dict.fromkeys(present)
    return [w for w in wanted if w in have] or list(present)


# ---------------------------------------------------------------------------------------------------
# Units: a term (or a matchAny) with its exact expression count, for one pool's hardware.


@dataclass(frozen=True, slots=True)
class _Unit:
    cost: int
    term: Term | None = None  # goes to a rule's matchFeatures
    any_of: tuple[tuple[Term, ...], ...] = ()  # or: a rule's matchAny


def _term(feature: str, exprs: dict[str, Expr] | None = None, name: Expr | None = None) -> _Unit:
    term: Term = {"feature": feature}
    if exprs is not None:
        term["matchExpressions"] = exprs
    if name is not None:
        term["matchName"] = name
    return _Unit(len(exprs or {}) + (name is not None), term=term)


def _take(rng: random.Random, pool: Sequence[str], k: int) -> list[str]:
    """``k`` distinct items, biased to the front of ``pool`` (the common ones)."""
    picked: list[str] = []
    candidates = list(pool)
    while candidates and len(picked) < k:
        i = min(int(rng.expovariate(1 / 4)), len(candidates) - 1)
        picked.append(candidates.pop(i))
    return picked


def _pick_exprs(rng: random.Random, choices: list[tuple[str, Expr]], k: int) -> dict[str, Expr]:
    """Between 1 and ``k`` of ``choices`` (distinct keys), in a random order."""
    rng.shuffle(choices)
    out: dict[str, Expr] = {}
    for key, expr in choices:
        if len(out) >= k:
            break
        out.setdefault(key, expr)
    return dict(list(out.items())[: rng.randint(1, len(out))])


def _cpuid_flags(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    n = rng.randint(1, min(k, 6))
    exprs = {f: _exists() for f in _take(rng, _wanted(_CPUID_WANTED, _flags_of(pool)), n)}
    if len(exprs) > 1 and pool.hypervisor == "none" and rng.random() < 0.3:
        exprs.pop(next(iter(exprs)))
        exprs["HYPERVISOR"] = _exists("DoesNotExist")
    return _term("cpu.cpuid", exprs)


def _cpuid_name(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    flags = _flags_of(pool)
    usable = [p for p in _CPUID_NAME_PATTERNS if any(re.search(x, f) for x in p for f in flags)]
    return _term("cpu.cpuid", name=_vals("InRegexp", *rng.choice(usable or _CPUID_NAME_PATTERNS)))


def _modules(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    n = rng.randint(1, min(k, 5))
    exprs = {m: _exists() for m in _take(rng, _wanted(_MODULES_WANTED, _modules_of(pool)), n)}
    if "nvidia" in exprs and len(exprs) > 1:
        exprs.pop(next(m for m in exprs if m != "nvidia"))
        exprs["nouveau"] = _exists("DoesNotExist")
    return _term("kernel.loadedmodule", exprs)


def _modules_name(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    modules = _modules_of(pool)
    usable = [
        (op, pats)
        for op, pats in _MODULE_NAME_PATTERNS
        if any((m in pats) if op == "In" else any(re.search(x, m) for x in pats) for m in modules)
    ]
    op, pats = rng.choice(usable or _MODULE_NAME_PATTERNS)
    return _term("kernel.loadedmodule", name=_vals(op, *pats))


def _kernel(rng: random.Random, k: int, pool: PoolProfile, *, versioned: bool = False) -> _Unit:
    base = _kernel_base(_pick_weighted(rng, pool.kernels))
    major, minor = base.split(".")[:2]
    version_choices: list[tuple[str, Expr]] = [
        ("full", _vals("Ge", f"{major}.{minor}.0", version=True)),
        ("full", _vals("GeLe", f"{major}.0.0", f"{int(major) + 1}.0.0", version=True)),
        ("full", _vals("Lt", f"{int(major) + 1}.0.0", version=True)),
    ]
    other: list[tuple[str, Expr]] = [
        ("major", _vals("Gt", str(int(major) - 1))),
        ("minor", _vals("GtLt", str(max(int(minor) - 5, -1)), str(int(minor) + 20))),
        ("full", _vals("InRegexp", rf"^{major}\.{minor}\.")),
    ]
    if versioned:  # the first expression compares versions
        first = rng.choice(version_choices)
        rest = _pick_exprs(rng, [c for c in other if c[0] != first[0]], max(k - 1, 1)) if k > 1 else {}
        return _term("kernel.version", {first[0]: first[1], **rest})
    return _term("kernel.version", _pick_exprs(rng, version_choices + other, min(k, 3)))


def _osrelease(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    others = sorted({p.os_id for p in POOLS} - {pool.os_id})
    versions = sorted({p.os_version for p in POOLS})
    pattern = "^(" + "|".join(v.replace(".", r"\.") for v in versions if v >= pool.os_version) + ")$"
    major = pool.os_version.split(".")[0]
    choices: list[tuple[str, Expr]] = [
        ("ID", _vals("In", pool.os_id, *rng.sample(others, rng.randint(0, len(others))))),
        ("VERSION_ID", _vals("InRegexp", pattern)),
        ("VERSION_ID.major", _vals("Ge", major)),
    ]
    return _term("system.osrelease", _pick_exprs(rng, choices, min(k, 3)))


def _cpu_model(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    other_ids = sorted({m for p in POOLS for m, _ in p.model_ids} - {m for m, _ in pool.model_ids})
    choices: list[tuple[str, Expr]] = [
        ("vendor_id", _vals("In", pool.vendor_id)),
        ("family", _vals("In", pool.family)),
        ("id", _vals("NotIn", *rng.sample(other_ids, min(2, len(other_ids))))),
        ("hypervisor", _vals("In", pool.hypervisor)),
    ]
    return _term("cpu.model", _pick_exprs(rng, choices, min(k, 4)))


def _topology(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    if rng.random() < 0.5:
        numa = max(int(n) for n, _ in pool.numa_nodes)
        return _term(
            "memory.numa",
            _pick_exprs(
                rng,
                [("node_count", _vals("Ge", "1" if numa == 1 else "2")), ("is_numa", _exists("IsTrue"))][
                    : 1 if numa == 1 else 2
                ],
                min(k, 2),
            ),
        )
    smt: Expr = _exists("IsTrue" if pool.smt == "true" else "IsFalse")
    choices: list[tuple[str, Expr]] = [
        ("hardware_multithreading", smt),
        ("socket_count", _vals("GtLt", "0", str(int(pool.sockets) + 1))),
    ]
    return _term("cpu.topology", _pick_exprs(rng, choices, min(k, 2)))


def _pci(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    devices = [d for d in pool.pci if d.cls in _CLASS_PARTNER] or [d for p in POOLS for d in p.pci][:1]
    dev = rng.choice(devices)
    choices: list[tuple[str, Expr]] = [
        ("class", _vals("In", *dict.fromkeys((dev.cls, _CLASS_PARTNER.get(dev.cls, dev.cls))))),
        ("device", _vals("In", dev.device)),
    ]
    sriov = dict(dev.extra).get("sriov_totalvfs")
    if sriov is not None:
        choices.append(("sriov_totalvfs", _vals("Ge", sriov)))
    if pool.iommu:
        choices.append(("iommu_group/type", _vals("In", *dict.fromkeys((pool.iommu[0][1], "DMA-FQ")))))
    # the vendor always: a PCI term without one is rare
    exprs = {"vendor": _vals("In", dev.vendor)}
    if k > 1:
        exprs.update(_pick_exprs(rng, choices, min(k - 1, 3)))
    return _term("pci.device", exprs)


def _network(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    speeds = sorted({int(d.speed) for d in pool.pci if d.speed and int(d.speed) > 0}) or [1000]
    choices: list[tuple[str, Expr]] = [
        ("speed", _vals("Ge", str(rng.choice(speeds)))),
        ("operstate", _vals("In", "up")),
        ("mtu", _vals("Ge", "1500")),
    ]
    return _term("network.device", _pick_exprs(rng, choices, min(k, 3)))


def _storage(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    nvme = pool.nvme[2] > 0
    choices: list[tuple[str, Expr]] = [
        ("rotational", _vals("In", "0" if nvme else "1")),
        ("name", _vals("InRegexp", "^nvme[0-9]+n1$" if nvme else "^(vd|sd)[a-z]$")),
    ]
    return _term("storage.block", _pick_exprs(rng, choices, min(k, 2)))


def _kernel_misc(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    if rng.random() < 0.4:
        return _term(
            "kernel.selinux", {"enabled": _exists("IsTrue" if pool.selinux == "true" else "IsFalse")}
        )
    choices: list[tuple[str, Expr]] = [
        (key, _vals("In", value) if rng.random() < 0.5 else _exists()) for key, value in pool.kernel_config
    ]
    return _term("kernel.config", _pick_exprs(rng, choices, min(k, 2)))


def _match_any(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    """Alternatives: the pool's NIC or accelerator vendor, another vendor's, or a driver loaded."""
    own = [d.vendor for d in pool.pci if d.cls in _CLASS_PARTNER]
    vendors = list(dict.fromkeys([*own[:1], *rng.sample(_VENDORS, len(_VENDORS))]))
    alternatives: list[tuple[Term, ...]] = []
    cost = 0
    for vendor in vendors[:3]:
        if k - cost < 1:
            break
        exprs: dict[str, Expr] = {"vendor": _vals("In", vendor)}
        if k - cost - 1 >= 2 and rng.random() < 0.5:  # leave room for a second alternative
            exprs["class"] = _vals("In", "0200", "0207", "0302")
        alternatives.append(({"feature": "pci.device", "matchExpressions": exprs},))
        cost += len(exprs)
    if k - cost >= 1 and rng.random() < 0.5:
        module = rng.choice(_wanted(_MODULES_WANTED, _modules_of(pool))[:6])
        alternatives.append(({"feature": "kernel.loadedmodule", "matchExpressions": {module: _exists()}},))
        cost += 1
    return _Unit(cost, any_of=tuple(alternatives))


def _versioned_kernel(rng: random.Random, k: int, pool: PoolProfile) -> _Unit:
    return _kernel(rng, k, pool, versioned=True)


def _pick_weighted(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


Maker = Callable[[random.Random, int, PoolProfile], _Unit]
_MAKERS: tuple[tuple[Maker, float], ...] = (
    (_cpuid_flags, 3.0),
    (_cpuid_name, 1.0),
    (_modules, 3.0),
    (_modules_name, 1.0),
    (_kernel, 2.0),
    (_osrelease, 1.5),
    (_cpu_model, 1.5),
    (_topology, 1.0),
    (_pci, 2.0),
    (_network, 1.0),
    (_storage, 0.7),
    (_kernel_misc, 0.7),
    (_match_any, 1.2),
)
#: Guaranteed from ALL_KINDS_FROM expressions up: matchAny, an instance term, a version-typed
#: comparison, a matchName regexp (spread over the sets, one each in turn).
_REQUIRED: tuple[Maker, ...] = (_match_any, _pci, _versioned_kernel, _cpuid_name)

_SETS: tuple[tuple[str, int], ...] = (("accel", 100), ("network", 50), ("cpu", 20), ("platform", 10))


def _units(budget: int, rng: random.Random, pool: PoolProfile, required: list[Maker]) -> list[_Unit]:
    units: list[_Unit] = []
    remaining = budget
    makers = [m for m, _ in _MAKERS]
    weights = [w for _, w in _MAKERS]
    while remaining:
        maker = required.pop(0) if required else rng.choices(makers, weights=weights)[0]
        # leave room for the required kinds still to come
        k = remaining - sum(2 if m is _match_any else 1 for m in required)
        if maker is _match_any and k < 2:
            continue
        unit = maker(rng, k, pool)
        if maker is _match_any and len(unit.any_of) < 2:
            continue  # one alternative is not a choice
        if not 1 <= unit.cost <= k:
            raise AssertionError(f"{maker.__name__} made {unit.cost} expressions, {remaining} left")
        units.append(unit)
        remaining -= unit.cost
    return units


def _rules(units: list[_Unit]) -> list[dict[str, Any]]:
    """Up to three units per rule; a rule holds at most one matchAny."""
    rules: list[dict[str, Any]] = []
    rule: dict[str, Any] = {}
    size = 0
    for unit in units:
        if size == 3 or (unit.any_of and "matchAny" in rule):
            rules.append(rule)
            rule, size = {}, 0
        if not rule:
            rule["name"] = f"rule {len(rules)}"
        if unit.term is not None:
            rule.setdefault("matchFeatures", []).append(unit.term)
        else:
            rule["matchAny"] = [{"matchFeatures": list(alt)} for alt in unit.any_of]
        size += 1
    if rule:
        rules.append(rule)
    return rules


def spec_document(n_expressions: int, seed: int = 0) -> dict[str, Any]:
    """The spec as a decoded document with exactly ``n_expressions`` expressions: one to four
    compatibility sets, each written for one pool's hardware (so it matches part of that pool)."""
    if not 1 <= n_expressions <= MAX_EXPRESSIONS:
        raise ValueError(f"n_expressions must be 1..{MAX_EXPRESSIONS}, got {n_expressions}")
    rng = random.Random(f"specgen:{seed}:{n_expressions}")
    n = n_expressions
    n_sets = 1 if n <= 4 else 2 if n <= 12 else 3 if n <= 30 else 4
    budgets = [n // n_sets + (i < n % n_sets) for i in range(n_sets)]
    required: list[list[Maker]] = [[] for _ in range(n_sets)]
    if n >= ALL_KINDS_FROM:
        for i, maker in enumerate(_REQUIRED):
            required[i % n_sets].append(maker)
    pools = rng.sample(POOLS, n_sets)
    compatibilities: list[dict[str, Any]] = []
    for i, (budget, pool) in enumerate(zip(budgets, pools, strict=True)):
        tag, weight = _SETS[i]
        compatibilities.append(
            {
                "description": f"built for {pool.name} nodes ({n}-expression benchmark spec)",
                "tag": tag,
                "weight": weight,
                "rules": _rules(_units(budget, rng, pool, required[i])),
            }
        )
    return {"version": "v1alpha1", "compatibilities": compatibilities}


def spec_bytes(n_expressions: int, seed: int = 0) -> bytes:
    """The spec as JSON (a YAML subset: what a registry would serve, without YAML's implicit types)."""
    return orjson.dumps(spec_document(n_expressions, seed))


def generate_spec(n_expressions: int, seed: int = 0) -> Spec:
    """The parsed spec (``parse_spec`` on :func:`spec_bytes`)."""
    return parse_spec(spec_bytes(n_expressions, seed))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.specgen", description=__doc__.split("\n\n")[0])
    p.add_argument("expressions", type=int, help=f"1..{MAX_EXPRESSIONS}")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not 1 <= args.expressions <= MAX_EXPRESSIONS:
        p.error(f"expressions must be 1..{MAX_EXPRESSIONS}")
    sys.stdout.write(
        yaml.safe_dump(spec_document(args.expressions, args.seed), sort_keys=False, default_flow_style=None)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
