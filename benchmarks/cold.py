"""Cold path: the first filter call for a new image, against a real registry on loopback, next to
the same call once the spec is cached (warm), in one run.

Why: the first pod of a new image waits for the whole registry lookup (image manifest, referrers,
artifact manifest, spec blob) before the matcher can run; every later pod of that image is answered
from the caches. The registry is Debian's ``docker-registry`` (distribution 2.8, as in the tests),
started here on a free loopback port with its own storage; it has no referrers API, so lookups go
through the tag-schema index (the first lookup in a repository also learns that: one extra
request).

Method: ``--images`` images, each a different tag of one repository with the benchmark spec
(``benchmarks/specs/bench.yaml``) attached, are pushed first. The extender (``build_app`` with the
registry spec source behind single-flight, as ``serve`` wires it) and a feature table of ``--table``
synthetic nodes (:mod:`benchmarks.cluster`) run in this process; the client sends ``/filter`` with
``--names`` node names. For each image: one cold request (nothing cached for it), then ``--repeat``
warm ones. Registry requests per cold lookup are counted at the transport.

Run: ``python -m benchmarks.cold [--images N] [--names N] [--table N] [--repeat N] [--json PATH]
[--quick]``. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import numpy as np
import orjson

from benchmarks.cluster import generate_cluster
from benchmarks.harness import Row, RunContext, ScenarioResult
from benchmarks.http import bench_pod, names_body, sample_names, start_app
from benchmarks.matcher import BENCH_SPEC
from benchmarks.progress import NO_PROGRESS, Steps
from benchmarks.report import finish, fmt_ms, machine_facts, say
from extender.http.app import AppSettings, build_app
from extender.images import parse_reference
from extender.match.table import table_from_nodefeatures
from extender.sources.base import StaticFeatures
from extender.sources.registry.attach import attach
from extender.sources.registry.client import RegistryClient
from extender.sources.registry.lookup import RegistrySpecs
from extender.sources.registry.transport import AiohttpTransport
from extender.sources.specs import SharedLookups
from tests.distribution import run_distribution
from tests.oci_images import push_image

JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Result:
    images: int
    names: int
    table_nodes: int
    repeat: int
    cold_ms: list[float]
    warm_ms: list[float]
    requests_per_cold: list[int]

    def summary(self) -> dict[str, float]:
        cold, warm = np.asarray(self.cold_ms), np.asarray(self.warm_ms)
        return {
            "cold_median_ms": float(np.median(cold)),
            "cold_p90_ms": float(np.percentile(cold, 90)),
            "cold_p99_ms": float(np.percentile(cold, 99)),
            "cold_max_ms": float(cold.max()),
            "warm_median_ms": float(np.median(warm)),
            "warm_p99_ms": float(np.percentile(warm, 99)),
            "cold_over_warm": float(np.median(cold) / np.median(warm)),
        }


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> float:
    t0 = time.perf_counter_ns()
    async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
        payload = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST {url}: {resp.status}: {payload[:200]!r}")
    elapsed = (time.perf_counter_ns() - t0) / 1e6
    doc = orjson.loads(payload)
    if doc.get("Error"):
        raise RuntimeError(f"filter answered an error: {doc['Error']}")
    return elapsed


async def run_cold(
    images: int, names: int, table_nodes: int, repeat: int, out: TextIO, progress: Steps = NO_PROGRESS
) -> Result:
    """Push ``images`` images with the spec attached, then one cold and ``repeat`` warm /filter calls
    naming ``names`` nodes of a ``table_nodes`` table, per image."""
    spec = BENCH_SPEC.read_bytes()
    table = table_from_nodefeatures(generate_cluster(table_nodes, 0))
    candidates = sample_names(table, names, 0)
    with tempfile.TemporaryDirectory() as tmp, run_distribution(Path(tmp), auth=False) as registry:
        pusher_transport = AiohttpTransport()
        pusher = RegistryClient(pusher_transport)
        progress.note("pushing images to the loopback registry")
        refs: list[str] = []
        for i in range(images):
            await push_image(pusher, f"{registry.host}/bench/app", f"v{i}", payload=f"layer {i}".encode())
            await attach(pusher, parse_reference(f"{registry.host}/bench/app:v{i}"), spec)
            refs.append(f"{registry.host}/bench/app:v{i}")
        await pusher_transport.close()
        say(out, f"- registry: distribution 2.8 on {registry.url}, {images} images with the spec attached")

        transport = AiohttpTransport()
        lookups = SharedLookups(RegistrySpecs(RegistryClient(transport)))
        runner, base = await start_app(build_app(StaticFeatures(table), lookups, AppSettings()))
        cold: list[float] = []
        warm: list[float] = []
        per_cold: list[int] = []
        try:
            async with aiohttp.ClientSession() as session:
                progress.note("cold and warm calls")
                for ref in refs:
                    body = names_body(bench_pod(ref), candidates)
                    before = transport.requests
                    cold.append(await _post(session, f"{base}/filter", body))
                    per_cold.append(transport.requests - before)
                    for _ in range(repeat):
                        warm.append(await _post(session, f"{base}/filter", body))
        finally:
            await runner.cleanup()
            await transport.close()
    return Result(images, names, table_nodes, repeat, cold, warm, per_cold)


def render_markdown(r: Result) -> str:
    s = r.summary()
    return "\n".join(
        [
            f"First /filter for a new image ({r.names} node names, {r.table_nodes:,}-node table) "
            f"vs. the same call warm; {r.images} images, {r.repeat} warm calls each.",
            "",
            "| | median ms | p90 / p99 ms | max ms |",
            "|---|---:|---:|---:|",
            f"| cold (registry lookup) | {fmt_ms(s['cold_median_ms'])} | {fmt_ms(s['cold_p90_ms'])} (p90) "
            f"| {fmt_ms(s['cold_max_ms'])} |",
            f"| warm (cached spec) | {fmt_ms(s['warm_median_ms'])} | {fmt_ms(s['warm_p99_ms'])} (p99) "
            f"| {fmt_ms(max(r.warm_ms))} |",
            "",
            f"cold ÷ warm (medians): {s['cold_over_warm']:.1f}×. Registry requests per cold lookup: "
            f"{r.requests_per_cold[0]} for the first image of the repository (it learns there is no "
            f"referrers API), then {statistics.median(r.requests_per_cold[1:] or r.requests_per_cold):g}.",
        ]
    )


DEFAULT_IMAGES = 20
DEFAULT_TABLE = 5000
DEFAULT_REPEAT = 10
QUICK_IMAGES = 3
QUICK_TABLE = 200
QUICK_REPEAT = 2


def run_scenario(ctx: RunContext) -> ScenarioResult:
    """The harness's ``cold`` scenario: for each node count (names per request), a fresh registry and
    ``images`` images, each one cold call and ``repeat`` warm ones."""
    images = QUICK_IMAGES if ctx.quick else DEFAULT_IMAGES
    repeat = QUICK_REPEAT if ctx.quick else DEFAULT_REPEAT
    table = max(max(ctx.nodes), QUICK_TABLE if ctx.quick else DEFAULT_TABLE)
    say(ctx.log, "## Cold path benchmark")
    say(ctx.log)
    results: list[Result] = []
    for n in ctx.nodes:
        ctx.progress.step(f"{n:,} names, {images} new images")
        say(ctx.log, f"### {n:,} names")
        result = asyncio.run(run_cold(images, n, table, repeat, ctx.log, ctx.progress))
        say(ctx.log, render_markdown(result))
        say(ctx.log)
        results.append(result)
    rows = []
    for r in results:
        s = r.summary()
        warm = np.asarray(r.warm_ms)
        rows.append(
            Row.latency(
                "first /filter of a new image (cold)",
                r.names,
                s["cold_median_ms"],
                s["cold_p99_ms"],
                "same request, spec cached (warm)",
                s["warm_median_ms"],
                float(np.percentile(warm, 99)),
                len(r.cold_ms),
                {
                    "registry_requests": float(
                        statistics.median(r.requests_per_cold[1:] or r.requests_per_cold)
                    )
                },
            )
        )
    return ScenarioResult(
        rows=rows,
        params={"images": images, "repeat": repeat, "table_nodes": table},
        detail={"sizes": [{**asdict(r), "summary": r.summary()} for r in results]},
        markdown="\n\n".join(render_markdown(r) for r in results),
        notes=[
            f"Debian's docker-registry (distribution 2.8, no referrers API) on 127.0.0.1; {images} images, "
            f"each one cold /filter then {repeat} warm ones; table of {table:,} nodes. Cold p99 is over "
            f"{images} samples per size."
        ],
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cold", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=None, help="images (cold lookups), default 20")
    p.add_argument("--names", type=int, default=None, help="node names per request, default 500")
    p.add_argument("--table", type=int, default=None, help="feature table size, default 5000")
    p.add_argument("--repeat", type=int, default=None, help="warm calls per image, default 10")
    p.add_argument("--json", type=Path, default=None, metavar="PATH")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 images, 50 names, 200 nodes")
    args = p.parse_args(argv)
    stream = out if out is not None else sys.stdout
    images = args.images or (QUICK_IMAGES if args.quick else DEFAULT_IMAGES)
    names = args.names or (50 if args.quick else 500)
    table = args.table or (QUICK_TABLE if args.quick else DEFAULT_TABLE)
    repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    if min(images, names, table, repeat) < 1 or names > table:
        p.error("sizes must be positive, and --names at most --table")
    say(stream, "## Cold path benchmark")
    say(stream)
    for k, v in machine_facts().items():
        say(stream, f"- {k}: {v}")
    result = asyncio.run(run_cold(images, names, table, repeat, stream))
    doc: dict[str, Any] = {"machine": machine_facts(), **asdict(result), "summary": result.summary()}
    finish(stream, render_markdown(result), args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
