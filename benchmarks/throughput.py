"""Throughput: a bounded load of concurrent clients on loopback, extender vs the no-op floor.

Why: kube-scheduler runs several scheduling cycles' extender calls back to back and, with more than
one scheduler profile or replica, concurrently; a server that is fast for one request at a time can
still queue under load. What matters then is requests per second and the latency each request sees
while others wait.

Method: the extender (as ``serve`` builds it, over a table of N nodes) and the floor each run in a
process of their own (:mod:`benchmarks.server`), so the load generator does not share their event
loop. ``--clients`` closed-loop clients (each sends its next request when the previous answer is
read) share one aiohttp session with a connection each, and send ``--requests`` ``/filter`` requests
naming all N nodes, after ``--warmup`` untimed ones; rounds alternate which server goes first, so
drift hits both alike. The load is bounded: clients × requests × rounds requests per server, no more.
A sample is one request's wall time; requests/s is the requests of a round over its wall time.

Run: ``python -m benchmarks.throughput [--nodes 500,5000] [--clients 8] [--requests 100]
[--rounds 2] [--json PATH] [--quick]``, or as the harness's ``throughput`` scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from benchmarks.harness import Row, RunContext, ScenarioResult
from benchmarks.http import JSON_HEADERS, BenchmarkError, Latency, bench_pod, check_filter, names_body
from benchmarks.progress import NO_PROGRESS, Steps
from benchmarks.report import finish, fmt_ms, machine_facts, parse_sizes, say
from benchmarks.server import ServerProcess, start_server, stop_server

DEFAULT_NODES: tuple[int, ...] = (500, 5000)
DEFAULT_CLIENTS = 8
DEFAULT_REQUESTS = 100  # per client and round
DEFAULT_ROUNDS = 2
DEFAULT_WARMUP = 5  # per client, before the first round
QUICK_CLIENTS = 2
QUICK_REQUESTS = 5
QUICK_ROUNDS = 1
QUICK_WARMUP = 1


@dataclass(frozen=True, slots=True)
class Load:
    """One server under the load: every request's latency and the rounds' total wall time."""

    requests: int
    wall_s: float
    latency: Latency

    @property
    def req_per_s(self) -> float:
        return self.requests / self.wall_s


@dataclass(frozen=True, slots=True)
class SizeResult:
    nodes: int
    clients: int
    requests_per_client: int
    rounds: int
    passed: int
    failed: int
    request_bytes: int
    extender: Load
    floor: Load


async def _client(
    session: aiohttp.ClientSession, url: str, body: bytes, n: int, samples: list[int] | None
) -> None:
    for _ in range(n):
        t0 = time.perf_counter_ns()
        async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
            payload = await resp.read()
            status = resp.status
        if samples is not None:
            samples.append(time.perf_counter_ns() - t0)
        if status != 200:
            raise BenchmarkError(f"POST {url}: HTTP {status}: {payload[:200]!r}")


async def run_load(
    session: aiohttp.ClientSession, url: str, body: bytes, clients: int, requests: int
) -> tuple[list[int], float]:
    """``clients`` concurrent closed-loop clients, ``requests`` each: (samples, wall seconds)."""
    samples: list[int] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(session, url, body, requests, samples) for _ in range(clients)))
    return samples, time.perf_counter() - t0


async def _measure_size(
    session: aiohttp.ClientSession,
    floor: ServerProcess,
    n: int,
    *,
    clients: int,
    requests: int,
    rounds: int,
    warmup: int,
    seed: int,
    out: TextIO,
    progress: Steps,
) -> SizeResult:
    progress.note(f"starting the extender ({n:,}-node table)")
    t0 = time.perf_counter()
    ext = await start_server("extender", n, seed)
    try:
        say(out, f"### {n:,} node names × {clients} clients")
        say(out, f"- extender process up with a {n:,}-node table in {time.perf_counter() - t0:,.1f} s")
        names = random.Random(f"candidates:{seed}:{n}").sample(sorted(ext.nodes), n)
        body = names_body(bench_pod(), names)
        urls = {"extender": f"{ext.url}/filter", "floor": f"{floor.url}/filter"}
        async with session.post(urls["extender"], data=body, headers=JSON_HEADERS) as resp:
            passed, failed = check_filter("extender", await resp.read(), "names", names, None)
        async with session.post(urls["floor"], data=body, headers=JSON_HEADERS) as resp:
            check_filter("floor", await resp.read(), "names", names, names)
        progress.note("warm-up")
        for url in urls.values():
            await run_load(session, url, body, clients, warmup)
        samples: dict[str, list[int]] = {"extender": [], "floor": []}
        wall: dict[str, float] = {"extender": 0.0, "floor": 0.0}
        for r in range(rounds):
            for who in ("extender", "floor") if r % 2 == 0 else ("floor", "extender"):
                progress.note(f"round {r + 1}/{rounds}: {who}")
                got, seconds = await run_load(session, urls[who], body, clients, requests)
                samples[who] += got
                wall[who] += seconds
        loads = {who: Load(len(samples[who]), wall[who], Latency.of(samples[who])) for who in samples}
        result = SizeResult(
            n, clients, requests, rounds, passed, failed, len(body), loads["extender"], loads["floor"]
        )
        for who, load in loads.items():
            say(
                out,
                f"- {who}: {load.req_per_s:,.0f} requests/s; latency median "
                f"{fmt_ms(load.latency.median_ms)} ms, p99 {fmt_ms(load.latency.p99_ms)} ms "
                f"({load.requests:,} requests in {load.wall_s:,.2f} s)",
            )
        say(
            out,
            f"- filter verdicts: {passed:,} passed, {failed:,} failed; request body "
            f"{len(body) / 1024:,.1f} KiB",
        )
        say(out)
        return result
    finally:
        await stop_server(ext)


async def _run(
    sizes: Sequence[int],
    *,
    clients: int,
    requests: int,
    rounds: int,
    warmup: int,
    seed: int,
    out: TextIO,
    progress: Steps,
) -> list[SizeResult]:
    floor = await start_server("floor")
    results: list[SizeResult] = []
    try:
        connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for n in sizes:
                progress.step(f"{n:,} names × {clients} clients")
                results.append(
                    await _measure_size(
                        session,
                        floor,
                        n,
                        clients=clients,
                        requests=requests,
                        rounds=rounds,
                        warmup=warmup,
                        seed=seed,
                        out=out,
                        progress=progress,
                    )
                )
    finally:
        await stop_server(floor)
    return results


def run_benchmark(
    sizes: Sequence[int] = DEFAULT_NODES,
    *,
    clients: int = DEFAULT_CLIENTS,
    requests: int = DEFAULT_REQUESTS,
    rounds: int = DEFAULT_ROUNDS,
    warmup: int = DEFAULT_WARMUP,
    seed: int = 0,
    out: TextIO = sys.stdout,
    progress: Steps = NO_PROGRESS,
) -> list[SizeResult]:
    if min(clients, requests, rounds) < 1 or warmup < 0 or not sizes or min(sizes) < 1:
        raise ValueError("sizes, clients, requests and rounds must be positive, warmup >= 0")
    say(out, "## Throughput benchmark")
    say(out)
    say(
        out,
        f"- {clients} closed-loop clients × {requests} /filter requests × {rounds} round(s) per server after "
        f"{warmup} warm-up request(s) each; servers in their own processes (python -m benchmarks.server)",
    )
    say(out)
    return asyncio.run(
        _run(
            sizes,
            clients=clients,
            requests=requests,
            rounds=rounds,
            warmup=warmup,
            seed=seed,
            out=out,
            progress=progress,
        )
    )


def render_markdown(results: Sequence[SizeResult]) -> str:
    lines = [
        "| names | clients | extender req/s | extender p50 / p99 ms | floor req/s | floor p50 / p99 ms | "
        "req/s extender ÷ floor |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        e, f = r.extender, r.floor
        lines.append(
            f"| {r.nodes:,} | {r.clients} | {e.req_per_s:,.0f} | {fmt_ms(e.latency.median_ms)} / "
            f"{fmt_ms(e.latency.p99_ms)} | {f.req_per_s:,.0f} | {fmt_ms(f.latency.median_ms)} / "
            f"{fmt_ms(f.latency.p99_ms)} | {e.req_per_s / f.req_per_s:.2f} |"
        )
    return "\n".join(lines)


def _as_json(results: Sequence[SizeResult]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        row = dataclasses.asdict(r)
        for who in ("extender", "floor"):
            row[who]["latency"].pop("samples_ns", None)
            row[who]["req_per_s"] = getattr(r, who).req_per_s
        out.append(row)
    return out


def run_scenario(ctx: RunContext) -> ScenarioResult:
    clients = QUICK_CLIENTS if ctx.quick else DEFAULT_CLIENTS
    requests = QUICK_REQUESTS if ctx.quick else DEFAULT_REQUESTS
    rounds = QUICK_ROUNDS if ctx.quick else DEFAULT_ROUNDS
    warmup = QUICK_WARMUP if ctx.quick else DEFAULT_WARMUP
    results = run_benchmark(
        ctx.nodes,
        clients=clients,
        requests=requests,
        rounds=rounds,
        warmup=warmup,
        seed=ctx.seed,
        out=ctx.log,
        progress=ctx.progress,
    )
    rows = [
        Row.latency(
            f"filter, {r.clients} clients",
            r.nodes,
            r.extender.latency.median_ms,
            r.extender.latency.p99_ms,
            "no-op floor, same load",
            r.floor.latency.median_ms,
            r.floor.latency.p99_ms,
            r.extender.requests,
            {"req_per_s": r.extender.req_per_s, "baseline_req_per_s": r.floor.req_per_s},
        )
        for r in results
    ]
    return ScenarioResult(
        rows=rows,
        params={"clients": clients, "requests_per_client": requests, "rounds": rounds, "warmup": warmup},
        detail={"sizes": _as_json(results)},
        markdown=render_markdown(results),
        notes=[
            f"{clients} closed-loop clients on one aiohttp session (a connection each), {requests} /filter "
            f"requests each per round, {rounds} round(s) alternating extender/floor; servers in their own "
            "processes on 127.0.0.1, the clients in the harness's. Each request names every node."
        ],
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=parse_sizes, default=None, help="node names per request (table size)")
    p.add_argument(
        "--clients", type=int, default=None, help=f"concurrent clients (default {DEFAULT_CLIENTS})"
    )
    p.add_argument("--requests", type=int, default=None, help=f"per client and round ({DEFAULT_REQUESTS})")
    p.add_argument("--rounds", type=int, default=None, help=f"rounds per server ({DEFAULT_ROUNDS})")
    p.add_argument("--json", type=Path, default=None, metavar="PATH")
    p.add_argument("--quick", action="store_true", help="smoke run")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    stream = out if out is not None else sys.stdout
    results = run_benchmark(
        args.nodes or ((30,) if args.quick else DEFAULT_NODES),
        clients=args.clients or (QUICK_CLIENTS if args.quick else DEFAULT_CLIENTS),
        requests=args.requests or (QUICK_REQUESTS if args.quick else DEFAULT_REQUESTS),
        rounds=args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS),
        warmup=QUICK_WARMUP if args.quick else DEFAULT_WARMUP,
        seed=args.seed,
        out=stream,
    )
    finish(
        stream, render_markdown(results), args.json, {"machine": machine_facts(), "sizes": _as_json(results)}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
