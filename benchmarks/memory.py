"""Memory: the resident set of a fresh process that holds the feature table as ``serve`` does.

Why: the extender keeps every node's features in memory twice over (the NodeFeature objects it was
given, merged per node, and the columnar table the matcher reads); at 50,000 nodes that has to fit a
sensible container limit (the goal: at most 1 GiB resident at 50,000 nodes).

Method: for each size, a fresh child process (``python -m benchmarks.memory --child N``) imports what
serve imports, then fills :class:`extender.sources.kube.KubeFeatures` (serve's Kubernetes source) from
a transport that streams N generated NodeFeatures as ``ADDED`` watch events, each decoded from JSON
bytes as the real transport decodes a watch line (so strings are the decoder's, not the generator's
shared constants, and no raw list of all objects is held at once). After a ``gc.collect()`` it reads
``VmRSS`` (and ``VmHWM``, the peak) from ``/proc/self/status``, serves one ``/filter`` naming every
node on 127.0.0.1 and reads them again. The floor is the same child with no nodes: same imports, same
app, an empty table. Per 1,000 nodes = (RSS - floor) / N × 1,000.

Not measured here: serve's *initial list*, which parses each page of 500 as it arrives (the raw page
is dropped before the next is fetched); the ``startup`` scenario measures it, against this figure.

Run: ``python -m benchmarks.memory [--nodes 1000,5000,20000,50000] [--json PATH] [--quick]``, or as the
harness's ``memory`` scenario. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import orjson

from benchmarks.cluster import iter_cluster
from benchmarks.harness import Row, RunContext, ScenarioResult
from benchmarks.http import BENCH_IMAGE, JSON_HEADERS, bench_pod, check_filter, names_body, start_app
from benchmarks.matcher import load_bench_spec
from benchmarks.progress import NO_PROGRESS, Steps
from benchmarks.report import finish, machine_facts, parse_sizes, say
from extender.http.app import AppSettings, build_app
from extender.sources.base import StaticSpecs
from extender.sources.kube import KubeFeatures, ListResult, WatchEvent
from extender.sources.specs import SharedLookups

DEFAULT_NODES: tuple[int, ...] = (1000, 5000, 20000, 50000)
QUICK_NODES: tuple[int, ...] = (100, 300)
ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_S = 3600.0
KIB_PER_MIB = 1024


def proc_status_kib(*keys: str) -> dict[str, int]:
    """``VmRSS``, ``VmHWM``, ... of this process, in KiB."""
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in keys:
                out[key] = int(value.split()[0])
    return out


# ---------------------------------------------------------------------------------------------------
# The child.


class StreamTransport:
    """A KubeTransport whose list is empty and whose watch delivers ``n`` generated NodeFeatures as
    ADDED events, each decoded from its JSON bytes, then nothing (until cancelled)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.done = asyncio.Event()

    async def list(self, path: str, *, field_selector: str = "") -> ListResult:
        return ListResult([], "1")

    async def watch(
        self, path: str, resource_version: str, *, field_selector: str = ""
    ) -> AsyncIterator[WatchEvent]:
        if not self.done.is_set():
            for obj in iter_cluster(self.n, self.seed):
                event: WatchEvent = orjson.loads(orjson.dumps({"type": "ADDED", "object": obj}))
                del obj
                yield event
            self.done.set()
        await asyncio.Event().wait()  # a watch that stays open
        return


async def _child(n: int, seed: int) -> dict[str, Any]:
    gc.collect()
    imports = proc_status_kib("VmRSS")["VmRSS"]
    transport = StreamTransport(n, seed)
    kube = KubeFeatures(transport, watch_nodes=False)
    t0 = time.perf_counter()
    watch = asyncio.create_task(kube.run())
    await transport.done.wait()  # set after the reflector asked for the event after the last: all applied
    build_s = time.perf_counter() - t0
    gc.collect()
    loaded = proc_status_kib("VmRSS", "VmHWM")
    spec = load_bench_spec()
    runner, base = await start_app(
        build_app(kube, SharedLookups(StaticSpecs({BENCH_IMAGE: spec})), AppSettings())
    )
    try:
        names = list(kube.table.node_names())
        async with aiohttp.ClientSession() as session:
            body = names_body(bench_pod(), names)
            async with session.post(f"{base}/filter", data=body, headers=JSON_HEADERS) as resp:
                payload = await resp.read()
        passed, failed = check_filter("extender", payload, "names", names, None)
        del payload, body
    finally:
        await runner.cleanup()
    gc.collect()
    after = proc_status_kib("VmRSS", "VmHWM")
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)
    return {
        "nodes": n,
        "table_nodes": len(kube.table),
        "build_s": build_s,
        "rss_imports_kib": imports,
        "rss_table_kib": loaded["VmRSS"],
        "peak_after_load_kib": loaded["VmHWM"],
        "rss_after_filter_kib": after["VmRSS"],
        "peak_kib": after["VmHWM"],
        "passed": passed,
        "failed": failed,
    }


# ---------------------------------------------------------------------------------------------------
# The parent.


@dataclass(frozen=True, slots=True)
class Sample:
    nodes: int
    build_s: float
    rss_imports_mib: float
    rss_mib: float
    rss_after_filter_mib: float
    peak_mib: float


