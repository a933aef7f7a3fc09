"""The benchmark harness: a registry of scenarios, one way to run them, one shape of results.

Every scenario measures something against its baseline *in the same run* (the reference matcher, a
no-op aiohttp floor, the same server without churn, the interpreter without a table, the warm call),
so a reader can judge a number without trusting the machine it came from. A scenario module offers
``run_scenario(ctx) -> ScenarioResult``; its rows all have the same columns:

    series, nodes, p50/p99 (ms), baseline name, baseline p50/p99 (ms), ratio, samples, extra

``ratio`` is p50 ÷ baseline p50 (for the memory scenario: RSS ÷ the floor's RSS), ``extra`` holds a
scenario's own numbers (requests/s, MiB, updates/s). The harness writes, per scenario,
``<out>/<scenario>.json`` (rows, parameters, machine, the scenario's full detail) and
``<out>/<scenario>.md`` (its log and tables), and rebuilds ``<out>/summary.md`` from every scenario's
JSON present in ``<out>`` (so re-running one scenario keeps the others' rows; each says when it ran).

``<out>`` is ``benchmarks/out/`` unless ``--out`` says otherwise: a git-ignored folder, so a run never
rewrites the published figures in ``benchmarks/results/`` (``PUBLISHED``), which the docs cite. To
publish a run, copy its files there (or run with ``--out benchmarks/results``) and commit them.

Nothing here judges a time: goals are printed as measured, met or not, for a human to weigh with the
machine's load (also recorded).
"""

from __future__ import annotations

import datetime as dt
import importlib
import io
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

import orjson

from benchmarks.progress import Progress, Steps
from benchmarks.report import fmt_ms, machine_facts

__all__ = [
    "DEFAULT_OUT",
    "PUBLISHED",
    "SCENARIOS",
    "Row",
    "RunContext",
    "Scenario",
    "ScenarioResult",
    "load_results",
    "render_summary",
    "run",
]

SCHEMA = 1
#: where a run writes unless told otherwise: git-ignored (.gitignore), never the published figures
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
#: the published figures (tracked; the performance and sizing docs cite them)
PUBLISHED = Path(__file__).resolve().parent / "results"
Metric = Literal["latency", "memory"]


# ---------------------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True, slots=True)
class Row:
    """One measured point: a series at a node count, next to its baseline."""

    series: str
    nodes: int
    p50_ms: float | None
    p99_ms: float | None
    baseline: str
    baseline_p50_ms: float | None
    baseline_p99_ms: float | None
    ratio: float | None
    samples: int
    extra: dict[str, float] = field(default_factory=dict)
    #: False for points off the node-count axis (the spec-size sweep): in the tables, not the plot
    plotted: bool = True

    @classmethod
    def latency(
        cls,
        series: str,
        nodes: int,
        p50_ms: float,
        p99_ms: float,
        baseline: str,
        baseline_p50_ms: float,
        baseline_p99_ms: float,
        samples: int,
        extra: dict[str, float] | None = None,
    ) -> Row:
        return cls(
            series=series,
            nodes=nodes,
            p50_ms=p50_ms,
            p99_ms=p99_ms,
            baseline=baseline,
            baseline_p50_ms=baseline_p50_ms,
            baseline_p99_ms=baseline_p99_ms,
            ratio=p50_ms / baseline_p50_ms if baseline_p50_ms > 0 else None,
            samples=samples,
            extra=dict(extra or {}),
        )


@dataclass(slots=True)
class ScenarioResult:
    rows: list[Row]
    params: dict[str, Any]
    detail: dict[str, Any]
    markdown: str
    notes: list[str] = field(default_factory=list)


class _Runner(Protocol):
    def __call__(self, ctx: RunContext) -> ScenarioResult: ...


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    module: str  # holds ``run_scenario(ctx)``
    default_nodes: tuple[int, ...]
    quick_nodes: tuple[int, ...]
    nodes_mean: str  # what the node count is in this scenario
    baseline: str  # what it is compared with
    metric: Metric = "latency"
    extra_steps: int = 0  # progress steps besides one per node count

    def runner(self) -> _Runner:
        fn: _Runner = importlib.import_module(self.module).run_scenario
        return fn

    def steps(self, nodes: Sequence[int]) -> int:
        return len(nodes) + self.extra_steps


