"""Churn: /filter latency while NodeFeatures change (1% of the nodes per second), against quiet.

Why: in a live cluster nfd-worker republishes features (kernel upgrades, drivers loaded and unloaded,
NICs renamed) and every change reaches the extender as a watch event. Each one is parsed, merged and
written into the feature table on the event loop that also answers the scheduler, and it moves the
table's generation, so the next /filter brings the cached result up to date for the changed nodes
(extender/match/evaluate.py). The question is what filter
latency looks like under a steady trickle of such updates, and whether the updates keep up.

Method: the features come from :class:`extender.sources.kube.KubeFeatures`, the source ``serve``
runs against the API server, over a transport that lists the generated cluster and then replays watch
events from a queue, each decoded from JSON bytes as the real transport decodes a watch line (so the
update path is exactly serve's: decode, parse, merge, ``FeatureTable.set_node``). The extender
(``build_app``, as in :mod:`benchmarks.http`) runs in this process on 127.0.0.1, and one client sends
/filter requests naming every node, one after another. Quiet and churn windows of about a second
alternate, ``--seconds`` of each in all (churn: a producer task queues ``MODIFIED`` events at 1% of the
nodes per second, in 50 ms ticks: a kernel upgrade and two modules toggled, then the node's original
object back, over a pool of victim nodes); after a churn window the queue drains and one untimed
request brings the cached result up to date before the next quiet window. Alternating, not one long
phase each, because the shared machines this runs on change speed by a third from one minute to the
next: both sides of the ratio see the same drift. Reported: filter p50/p99 during churn vs quiet, and
the updates applied per second (the table's generation moves once per applied event) vs the target.

Run: ``python -m benchmarks.churn [--nodes 1000,5000] [--seconds 10] [--json PATH] [--quick]``, or as
the harness's ``churn`` scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import math
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import orjson

from benchmarks.cluster import generate_cluster, mutate_node
from benchmarks.harness import Row, RunContext, ScenarioResult
from benchmarks.http import (
    BENCH_IMAGE,
    JSON_HEADERS,
    Latency,
    bench_pod,
    check_filter,
    names_body,
    sample_names,
    start_app,
)
from benchmarks.matcher import load_bench_spec
from benchmarks.progress import NO_PROGRESS, Steps
from benchmarks.report import finish, fmt_ms, machine_facts, parse_sizes, say
from extender.decide import ImageSpec, decide
from extender.features.nodefeature import RawNodeFeature
from extender.http.app import AppSettings, build_app
from extender.sources.base import StaticSpecs
from extender.sources.heap import HeapKeeper
from extender.sources.kube import KubeFeatures, ListResult, WatchEvent
from extender.sources.specs import SharedLookups

DEFAULT_NODES: tuple[int, ...] = (1000, 5000, 50000)
QUICK_NODES: tuple[int, ...] = (100,)
CHURN_FRACTION_PER_S = 0.01  # the churn to keep up with: 1% of the nodes republished per second
DEFAULT_SECONDS = 10.0
QUICK_SECONDS = 0.6
DEFAULT_MIN_REQUESTS = 20  # per phase, however long the requests take
QUICK_MIN_REQUESTS = 3
DEFAULT_WARMUP = 5
TICK_S = 0.05
WINDOW_S = 1.0  # quiet and churn windows alternate, about this long each
VICTIM_POOL_S = 2.0  # distinct victim nodes: as many as two seconds of churn touch


class ReplayTransport:
    """A :class:`extender.sources.kube.KubeTransport`: the initial list is the generated cluster, the
    watch yields events put on ``queue`` as JSON bytes (decoded here, as a watch line would be)."""

    def __init__(self, items: Sequence[Any]) -> None:
        self._items = items
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.delivered = 0

    async def list(self, path: str, *, field_selector: str = "") -> ListResult:
        items, self._items = list(self._items), []  # the reflector keeps what it needs: drop the rest
        return ListResult(items, "1")

    async def watch(
        self, path: str, resource_version: str, *, field_selector: str = ""
    ) -> AsyncIterator[WatchEvent]:
        while True:
            line = await self.queue.get()
            event: WatchEvent = orjson.loads(line)
            self.delivered += 1
            yield event


def churn_events(objs: Sequence[RawNodeFeature], victims: int, seed: int) -> list[bytes]:
    """Encoded MODIFIED events: each victim changed, then each victim back to its original."""
    step = max(1, len(objs) // max(victims, 1))
    chosen = list(objs[::step][:victims])
    changed = [
        orjson.dumps({"type": "MODIFIED", "object": mutate_node(o, seed + i)}) for i, o in enumerate(chosen)
    ]
    back = [orjson.dumps({"type": "MODIFIED", "object": o}) for o in chosen]
    return changed + back


async def _produce(
    transport: ReplayTransport, events: list[bytes], rate: float, stop: asyncio.Event, offset: int = 0
) -> int:
    """Queue events at ``rate`` per second (the first at once), from ``events[offset]`` on (cycling),
    until ``stop``; returns how many."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while not stop.is_set():
        due = int(rate * (loop.time() - start)) + 1
        while sent < due:
            transport.queue.put_nowait(events[(offset + sent) % len(events)])
            sent += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_S)
    return sent


