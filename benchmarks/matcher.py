"""Matcher benchmark: reference vs vectorized vs cached vs incremental update, on realistic clusters.

Why: the extender answers every scheduling cycle's filter/prioritize call, so what matters is the
cost of one ``evaluate`` over the candidate nodes in each state the extender actually meets — a
fresh table (first call, per-value memos empty), a warm table whose result cache cannot help (the
spec is new, or ``use_cache=False``), a repeated question (cached), and the usual steady state of a
live cluster: one NodeFeature changed, so the table generation moved and the cached matrix is stale.
The node-by-node reference evaluator is the baseline the speed-ups are quoted against. It is also
the oracle: the benchmark refuses to report numbers for a vectorized matcher that disagrees with it.

Run: ``python -m benchmarks.matcher [--nodes 100,1000,5000,20000] [--repeat R] [--json PATH]
[--quick]``. Every measurement is a series of single calls timed with ``time.perf_counter_ns``
(garbage collection off while timing, as ``timeit`` does); the median and the minimum per call are
reported. Nothing here asserts a time: the numbers depend on the machine, and are printed with its
facts. Above ``--reference-max-nodes`` the reference is run once over every node (for the check
and as a data point) and then timed on an evenly spaced sample that is scaled linearly (its cost is
strictly per node); the output says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from benchmarks.cluster import average_json_size, cluster_shape, generate_cluster, mutate_node
from benchmarks.harness import Row, RunContext, ScenarioResult
from benchmarks.progress import NO_PROGRESS, Steps
from benchmarks.report import finish, fmt_ms, machine_facts, parse_sizes, say
from benchmarks.specgen import SIZES as SPEC_SIZES
from benchmarks.specgen import generate_spec
from extender import (
    Spec,
    SpecEvaluation,
    Status,
    evaluate,
    parse_nodefeature,
    parse_spec,
    table_from_nodefeatures,
)
from extender.features.nodefeature import NODE_NAME_LABEL
from extender.match.table import FeatureTable

BENCH_SPEC = Path(__file__).resolve().parent / "specs" / "bench.yaml"
DEFAULT_SIZES: tuple[int, ...] = (100, 1000, 5000, 20000)
QUICK_SIZES: tuple[int, ...] = (50, 200)
DEFAULT_REPEAT = 7
QUICK_REPEAT = 3
#: Fast measurements (vectorized, cached, update) take at least this many calls: they are cheap,
#: and more samples steady the median.
MIN_FAST_RUNS = 20
#: The spec-size sweep runs at this many nodes (or the largest size asked for, if smaller).
SPEC_SWEEP_NODES = 5000


class BenchmarkMismatch(RuntimeError):
    """The vectorized matcher disagrees with the reference: the numbers would be meaningless."""


# ---------------------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True, slots=True)
class Timing:
    """Per-call times of one measurement. With ``scale`` != 1 the calls covered a sample of the
    nodes and ``median_ms``/``min_ms`` are already scaled to all of them (``samples_ns`` are raw)."""

    median_ms: float
    min_ms: float
    p99_ms: float
    runs: int
    samples_ns: tuple[int, ...]
    scale: float = 1.0
    sample_nodes: int | None = None

    @classmethod
    def of(cls, samples_ns: Sequence[int], scale: float = 1.0, sample_nodes: int | None = None) -> Timing:
        if not samples_ns:
            raise ValueError("no samples")
        return cls(
            median_ms=statistics.median(samples_ns) * scale / 1e6,
            min_ms=min(samples_ns) * scale / 1e6,
            p99_ms=float(np.percentile(np.asarray(samples_ns, dtype=np.float64), 99)) * scale / 1e6,
            runs=len(samples_ns),
            samples_ns=tuple(samples_ns),
            scale=scale,
            sample_nodes=sample_nodes,
        )


@dataclass(frozen=True, slots=True)
class SetCount:
    index: int
    tag: str
    weight: int
    description: str
    matched: int
    not_matched: int
    error: int


@dataclass(frozen=True, slots=True)
class SizeResult:
    nodes: int
    generate_ms: float
    object_json_bytes_avg: float
    object_json_bytes_min: int
    object_json_bytes_max: int
    table_build_ms: float  # one run: parse + merge + columnar table
    cold_vectorized_ms: float  # the very first call on the fresh table (empty per-value memos)
    reference: Timing
    reference_full_pass_ms: float  # one reference pass over every node (the verification run)
    vectorized: Timing  # warm table, use_cache=False
    cached: Timing  # use_cache=True, second call onwards
    set_node: Timing  # table.set_node(...) alone, inside the update loop
    update_eval: Timing  # set_node + evaluate (the cache is stale after the change)
    sets: tuple[SetCount, ...]
    distinct_values: dict[str, int]

    @property
    def vectorized_speedup(self) -> float:
        return self.reference.median_ms / self.vectorized.median_ms

    @property
    def cached_speedup(self) -> float:
        return self.reference.median_ms / self.cached.median_ms


@dataclass(frozen=True, slots=True)
class Report:
    machine: dict[str, str]
    spec_path: str
    spec_digest: str
    spec_sets: int
    spec_expressions: int
    seed: int
    repeat: int
    sizes: list[SizeResult] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for row, size in zip(data["sizes"], self.sizes, strict=True):
            row["vectorized_speedup"] = size.vectorized_speedup
            row["cached_speedup"] = size.cached_speedup
        return data


# ---------------------------------------------------------------------------------------------------
# Helpers.


def load_bench_spec(path: Path = BENCH_SPEC) -> Spec:
    return parse_spec(path.read_bytes())


def count_expressions(spec: Spec) -> int:
    """matchExpressions entries plus matchName expressions, over every term of every rule."""
    total = 0
    for cset in spec.compatibilities:
        for rule in cset.rules:
            for terms in (rule.match_features, *rule.match_any):
                for term in terms:
                    total += len(term.match_expressions or ())
                    total += term.match_name is not None
    return total


def _time_calls(fn: Callable[[], object], runs: int) -> list[int]:
    samples: list[int] = []
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def _time_once(fn: Callable[[], object]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter_ns()
    result = fn()
    return (time.perf_counter_ns() - t0) / 1e6, result


def _verify(what: str, expected: SpecEvaluation, got: SpecEvaluation) -> None:
    """Abort the benchmark (loudly) unless both evaluations agree on every node and set."""
    if expected.nodes != got.nodes or expected.set_indexes != got.set_indexes:
        raise BenchmarkMismatch(f"{what}: evaluated different nodes/sets than the reference")
    if not np.array_equal(expected.known, got.known):
        raise BenchmarkMismatch(f"{what}: 'known' flags differ from the reference")
    if not np.array_equal(expected.status, got.status):
        rows, cols = np.nonzero(expected.status != got.status)
        cells = [
            f"{expected.nodes[r]} set {expected.set_indexes[c]}: reference "
            f"{Status(int(expected.status[r, c])).name}, got {Status(int(got.status[r, c])).name}"
            for r, c in zip(rows[:10].tolist(), cols[:10].tolist(), strict=True)
        ]
        raise BenchmarkMismatch(
            f"{what}: {len(rows)} status cells differ from the reference, e.g.\n  " + "\n  ".join(cells)
        )


def _set_counts(
    spec: Spec, status: npt.NDArray[np.int8], set_indexes: tuple[int, ...]
) -> tuple[SetCount, ...]:
    out = []
    for col, idx in enumerate(set_indexes):
        cset = spec.compatibilities[idx]
        column = status[:, col]
        out.append(
            SetCount(
                index=idx,
                tag=cset.tag,
                weight=cset.weight,
                description=cset.description,
                matched=int((column == Status.MATCHED).sum()),
                not_matched=int((column == Status.NOT_MATCHED).sum()),
                error=int((column == Status.ERROR).sum()),
            )
        )
    return tuple(out)


def _distinct_values(objs: Sequence[Any]) -> dict[str, int]:
    """Vocabulary sizes of a few columns the spec touches (to show the cluster's shape)."""
    vocab: dict[str, set[str]] = {}
    flags: dict[str, set[str]] = {}
    for obj in objs:
        feats = obj["spec"]["features"]
        for name in ("kernel.version", "system.osrelease", "cpu.model", "memory.numa"):
            for key, value in feats["attributes"][name]["elements"].items():
                vocab.setdefault(f"{name}.{key}", set()).add(value)
        for inst in feats["instances"]["pci.device"]["elements"]:
            for key in ("vendor", "class", "device", "sriov_totalvfs"):
                if key in inst["attributes"]:
                    vocab.setdefault(f"pci.device.{key}", set()).add(inst["attributes"][key])
        for name in ("cpu.cpuid", "kernel.loadedmodule"):
            flags.setdefault(name, set()).update(feats["flags"][name]["elements"])
    out = {k: len(v) for k, v in sorted(vocab.items())}
    out.update({f"{k} (distinct flag names)": len(v) for k, v in flags.items()})
    return out


# ---------------------------------------------------------------------------------------------------
# One cluster size.


def measure_size(
    spec: Spec,
    n_nodes: int,
    *,
    repeat: int,
    seed: int = 0,
    reference_max_nodes: int = 5000,
    reference_sample: int = 2000,
    out: TextIO = sys.stdout,
    progress: Steps = NO_PROGRESS,
) -> SizeResult:
    note = progress.note
    fast_runs = max(repeat, MIN_FAST_RUNS)
    say(out, f"### {n_nodes:,} nodes")

    note("generating the cluster")
    generate_ms, objs = _time_once(lambda: generate_cluster(n_nodes, seed))
    avg, smallest, largest = average_json_size(objs)
    say(
        out,
        f"- generated {len(objs):,} NodeFeature objects in {generate_ms:,.0f} ms; JSON size per object "
        f"avg {avg / 1024:.1f} KiB (min {smallest / 1024:.1f}, max {largest / 1024:.1f})",
    )

    note("building the table")
    table_build_ms, table = _time_once(lambda: table_from_nodefeatures(objs))
    say(out, f"- table build (parse + merge + columnar table, one run): {table_build_ms:,.1f} ms")

    # (b0) the very first vectorized call: per-value memos are empty, regexps may be uncompiled.
    cold_ms, cold = _time_once(lambda: evaluate(spec, table, use_cache=False))
    say(out, f"- first (cold) vectorized call: {cold_ms:,.2f} ms")

    # (a) reference: one full pass (also the oracle for the check), then the timed series.
    note("reference")
    full_ms, ref = _time_once(lambda: evaluate(spec, table, implementation="reference"))
    _verify("vectorized (cold)", ref, cold)
    names = table.node_names()
    if n_nodes <= reference_max_nodes:
        samples = [int(full_ms * 1e6)]
        samples += _time_calls(lambda: evaluate(spec, table, implementation="reference"), repeat - 1)
        reference = Timing.of(samples)
        say(out, f"- reference: {reference.runs} full passes over all nodes")
    else:
        step = max(1, len(names) // reference_sample)
        sample = list(names[::step])
        scale = len(names) / len(sample)
        samples = _time_calls(lambda: evaluate(spec, table, sample, implementation="reference"), repeat)
        reference = Timing.of(samples, scale=scale, sample_nodes=len(sample))
        say(
            out,
            f"- reference: timed on {len(sample):,} evenly spaced nodes ({repeat} runs) and scaled "
            f"linearly ×{scale:.2f}; one full pass over all {n_nodes:,} nodes took {full_ms:,.0f} ms",
        )

    # (b) vectorized, warm table, no result cache (the cold call above was the warm-up).
    note("vectorized and cached")
    vec = evaluate(spec, table, use_cache=False)
    _verify("vectorized (warm)", ref, vec)
    vectorized = Timing.of(_time_calls(lambda: evaluate(spec, table, use_cache=False), fast_runs))

    # (c) cached: the first call fills the cache, the timed ones hit it.
    _verify("cached (filling call)", ref, evaluate(spec, table))
    cached = Timing.of(_time_calls(lambda: evaluate(spec, table), fast_runs))
    _verify("cached", ref, evaluate(spec, table))

    # (d) one NodeFeature changed: set_node, then evaluate (the cached matrix is stale now).
    note("update + evaluate")
    victim = objs[len(objs) // 2]
    victim_name = victim["metadata"]["labels"][NODE_NAME_LABEL]
    original = table.node_features(victim_name)
    if original is None:
        raise BenchmarkMismatch(f"node {victim_name} is missing from the table")
    changed = parse_nodefeature(mutate_node(victim, seed)).features
    variants = (changed, original)
    set_node_ns: list[int] = []
    update_ns: list[int] = []
    gc.collect()
    gc.disable()
    try:
        for i in range(fast_runs):
            nf = variants[i % 2]
            t0 = time.perf_counter_ns()
            table.set_node(nf)
            t1 = time.perf_counter_ns()
            evaluate(spec, table)
            t2 = time.perf_counter_ns()
            set_node_ns.append(t1 - t0)
            update_ns.append(t2 - t0)
    finally:
        gc.enable()
    # Check the incremental path once per variant: the changed node agrees with the reference and
    # every other node kept its status.
    victim_row = names.index(victim_name)
    for nf in variants:
        table.set_node(nf)
        after = evaluate(spec, table)
        _verify(
            "after set_node (changed node)",
            evaluate(spec, table, [victim_name], implementation="reference"),
            evaluate(spec, table, [victim_name]),
        )
        others = np.ones(len(names), dtype=np.bool_)
        others[victim_row] = False
        if not np.array_equal(after.status[others], ref.status[others]):
            raise BenchmarkMismatch("after set_node: statuses of untouched nodes changed")
    set_node = Timing.of(set_node_ns)
    update_eval = Timing.of(update_ns)

    sets = _set_counts(spec, ref.status, ref.set_indexes)
    say(out, f"- verified: vectorized == reference for all {n_nodes:,} nodes × {len(sets)} sets")
    for s in sets:
        say(
            out,
            f"  - set {s.index} [tag {s.tag}, weight {s.weight}]: matched {s.matched:,} "
            f"({100 * s.matched / n_nodes:.1f}%), not matched {s.not_matched:,}, error {s.error:,}",
        )
        if s.matched == 0 or s.matched == n_nodes:
            say(out, f"    WARNING: set {s.index} is trivial on this cluster")
    say(
        out,
        f"- medians: reference {reference.median_ms:,.2f} ms, vectorized {vectorized.median_ms:,.3f} ms, "
        f"cached {cached.median_ms:,.4f} ms, update+eval {update_eval.median_ms:,.3f} ms "
        f"(set_node {set_node.median_ms:,.3f} ms)",
    )
    say(out)
    return SizeResult(
        nodes=n_nodes,
        generate_ms=generate_ms,
        object_json_bytes_avg=avg,
        object_json_bytes_min=smallest,
        object_json_bytes_max=largest,
        table_build_ms=table_build_ms,
        cold_vectorized_ms=cold_ms,
        reference=reference,
        reference_full_pass_ms=full_ms,
        vectorized=vectorized,
        cached=cached,
        set_node=set_node,
        update_eval=update_eval,
        sets=sets,
        distinct_values=_distinct_values(objs),
    )


# ---------------------------------------------------------------------------------------------------
# Whole run and rendering.


def run_benchmark(
    sizes: Sequence[int],
    *,
    repeat: int = DEFAULT_REPEAT,
    seed: int = 0,
    reference_max_nodes: int = 5000,
    reference_sample: int = 2000,
    spec_path: Path = BENCH_SPEC,
    out: TextIO = sys.stdout,
    progress: Steps = NO_PROGRESS,
) -> Report:
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    spec = load_bench_spec(spec_path)
    report = Report(
        machine=machine_facts(),
        spec_path=str(spec_path),
        spec_digest=spec.digest,
        spec_sets=len(spec.compatibilities),
        spec_expressions=count_expressions(spec),
        seed=seed,
        repeat=repeat,
    )
    say(out, "## Matcher benchmark")
    say(out)
    say(out, render_machine(report))
    say(out)
    if any(n < 1 for n in sizes):
        raise ValueError(f"cluster sizes must be >= 1, got {list(sizes)}")
    for n in sizes:
        progress.step(f"{n:,} nodes")
        report.sizes.append(
            measure_size(
                spec,
                n,
                repeat=repeat,
                seed=seed,
                reference_max_nodes=reference_max_nodes,
                reference_sample=reference_sample,
                out=out,
                progress=progress,
            )
        )
    return report


def render_machine(report: Report) -> str:
    m = report.machine
    return "\n".join(
        [
            f"- machine: {m['cpu']}, nproc {m['nproc']} (cpu_count {m['cpu_count']}), {m['platform']}",
            f"- python {m['python']} ({m['implementation']}), numpy {m['numpy']}, "
            f"google-re2 {m['google-re2']}",
            f"- spec: {report.spec_path} ({report.spec_digest[:19]}…), "
            f"{report.spec_sets} compatibility sets, {report.spec_expressions} expressions; "
            "all sets evaluated (no tag filter), nodes=None (every node)",
            f"- seed {report.seed}; reference runs {report.repeat}, fast measurements "
            f"≥{max(report.repeat, MIN_FAST_RUNS)} calls; GC disabled while timing",
        ]
    )


def _cell(t: Timing) -> str:
    return f"{fmt_ms(t.median_ms)} ({fmt_ms(t.min_ms)})"


def _times(x: float) -> str:
    return f"{x:,.0f}×" if x >= 100 else f"{x:.1f}×"


def render_markdown(report: Report) -> str:
    lines = [
        "| nodes | reference ms | vectorized ms | cached ms | update+eval ms | "
        "vectorized speed-up vs reference (×) | cached speed-up vs reference (×) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes = []
    for r in report.sizes:
        ref = _cell(r.reference)
        if r.reference.sample_nodes is not None:
            ref += " †"
            notes.append(
                f"† {r.nodes:,} nodes: reference timed on {r.reference.sample_nodes:,} evenly spaced nodes "
                f"and scaled ×{r.reference.scale:.2f}; one full pass over all nodes took "
                f"{fmt_ms(r.reference_full_pass_ms)} ms."
            )
        lines.append(
            f"| {r.nodes:,} | {ref} | {_cell(r.vectorized)} | {_cell(r.cached)} | {_cell(r.update_eval)} | "
            f"{_times(r.vectorized_speedup)} | {_times(r.cached_speedup)} |"
        )
    lines.append("")
    lines.append("Per call: median (min). Speed-ups are ratios of medians.")
    lines.extend(notes)
    lines.append("")
    tags = " / ".join(s.tag or f"set {s.index}" for s in report.sizes[0].sets) if report.sizes else ""
    lines.append(
        "| nodes | avg object JSON KiB | table build ms | first (cold) vectorized ms | set_node ms | "
        f"matched per set ({tags}), errors |"
    )
    lines.append("| ---: | ---: | ---: | ---: | ---: | --- |")
    for r in report.sizes:
        matched = " / ".join(f"{s.matched:,} ({100 * s.matched / r.nodes:.0f}%)" for s in r.sets)
        errors = sum(s.error for s in r.sets)
        lines.append(
            f"| {r.nodes:,} | {r.object_json_bytes_avg / 1024:.1f} | {fmt_ms(r.table_build_ms)} | "
            f"{fmt_ms(r.cold_vectorized_ms)} | {_cell(r.set_node)} | {matched}; {errors:,} ERROR cells |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Spec sizes: the same cluster, generated specs of 1 to 50 expressions.


@dataclass(frozen=True, slots=True)
class SpecSizeResult:
    expressions: int
    sets: int
    nodes: int
    digest: str
    reference: Timing  # on an evenly spaced sample, scaled
    vectorized: Timing  # warm, use_cache=False
    cached: Timing

    @property
    def vectorized_speedup(self) -> float:
        return self.reference.median_ms / self.vectorized.median_ms


def _time_spec(
    spec: Spec, table: FeatureTable, sample: list[str], scale: float, repeat: int, fast_runs: int
) -> tuple[Timing, Timing, Timing]:
    evaluate(spec, table, use_cache=False)  # warm-up: per-value memos, regexps
    _verify(
        f"{count_expressions(spec)}-expression spec",
        evaluate(spec, table, sample, implementation="reference"),
        evaluate(spec, table, sample, use_cache=False),
    )
    ref_ns = _time_calls(lambda: evaluate(spec, table, sample, implementation="reference"), repeat)
    vectorized = Timing.of(_time_calls(lambda: evaluate(spec, table, use_cache=False), fast_runs))
    evaluate(spec, table)
    cached = Timing.of(_time_calls(lambda: evaluate(spec, table), fast_runs))
    return Timing.of(ref_ns, scale=scale, sample_nodes=len(sample)), vectorized, cached


def measure_spec_sizes(
    n_nodes: int,
    sizes: Sequence[int] = SPEC_SIZES,
    *,
    repeat: int,
    seed: int = 0,
    reference_sample: int = 500,
    out: TextIO = sys.stdout,
    progress: Steps = NO_PROGRESS,
) -> list[SpecSizeResult]:
    """Vectorized (warm, no result cache) and cached calls for generated specs of each size, next to
    the reference timed on ``reference_sample`` evenly spaced nodes and scaled; the two agree on the
    sample before anything is timed."""
    fast_runs = max(repeat, MIN_FAST_RUNS)
    progress.note("building the table")
    table = table_from_nodefeatures(generate_cluster(n_nodes, seed))
    names = table.node_names()
    step = max(1, len(names) // reference_sample)
    sample = list(names[::step])
    scale = len(names) / len(sample)
    say(out, f"### Spec sizes at {n_nodes:,} nodes (generated specs, benchmarks/specgen.py, seed {seed})")
    results: list[SpecSizeResult] = []
    for n in sizes:
        progress.note(f"{n}-expression spec")
        spec = generate_spec(n, seed)
        reference, vectorized, cached = _time_spec(spec, table, sample, scale, repeat, fast_runs)
        r = SpecSizeResult(n, len(spec.compatibilities), n_nodes, spec.digest, reference, vectorized, cached)
        results.append(r)
        say(
            out,
            f"- {n} expressions in {r.sets} sets: reference {fmt_ms(reference.median_ms)} ms (sampled), "
            f"vectorized {fmt_ms(vectorized.median_ms)} ms, cached {fmt_ms(cached.median_ms)} ms; "
            f"{_times(r.vectorized_speedup)}",
        )
    say(out)
    return results


def render_spec_sizes(results: Sequence[SpecSizeResult]) -> str:
    if not results:
        return ""
    r0 = results[0]
    lines = [
        f"Generated specs at {r0.nodes:,} nodes (reference timed on {r0.reference.sample_nodes:,} nodes and "
        f"scaled ×{r0.reference.scale:.2f}):",
        "",
        "| expressions | sets | reference ms | vectorized ms (p99) | cached ms | vectorized speed-up (×) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.expressions} | {r.sets} | {fmt_ms(r.reference.median_ms)} | "
            f"{fmt_ms(r.vectorized.median_ms)} ({fmt_ms(r.vectorized.p99_ms)}) | "
            f"{fmt_ms(r.cached.median_ms)} | {_times(r.vectorized_speedup)} |"
        )
    return "\n".join(lines)


def run_scenario(ctx: RunContext) -> ScenarioResult:
    """The harness's ``matcher`` scenario: every node count, then the spec-size sweep."""
    repeat = QUICK_REPEAT if ctx.quick else DEFAULT_REPEAT
    report = run_benchmark(ctx.nodes, repeat=repeat, seed=ctx.seed, out=ctx.log, progress=ctx.progress)
    sweep_nodes = min(SPEC_SWEEP_NODES, max(ctx.nodes))
    ctx.progress.step(f"spec sizes at {sweep_nodes:,} nodes")
    sweep = measure_spec_sizes(sweep_nodes, repeat=repeat, seed=ctx.seed, out=ctx.log, progress=ctx.progress)
    rows: list[Row] = []
    notes: list[str] = [
        f"Spec: {Path(report.spec_path).name}, {report.spec_sets} sets, "
        f"{report.spec_expressions} expressions. vectorized: warm table, result cache off; cached: a "
        "repeated call; update + evaluate: one node's set_node, then a fresh evaluation."
    ]
    for r in report.sizes:
        ref = r.reference
        for series, t in (
            ("vectorized", r.vectorized),
            ("cached", r.cached),
            ("update + evaluate", r.update_eval),
        ):
            rows.append(
                Row.latency(
                    series,
                    r.nodes,
                    t.median_ms,
                    t.p99_ms,
                    "reference",
                    ref.median_ms,
                    ref.p99_ms,
                    t.runs,
                    {"speedup": ref.median_ms / t.median_ms},
                )
            )
        if ref.sample_nodes is not None:
            notes.append(
                f"{r.nodes:,} nodes: reference timed on {ref.sample_nodes:,} evenly spaced nodes and scaled "
                f"×{ref.scale:.2f} (one full pass for the check took {fmt_ms(r.reference_full_pass_ms)} ms)."
            )
    for sr in sweep:
        rows.append(
            dataclasses.replace(
                Row.latency(
                    f"vectorized, {sr.expressions}-expression spec",
                    sr.nodes,
                    sr.vectorized.median_ms,
                    sr.vectorized.p99_ms,
                    "reference, same spec (sampled)",
                    sr.reference.median_ms,
                    sr.reference.p99_ms,
                    sr.vectorized.runs,
                    {"expressions": sr.expressions, "speedup": sr.vectorized_speedup},
                ),
                plotted=False,
            )
        )
    notes.append("Generated specs (benchmarks/specgen.py) at one node count: not plotted.")
    shape = cluster_shape(generate_cluster(min(1000, max(ctx.nodes)), ctx.seed))
    return ScenarioResult(
        rows=rows,
        params={
            "repeat": repeat,
            "spec": report.spec_path,
            "spec_expressions": report.spec_expressions,
            "spec_sizes": list(SPEC_SIZES),
            "spec_sweep_nodes": sweep_nodes,
            "cluster_shape": shape,
        },
        detail={
            "sizes": report.as_json()["sizes"],
            "spec_sizes": [
                {**dataclasses.asdict(sr), "vectorized_speedup": sr.vectorized_speedup} for sr in sweep
            ],
        },
        markdown=render_markdown(report) + "\n\n" + render_spec_sizes(sweep),
        notes=notes,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.matcher",
        description="Benchmark the reference, vectorized, cached and incremental matcher paths.",
    )
    p.add_argument("--nodes", type=parse_sizes, default=None, help="comma-separated cluster sizes")
    p.add_argument("--repeat", type=int, default=None, help=f"reference runs (default {DEFAULT_REPEAT})")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every number as JSON")
    p.add_argument(
        "--quick", action="store_true", help=f"smoke run: {QUICK_SIZES} nodes, repeat {QUICK_REPEAT}"
    )
    p.add_argument("--seed", type=int, default=0, help="cluster generator seed")
    p.add_argument(
        "--reference-max-nodes",
        type=int,
        default=5000,
        help="above this size the reference is timed on a sample and scaled (default 5000)",
    )
    p.add_argument("--reference-sample", type=int, default=2000, help="sample size for the above")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    sizes: tuple[int, ...] = args.nodes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    repeat: int = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    try:
        report = run_benchmark(
            sizes,
            repeat=repeat,
            seed=args.seed,
            reference_max_nodes=args.reference_max_nodes,
            reference_sample=args.reference_sample,
            out=stream,
        )
    except BenchmarkMismatch as exc:
        print(
            f"\nABORT: vectorized and reference matchers disagree — no numbers reported.\n{exc}",
            file=sys.stderr,
        )
        return 1
    finish(stream, render_markdown(report), args.json, report.as_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