#: In the order they run. Node counts: see each ``nodes_mean``.
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="matcher",
            title="Matcher: reference vs vectorized vs cached",
            module="benchmarks.matcher",
            default_nodes=(100, 1000, 5000, 20000, 50000),
            quick_nodes=(50, 200),
            nodes_mean="cluster size (every node evaluated)",
            baseline="the node-by-node reference evaluator (sampled and scaled above 5,000 nodes)",
            extra_steps=1,
        ),
        Scenario(
            name="http",
            title="HTTP: /filter and /prioritize vs a no-op aiohttp floor",
            module="benchmarks.http",
            default_nodes=(500, 5000, 50000),
            quick_nodes=(20, 60),
            nodes_mean="candidate node names per request (plus a fixed set of full Node objects)",
            baseline="a no-op aiohttp handler decoding the same payload and answering the same shape",
            extra_steps=2,  # the full Node objects; filter + prioritize per pod
        ),
        Scenario(
            name="throughput",
            title="Throughput: concurrent clients on loopback",
            module="benchmarks.throughput",
            default_nodes=(500, 5000),
            quick_nodes=(30,),
            nodes_mean="node names per /filter request (the table has as many nodes)",
            baseline="the no-op floor under the same load",
        ),
        Scenario(
            name="churn",
            title="Churn: NodeFeature updates (1% of nodes per second) while serving",
            module="benchmarks.churn",
            default_nodes=(1000, 5000, 50000),
            quick_nodes=(100,),
            nodes_mean="cluster size; every /filter request names every node",
            baseline="the same server with no updates",
        ),
        Scenario(
            name="memory",
            title="Memory: RSS of a fresh process holding the feature table",
            module="benchmarks.memory",
            default_nodes=(1000, 5000, 20000, 50000),
            quick_nodes=(100, 300),
            nodes_mean="cluster size",
            baseline="the same process with the same imports and no nodes",
            metric="memory",
            extra_steps=1,
        ),
        Scenario(
            name="cold",
            title="Cold path: first /filter of a new image against a loopback registry",
            module="benchmarks.cold",
            default_nodes=(500,),
            quick_nodes=(50,),
            nodes_mean="node names per /filter request (table: 5,000 nodes, 200 quick, or more if asked)",
            baseline="the same request once the spec is cached (warm)",
        ),
        Scenario(
            name="startup",
            title="Startup: serve to /readyz from files and from the API server",
            module="benchmarks.startup",
            default_nodes=(1000, 5000),
            quick_nodes=(50,),
            nodes_mean="NodeFeatures (one per node) loaded before /readyz",
            baseline="the same serve with no NodeFeatures (RSS: the memory scenario's streamed child)",
            extra_steps=1,  # the floors
        ),
    )
}


# ---------------------------------------------------------------------------------------------------
# Running.