async def _requests(
    session: aiohttp.ClientSession, url: str, body: bytes, seconds: float, min_requests: int
) -> list[int]:
    samples: list[int] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < min_requests:
        t0 = time.perf_counter_ns()
        async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
            payload = await resp.read()
            status = resp.status
        samples.append(time.perf_counter_ns() - t0)
        if status != 200:
            raise RuntimeError(f"POST {url}: HTTP {status}: {payload[:200]!r}")
    return samples


@dataclass(frozen=True, slots=True)
class SizeResult:
    nodes: int
    target_updates_per_s: float
    churn_seconds: float
    events_sent: int
    updates_applied: int  # during the churn phase
    updates_per_s: float
    backlog_at_end: int  # queued but not yet applied when the churn phase ended
    victims: int
    quiet: Latency
    churn: Latency
    passed: int
    failed: int
    table_build_s: float
    full_collections: dict[str, FullCollections]  # per phase: "list", "quiet", "churn"
    freezes: int  # by the HeapKeeper, as serve runs it
    frozen_garbage: int  # frozen objects found unreachable at the end (unfreeze, then collect)


@dataclass(slots=True)
class FullCollections:
    """The garbage collector's full collections during one phase: how many, and their pauses."""

    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0


class _FullCollectionClock:
    """Times every full collection (``gc.callbacks``) into the current phase's counts."""

    def __init__(self) -> None:
        self.phases: dict[str, FullCollections] = {}
        self.phase = "list"
        self._start = 0.0

    def __call__(self, stage: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if stage == "start":
            self._start = time.perf_counter()
            return
        ms = (time.perf_counter() - self._start) * 1e3
        got = self.phases.setdefault(self.phase, FullCollections())
        got.count += 1
        got.total_ms += ms
        got.max_ms = max(got.max_ms, ms)


async def _measure_size(
    n: int, *, seconds: float, min_requests: int, warmup: int, seed: int, out: TextIO, progress: Steps
) -> SizeResult:
    progress.note(f"generating {n:,} nodes")
    say(out, f"### {n:,} nodes")
    objs = generate_cluster(n, seed)
    rate = n * CHURN_FRACTION_PER_S
    victims = min(n, max(1, math.ceil(rate * VICTIM_POOL_S)))
    events = churn_events(objs, victims, seed)
    transport = ReplayTransport(objs)
    del objs
    kube = KubeFeatures(transport, watch_nodes=False)
    progress.note("initial list into the table")
    clock = _FullCollectionClock()
    gc.callbacks.append(clock)
    heap = HeapKeeper(kube)  # as serve runs it (extender/sources/from_config.py)
    keeper = asyncio.create_task(heap.run())
    t0 = time.perf_counter()
    watch = asyncio.create_task(kube.run())
    await kube.wait_ready()
    build_s = time.perf_counter() - t0
    table = kube.table
    spec = load_bench_spec()
    runner, base = await start_app(
        build_app(kube, SharedLookups(StaticSpecs({BENCH_IMAGE: spec})), AppSettings())
    )
    stop = asyncio.Event()
    try:
        names = sample_names(table, n, seed)
        body = names_body(bench_pod(), names)
        url = f"{base}/filter"
        say(out, f"- KubeFeatures listed {len(table):,} nodes into the table in {build_s:,.1f} s")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
                expected = decide([ImageSpec(BENCH_IMAGE, spec)], table, names)
                passed, failed = check_filter("extender", await resp.read(), "names", names, expected.passed)
            await _requests(session, url, body, 0.0, warmup)
            windows = max(1, round(seconds / WINDOW_S))
            window_s = seconds / windows
            each = max(1, math.ceil(min_requests / windows))
            quiet: list[int] = []
            churned: list[int] = []
            sent = applied = backlog = 0
            churn_s = 0.0
            for w in range(windows):
                progress.note(f"window {w + 1} of {windows}: quiet, then churn at {rate:,.1f} updates/s")
                clock.phase = "quiet"
                quiet += await _requests(session, url, body, window_s, each)
                clock.phase = "churn"
                gen0, delivered0 = table.generation, transport.delivered
                stop = asyncio.Event()
                producer = asyncio.create_task(_produce(transport, events, rate, stop, offset=sent))
                t_churn = time.perf_counter()
                churned += await _requests(session, url, body, window_s, each)
                churn_s += time.perf_counter() - t_churn
                stop.set()
                now = await producer
                sent += now
                applied += table.generation - gen0
                backlog = now - (transport.delivered - delivered0)
                clock.phase = "drain"
                # the backlog drains and the cached result catches up before the next quiet window
                for _ in range(200):
                    if transport.queue.empty():
                        break
                    await asyncio.sleep(TICK_S)
                await _requests(session, url, body, 0.0, 1)
    finally:
        stop.set()
        await runner.cleanup()
        for task in (watch, keeper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        gc.callbacks.remove(clock)
    del table, names, body, events, transport, kube, runner
    gc.unfreeze()  # what the freezes kept from the collector that it would have found unreachable
    frozen_garbage = gc.collect()
    result = SizeResult(
        nodes=n,
        target_updates_per_s=rate,
        churn_seconds=churn_s,
        events_sent=sent,
        updates_applied=applied,
        updates_per_s=applied / churn_s,
        backlog_at_end=backlog,
        victims=victims,
        quiet=Latency.of(quiet),
        churn=Latency.of(churned),
        passed=passed,
        failed=failed,
        table_build_s=build_s,
        full_collections=clock.phases,
        freezes=heap.freezes,
        frozen_garbage=frozen_garbage,
    )
    say(
        out,
        f"- quiet: filter median {fmt_ms(result.quiet.median_ms)} ms, p99 {fmt_ms(result.quiet.p99_ms)} ms "
        f"({result.quiet.runs} requests)",
    )
    say(
        out,
        f"- churn: filter median {fmt_ms(result.churn.median_ms)} ms, p99 {fmt_ms(result.churn.p99_ms)} ms "
        f"({result.churn.runs} requests in {churn_s:,.1f} s); {applied:,} updates applied "
        f"({result.updates_per_s:,.1f}/s, target {rate:,.1f}/s), {backlog:,} still queued at the end",
    )
    pauses = "; ".join(
        f"{phase} {fc.count} (max {fc.max_ms:,.0f} ms, total {fc.total_ms:,.0f} ms)"
        for phase, fc in clock.phases.items()
    )
    say(
        out,
        f"- full garbage collections per phase: {pauses or 'none'}; heap frozen {heap.freezes} times "
        f"(extender/sources/heap.py); {frozen_garbage:,} objects found unreachable once unfrozen at the end",
    )
    say(out)
    return result


async def _run(
    sizes: Sequence[int],
    *,
    seconds: float,
    min_requests: int,
    warmup: int,
    seed: int,
    out: TextIO,
    progress: Steps,
) -> list[SizeResult]:
    results = []
    for n in sizes:
        progress.step(f"{n:,} nodes")
        results.append(
            await _measure_size(
                n,
                seconds=seconds,
                min_requests=min_requests,
                warmup=warmup,
                seed=seed,
                out=out,
                progress=progress,
            )
        )
    return results


def run_benchmark(
    sizes: Sequence[int] = DEFAULT_NODES,
    *,
    seconds: float = DEFAULT_SECONDS,
    min_requests: int = DEFAULT_MIN_REQUESTS,
    warmup: int = DEFAULT_WARMUP,
    seed: int = 0,
    out: TextIO = sys.stdout,
    progress: Steps = NO_PROGRESS,
) -> list[SizeResult]:
    if not sizes or min(sizes) < 1 or seconds <= 0 or min_requests < 2 or warmup < 0:
        raise ValueError("sizes and seconds must be positive, min_requests >= 2, warmup >= 0")
    say(out, "## Churn benchmark")
    say(out)
    say(
        out,
        f"- {CHURN_FRACTION_PER_S:.0%} of the nodes change per second; quiet and churn windows of about "
        f"{WINDOW_S:g} s alternate, {seconds:g} s of each in all (at least {min_requests} requests each); "
        "sequential /filter requests naming every node",
    )
    say(out)
    return asyncio.run(
        _run(
            sizes,
            seconds=seconds,
            min_requests=min_requests,
            warmup=warmup,
            seed=seed,
            out=out,
            progress=progress,
        )
    )


def render_markdown(results: Sequence[SizeResult]) -> str:
    lines = [
        "| nodes | quiet p50 / p99 ms | churn p50 / p99 ms | churn ÷ quiet (p50) "
        "| updates/s applied (target) | queued at end |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.nodes:,} | {fmt_ms(r.quiet.median_ms)} / {fmt_ms(r.quiet.p99_ms)} | "
            f"{fmt_ms(r.churn.median_ms)} / {fmt_ms(r.churn.p99_ms)} | "
            f"{r.churn.median_ms / r.quiet.median_ms:.2f}× | {r.updates_per_s:,.1f} "
            f"({r.target_updates_per_s:,.1f}) | {r.backlog_at_end:,} |"
        )
    return "\n".join(lines)


def _as_json(results: Sequence[SizeResult]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        row = dataclasses.asdict(r)
        for phase in ("quiet", "churn"):
            row[phase].pop("samples_ns", None)
        out.append(row)
    return out


def run_scenario(ctx: RunContext) -> ScenarioResult:
    seconds = QUICK_SECONDS if ctx.quick else DEFAULT_SECONDS
    min_requests = QUICK_MIN_REQUESTS if ctx.quick else DEFAULT_MIN_REQUESTS
    warmup = 1 if ctx.quick else DEFAULT_WARMUP
    results = run_benchmark(
        ctx.nodes,
        seconds=seconds,
        min_requests=min_requests,
        warmup=warmup,
        seed=ctx.seed,
        out=ctx.log,
        progress=ctx.progress,
    )
    rows = [
        Row.latency(
            "filter during churn (1%/s)",
            r.nodes,
            r.churn.median_ms,
            r.churn.p99_ms,
            "same server, no churn",
            r.quiet.median_ms,
            r.quiet.p99_ms,
            r.churn.runs,
            {"updates_per_s": r.updates_per_s, "target_updates_per_s": r.target_updates_per_s},
        )
        for r in results
    ]
    return ScenarioResult(
        rows=rows,
        params={
            "churn_fraction_per_s": CHURN_FRACTION_PER_S,
            "seconds": seconds,
            "min_requests": min_requests,
            "warmup": warmup,
            "tick_s": TICK_S,
        },
        detail={"sizes": _as_json(results)},
        markdown=render_markdown(results),
        notes=[
            "Updates go through KubeFeatures (decode, parse, merge, set_node) on the serving event loop, as "
            "in serve with features.source: kubernetes; every update moves the table's generation, so "
            "requests during churn bring the cached result up to date for the nodes that changed."
        ],
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.churn", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=parse_sizes, default=None, help="cluster sizes")
    p.add_argument("--seconds", type=float, default=None, help=f"churn phase length ({DEFAULT_SECONDS:g})")
    p.add_argument("--json", type=Path, default=None, metavar="PATH")
    p.add_argument("--quick", action="store_true", help="smoke run")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    stream = out if out is not None else sys.stdout
    results = run_benchmark(
        args.nodes or (QUICK_NODES if args.quick else DEFAULT_NODES),
        seconds=args.seconds or (QUICK_SECONDS if args.quick else DEFAULT_SECONDS),
        min_requests=QUICK_MIN_REQUESTS if args.quick else DEFAULT_MIN_REQUESTS,
        warmup=1 if args.quick else DEFAULT_WARMUP,
        seed=args.seed,
        out=stream,
    )
    finish(
        stream, render_markdown(results), args.json, {"machine": machine_facts(), "sizes": _as_json(results)}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