def measure(n: int, seed: int = 0) -> Sample:
    """Run the child for ``n`` nodes (0: the floor) and read its report."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--child", str(n), "--seed", str(seed)],
        cwd=ROOT,
        capture_output=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"memory child for {n} nodes failed ({proc.returncode}): "
            f"{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    doc = orjson.loads(lines[-1])
    if doc["table_nodes"] != n:
        raise RuntimeError(f"memory child loaded {doc['table_nodes']} nodes, not {n}")
    return Sample(
        nodes=n,
        build_s=float(doc["build_s"]),
        rss_imports_mib=doc["rss_imports_kib"] / KIB_PER_MIB,
        rss_mib=doc["rss_table_kib"] / KIB_PER_MIB,
        rss_after_filter_mib=doc["rss_after_filter_kib"] / KIB_PER_MIB,
        peak_mib=doc["peak_kib"] / KIB_PER_MIB,
    )


def run_benchmark(
    sizes: Sequence[int] = DEFAULT_NODES,
    *,
    seed: int = 0,
    out: TextIO = sys.stdout,
    progress: Steps = NO_PROGRESS,
) -> tuple[Sample, list[Sample]]:
    """(floor, one sample per size)."""
    if not sizes or min(sizes) < 1:
        raise ValueError("sizes must be positive")
    say(out, "## Memory benchmark")
    say(out)
    progress.step("floor (no nodes)")
    floor = measure(0, seed)
    say(
        out,
        f"- floor (same imports and app, no nodes): RSS {floor.rss_mib:,.1f} MiB, after a /filter "
        f"{floor.rss_after_filter_mib:,.1f} MiB",
    )
    samples = []
    for n in sizes:
        progress.step(f"{n:,} nodes")
        progress.note("child process loading the table")
        s = measure(n, seed)
        samples.append(s)
        say(
            out,
            f"- {n:,} nodes: loaded in {s.build_s:,.1f} s; RSS {s.rss_mib:,.1f} MiB "
            f"({per_thousand(s, floor):,.1f} MiB per 1,000 nodes above the floor), after a /filter of every "
            f"node {s.rss_after_filter_mib:,.1f} MiB, peak {s.peak_mib:,.1f} MiB",
        )
    say(out)
    return floor, samples


def per_thousand(s: Sample, floor: Sample) -> float:
    return (s.rss_mib - floor.rss_mib) / s.nodes * 1000


def render_markdown(floor: Sample, samples: Sequence[Sample]) -> str:
    lines = [
        "| nodes | RSS MiB | above floor MiB | MiB per 1,000 nodes | after /filter MiB | peak MiB | load s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| 0 (floor) | {floor.rss_mib:,.1f} | – | – | {floor.rss_after_filter_mib:,.1f} | "
        f"{floor.peak_mib:,.1f} | – |",
    ]
    for s in samples:
        lines.append(
            f"| {s.nodes:,} | {s.rss_mib:,.1f} | {s.rss_mib - floor.rss_mib:,.1f} | "
            f"{per_thousand(s, floor):,.1f} | {s.rss_after_filter_mib:,.1f} | {s.peak_mib:,.1f} | "
            f"{s.build_s:,.1f} |"
        )
    return "\n".join(lines)


def run_scenario(ctx: RunContext) -> ScenarioResult:
    floor, samples = run_benchmark(ctx.nodes, seed=ctx.seed, out=ctx.log, progress=ctx.progress)
    rows = [
        Row(
            series="RSS, table loaded",
            nodes=s.nodes,
            p50_ms=None,
            p99_ms=None,
            baseline="interpreter, same imports, no nodes",
            baseline_p50_ms=None,
            baseline_p99_ms=None,
            ratio=s.rss_mib / floor.rss_mib,
            samples=1,
            extra={
                "rss_mib": s.rss_mib,
                "baseline_rss_mib": floor.rss_mib,
                "mib_per_1000_nodes": per_thousand(s, floor),
                "rss_after_filter_mib": s.rss_after_filter_mib,
                "peak_rss_mib": s.peak_mib,
            },
        )
        for s in samples
    ]
    return ScenarioResult(
        rows=rows,
        params={"children": len(samples) + 1},
        detail={"floor": dataclasses.asdict(floor), "sizes": [dataclasses.asdict(s) for s in samples]},
        markdown=render_markdown(floor, samples),
        notes=[
            "One fresh process per size; features streamed through KubeFeatures as decoded watch events "
            "(serve's path, without the initial list's transient copy of every object). RSS after "
            "gc.collect(); peak is VmHWM."
        ],
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=parse_sizes, default=None, help="cluster sizes")
    p.add_argument("--json", type=Path, default=None, metavar="PATH")
    p.add_argument("--quick", action="store_true", help="smoke run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", type=int, default=None, metavar="N", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    stream = out if out is not None else sys.stdout
    if args.child is not None:
        stream.write(orjson.dumps(asyncio.run(_child(args.child, args.seed))).decode() + "\n")
        return 0
    sizes = args.nodes or (QUICK_NODES if args.quick else DEFAULT_NODES)
    floor, samples = run_benchmark(sizes, seed=args.seed, out=stream)
    doc = {
        "machine": machine_facts(),
        "floor": dataclasses.asdict(floor),
        "sizes": [dataclasses.asdict(s) for s in samples],
    }
    finish(stream, render_markdown(floor, samples), args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