@dataclass(slots=True)
class RunContext:
    """What a scenario gets: its node counts, the mode, where to log, the progress bar."""

    scenario: str
    nodes: tuple[int, ...]
    quick: bool
    seed: int
    log: TextIO
    progress: Steps  # labels are prefixed with the scenario's name


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _command(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return "python -m benchmarks " + shlex.join(args)


def _scenario_markdown(doc: dict[str, Any], log: str, markdown: str) -> str:
    m = doc["machine"]
    lines = [
        f"# {doc['title']}",
        "",
        f"- command: `{doc['command']}`"
        + (" (quick: smoke sizes, numbers mean nothing)" if doc["quick"] else ""),
        f"- started {doc['started']}, took {doc['duration_s']:.1f} s; load average before "
        f"{doc['load_before']}, after {doc['load_after']}",
        f"- machine: {m['cpu']}, nproc {m['nproc']}, {m['platform']}; python {m['python']}, numpy "
        f"{m['numpy']}",
        f"- node counts ({doc['nodes_mean']}): {', '.join(f'{n:,}' for n in doc['nodes'])}",
        f"- baseline: {doc['baseline_text']}",
        "",
        "## Log",
        "",
        log.rstrip(),
        "",
        "## Results",
        "",
        markdown.rstrip(),
        "",
    ]
    return "\n".join(lines)


def run_one(
    scenario: Scenario,
    nodes: tuple[int, ...],
    *,
    quick: bool,
    seed: int,
    out_dir: Path,
    progress: Progress,
    command: str,
) -> dict[str, Any]:
    """Run one scenario and write its JSON and Markdown. Returns the JSON document."""
    log = io.StringIO()
    ctx = RunContext(scenario.name, nodes, quick, seed, log, progress.scoped(scenario.name))
    started, load_before, t0 = _now(), _load(), time.perf_counter()
    result = scenario.runner()(ctx)
    duration = time.perf_counter() - t0
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "scenario": scenario.name,
        "title": scenario.title,
        "metric": scenario.metric,
        "nodes_mean": scenario.nodes_mean,
        "baseline_text": scenario.baseline,
        "command": command,
        "quick": quick,
        "seed": seed,
        "nodes": list(nodes),
        "started": started,
        "duration_s": duration,
        "load_before": load_before,
        "load_after": _load(),
        "machine": machine_facts(),
        "params": result.params,
        "rows": [asdict(r) for r in result.rows],
        "notes": result.notes,
        "detail": result.detail,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{scenario.name}.json").write_bytes(
        orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    (out_dir / f"{scenario.name}.md").write_text(_scenario_markdown(doc, log.getvalue(), result.markdown))
    return doc


def run(
    names: Sequence[str],
    *,
    nodes: tuple[int, ...] | None = None,
    quick: bool = False,
    seed: int = 0,
    out_dir: Path | None = None,
    progress_stream: TextIO | None = None,
    tty: bool | None = None,
    argv: Sequence[str] | None = None,
    err: TextIO | None = None,
) -> tuple[list[str], list[str]]:
    """Run the named scenarios in registry order; returns (succeeded, failed). A failing scenario is
    reported on ``err`` and the others still run; its previous results (if any) are left alone.
    ``out_dir`` defaults to ``DEFAULT_OUT``, read at call time."""
    if out_dir is None:
        out_dir = DEFAULT_OUT
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    chosen = [s for s in SCENARIOS.values() if s.name in names]
    plan = [(s, nodes or (s.quick_nodes if quick else s.default_nodes)) for s in chosen]
    progress = Progress(sum(s.steps(n) for s, n in plan), progress_stream, tty=tty)
    errors = err if err is not None else sys.stderr
    command = _command(argv)
    ok: list[str] = []
    failed: list[str] = []
    for scenario, sizes in plan:
        try:
            run_one(
                scenario, sizes, quick=quick, seed=seed, out_dir=out_dir, progress=progress, command=command
            )
            ok.append(scenario.name)
        except Exception:
            failed.append(scenario.name)
            progress.note("failed")
            print(f"\nscenario {scenario.name} failed:\n{traceback.format_exc()}", file=errors, flush=True)
    progress.finish("failed: " + ", ".join(failed) if failed else "done")
    write_summary(out_dir)
    return ok, failed


# ---------------------------------------------------------------------------------------------------
# Summary.


def load_results(directory: Path) -> list[dict[str, Any]]:
    """Every scenario's JSON document in ``directory``, in registry order (unknown files skipped)."""
    docs: list[dict[str, Any]] = []
    for name in SCENARIOS:
        path = directory / f"{name}.json"
        if not path.is_file():
            continue
        doc = orjson.loads(path.read_bytes())
        if isinstance(doc, dict) and doc.get("schema") == SCHEMA and doc.get("scenario") == name:
            docs.append(doc)
    return docs


def _ms(x: float | None) -> str:
    return "–" if x is None else fmt_ms(x)


def format_ratio(r: float | None) -> str:
    """``6.01×``, or ``1/1,293`` for a series faster than its baseline."""
    if r is None or r <= 0:
        return "–"
    if r >= 1:
        return f"{r:,.2f}×" if r < 100 else f"{r:,.0f}×"
    inv = 1 / r
    return f"1/{inv:.2f}" if inv < 10 else f"1/{inv:,.0f}"


_EXTRA_FORMAT: dict[str, tuple[str, str]] = {
    "req_per_s": ("req/s", "{:,.0f}"),
    "baseline_req_per_s": ("floor req/s", "{:,.0f}"),
    "rss_mib": ("RSS MiB", "{:,.0f}"),
    "baseline_rss_mib": ("floor MiB", "{:,.0f}"),
    "mib_per_1000_nodes": ("MiB/1k nodes", "{:,.1f}"),
    "rss_after_filter_mib": ("after filter MiB", "{:,.0f}"),
    "peak_rss_mib": ("peak MiB", "{:,.0f}"),
    "updates_per_s": ("updates/s", "{:,.1f}"),
    "target_updates_per_s": ("target/s", "{:,.1f}"),
    "speedup": ("speed-up", "{:,.0f}×"),
    "clients": ("clients", "{:,.0f}"),
    "registry_requests": ("registry req", "{:,.0f}"),
    "expressions": ("expressions", "{:,.0f}"),
    "cpu_ms": ("CPU ms", "{:,.2f}"),
    "floor_cpu_ms": ("floor CPU ms", "{:,.2f}"),
    "cpu_ratio": ("CPU ratio", "{:,.2f}×"),
}


def format_extra(extra: dict[str, float | None]) -> str:
    parts = []
    for key, value in extra.items():
        label, fmt = _EXTRA_FORMAT.get(key, (key, "{:,.3g}"))
        parts.append(f"{label} {'–' if value is None else fmt.format(value)}")  # None: JSON's null (inf)
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Goal:
    text: str
    scenario: str
    series: str
    nodes: int
    measure: Callable[[dict[str, Any]], float | None]
    limit: float
    unit: str
    at_least: bool = False  # the measure must reach the limit instead of staying under it


def _field(name: str) -> Callable[[dict[str, Any]], float | None]:
    def get(row: dict[str, Any]) -> float | None:
        value = row.get(name)
        if value is None:
            value = row.get("extra", {}).get(name)
        return None if value is None else float(value)

    return get


#: The project's performance goals, read off the rows (for a quiet machine; printed, never asserted).
#: The ratios are p50 against the baseline measured in the same run (the no-op floor, the quiet server).
GOALS: tuple[Goal, ...] = (
    Goal(
        "500 names, filter ≤ 1.3× the no-op floor", "http", "filter (names)", 500, _field("ratio"), 1.3, "×"
    ),
    Goal(
        "500 names, prioritize ≤ 1.3× the no-op floor",
        "http",
        "prioritize (names)",
        500,
        _field("ratio"),
        1.3,
        "×",
    ),
    Goal(
        "5,000 names, filter ≤ 1.5× the no-op floor",
        "http",
        "filter (names)",
        5000,
        _field("ratio"),
        1.5,
        "×",
    ),
    Goal(
        "5,000 names, prioritize ≤ 1.5× the no-op floor",
        "http",
        "prioritize (names)",
        5000,
        _field("ratio"),
        1.5,
        "×",
    ),
    Goal("5,000 names, filter P99 ≤ 3 ms", "http", "filter (names)", 5000, _field("p99_ms"), 3.0, "ms"),
    Goal(
        "50,000 names, filter ≤ 2× the no-op floor",
        "http",
        "filter (names)",
        50000,
        _field("ratio"),
        2.0,
        "×",
    ),
    Goal("50,000 names, filter P99 ≤ 20 ms", "http", "filter (names)", 50000, _field("p99_ms"), 20.0, "ms"),
    Goal(
        "per pod (filter 500 names + prioritize) ≤ 1.3× the no-op floor",
        "http",
        "filter + prioritize per pod (names)",
        500,
        _field("ratio"),
        1.3,
        "×",
    ),
    Goal(
        "per pod, CPU ≤ 2× the no-op floor's",
        "http",
        "filter + prioritize per pod (names)",
        500,
        _field("cpu_ratio"),
        2.0,
        "×",
    ),
    Goal(
        "startup, 5,000 NodeFeature files to /readyz ≤ 5 s",
        "startup",
        "files-json: serve to /readyz",
        5000,
        _field("p50_ms"),
        5000.0,
        "ms",
    ),
    Goal(
        "startup, 5,000 NodeFeatures from the API server to /readyz ≤ 10 s",
        "startup",
        "kube: serve to /readyz",
        5000,
        _field("p50_ms"),
        10000.0,
        "ms",
    ),
    Goal(
        "startup from the API server, RSS at ready ≤ 1.3× streamed (5,000)",
        "startup",
        "kube: serve to /readyz",
        5000,
        _field("rss_over_streamed"),
        1.3,
        "×",
    ),
    Goal(
        "churn 1%/s at 50,000 nodes, filter ≤ 1.2× the quiet server",
        "churn",
        "filter during churn (1%/s)",
        50000,
        _field("ratio"),
        1.2,
        "×",
    ),
    Goal("50,000 nodes, RSS ≤ 1 GiB", "memory", "RSS, table loaded", 50000, _field("rss_mib"), 1024.0, "MiB"),
    Goal(
        "vectorized ≥ 100× the reference at 5,000 nodes",
        "matcher",
        "vectorized",
        5000,
        _field("speedup"),
        100.0,
        "×",
        at_least=True,
    ),
)


def _goal_lines(docs: list[dict[str, Any]]) -> list[str]:
    by_name = {d["scenario"]: d for d in docs}
    lines = ["| goal | measured | verdict |", "| --- | ---: | --- |"]
    for g in GOALS:
        doc = by_name.get(g.scenario)
        row = None
        if doc is not None:
            row = next((r for r in doc["rows"] if r["series"] == g.series and r["nodes"] == g.nodes), None)
        value = g.measure(row) if row is not None else None
        if value is None:
            lines.append(f"| {g.text} | – | not measured (run `{g.scenario}` at {g.nodes:,}) |")
            continue
        met = value >= g.limit if g.at_least else value <= g.limit
        shown = f"{value:,.2f} {g.unit}" if g.unit != "×" else f"{value:,.2f}×"
        quick = " (quick run)" if doc is not None and doc["quick"] else ""
        lines.append(f"| {g.text} | {shown} | {'met' if met else 'NOT met'}{quick} |")
    return lines


def render_summary(docs: list[dict[str, Any]]) -> str:
    lines = ["# Benchmark summary", ""]
    if not docs:
        return "\n".join([*lines, "No results yet: run `python -m benchmarks run`.", ""])
    m = docs[-1]["machine"]
    lines += [
        f"Machine: {m['cpu']}, nproc {m['nproc']} (cpu_count {m['cpu_count']}), {m['platform']}; "
        f"python {m['python']}, numpy {m['numpy']}, google-re2 {m['google-re2']}.",
        "",
        "Latencies in ms per call or request; *ratio* is p50 ÷ baseline p50 (`1/N`: N times faster than "
        "the baseline; memory: RSS ÷ the floor's RSS). Every baseline was measured in the same run.",
        "",
        "| scenario | series | nodes | p50 ms | p99 ms | baseline | baseline p50 ms | baseline p99 ms "
        "| ratio | extra |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for doc in docs:
        for r in doc["rows"]:
            lines.append(
                f"| {doc['scenario']} | {r['series']} | {r['nodes']:,} | {_ms(r['p50_ms'])} "
                f"| {_ms(r['p99_ms'])} | {r['baseline']} | {_ms(r['baseline_p50_ms'])} "
                f"| {_ms(r['baseline_p99_ms'])} "
                f"| {format_ratio(r['ratio'])} | {format_extra(r['extra'])} |"
            )
    lines += ["", "## Goals", "", *_goal_lines(docs), "", "## Runs", ""]
    for doc in docs:
        quick = " — quick (smoke sizes: the numbers mean nothing)" if doc["quick"] else ""
        lines.append(
            f"- **{doc['scenario']}** ({doc['title']}): `{doc['command']}`, {doc['started']}, "
            f"{doc['duration_s']:.0f} s, load average {doc['load_before']} → {doc['load_after']}{quick}. "
            f"Nodes: {doc['nodes_mean']}. Baseline: {doc['baseline_text']}. Details: `{doc['scenario']}.md`."
        )
        lines.extend(f"  - {note}" for note in doc["notes"])
    lines.append("")
    return "\n".join(lines)


def write_summary(directory: Path) -> Path:
    path = directory / "summary.md"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(render_summary(load_results(directory)))
    return path
