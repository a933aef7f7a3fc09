"""HTTP end-to-end benchmark: the extender's /filter and /prioritize against a no-op floor.

Why: what the scheduler waits for is a whole HTTP exchange, and at thousands of candidate nodes most
of it is not the matcher (which answers from its cache in well under a millisecond, see
``benchmarks/matcher.py``) but reading, decoding, encoding and writing the payloads. The honest
yardstick for that is the *floor*: an aiohttp application on the same kind of socket whose handlers
read the body, ``orjson.loads`` it and answer the same shape the extender would (filter: every node
back, as names or as the very Node objects received; prioritize: a HostPriorityList with score 0
for every candidate), encoded with orjson. The extender cannot be faster than that; the ratio of the
two medians says how much it adds. The target: at most 2× the floor at 5,000 node names with warm
caches.

Scenarios, each for both verbs: candidate nodes sent as ``NodeNames`` (``nodeCacheCapable: true``),
500 and 5,000 of them, and 500 full ``v1.Node`` objects in ``Nodes.items`` (``nodeCacheCapable:
false``; realistic objects of 15-35 KiB each from :mod:`benchmarks.nodes`). The Pod is the one a real
kube-scheduler sent (``tests/data/captures``) with its container image replaced by one whose spec is
``benchmarks/specs/bench.yaml``; the feature table is a :mod:`benchmarks.cluster` cluster as large as
the largest scenario, and the candidates are a deterministic random sample of its nodes, in random
order (the scheduler's order is not sorted). Both verbs get the same candidates, failing nodes
included: the worst case for prioritize (the scheduler normally sends it only the survivors).

Per pod (``--pods N``; the harness always runs it): what one pod costs the scheduler, filter of
``--pod-names`` candidates (default 500, what a default kube-scheduler sends at 5,000 nodes), a
fresh random sample per pod, then prioritize of the filter's survivors, against the floor doing the
same (it passes every candidate). Here the servers run in processes of their own
(:mod:`benchmarks.server`), so that each one's CPU time per pod can be read from ``/proc`` beside
the client's wall time; pods alternate between them.

Method: both servers run in this process on 127.0.0.1 (``AppRunner`` + ``TCPSite`` on a free port,
no access log, as ``serve`` runs them); the client is one ``aiohttp.ClientSession`` with keep-alive,
requests strictly sequential, the request bodies encoded once beforehand. A sample is the wall time
from sending the request to having read the whole response body. After ``--warmup`` requests to each
server (they fill the spec lookup and the matcher's result cache: warm caches), extender and floor
requests alternate, so drift hits both alike. The setup objects (feature table, generated fixtures)
are moved out of the garbage collector's reach (``gc.freeze``) so that each server pays only for the
collections its own requests cause. Before timing, each server's answer is checked (the extender's
against :func:`extender.decide.decide` called directly).

Run: ``python -m benchmarks.http [--names 500,5000] [--nodes 500] [--repeat N] [--warmup W]
[--json PATH] [--quick] [--pods N [--pod-names 500] [--pod-table 5000] [--pod-only]]``. Nothing here
asserts a time; the machine is printed with the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib.metadata
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import aiohttp
import numpy as np
import orjson
from aiohttp import web

from benchmarks.cluster import generate_cluster
from benchmarks.harness import Row, RunContext
from benchmarks.harness import ScenarioResult as HarnessResult
from benchmarks.matcher import BENCH_SPEC, count_expressions, load_bench_spec
from benchmarks.nodes import generate_node_objects
from benchmarks.progress import NO_PROGRESS, Steps
from benchmarks.report import finish, fmt_ms, machine_facts, parse_sizes, say
from extender.decide import ImageSpec, decide
from extender.http.app import AppSettings, build_app
from extender.match.table import FeatureTable, table_from_nodefeatures
from extender.sources.base import StaticFeatures, StaticSpecs
from extender.spec.model import Spec

CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "captures"
POD_CAPTURE = CAPTURES / "filter-args.nodecachecapable-true.json"
#: The container image the benchmark pod runs; its spec is BENCH_SPEC.
BENCH_IMAGE = "registry.example.com/ml/cuda-inference:12.4.1"
DEFAULT_NAMES: tuple[int, ...] = (500, 5000)
DEFAULT_NODES: tuple[int, ...] = (500,)
QUICK_NAMES: tuple[int, ...] = (20, 60)
QUICK_NODES: tuple[int, ...] = (10,)
DEFAULT_REPEAT = 200
QUICK_REPEAT = 5
DEFAULT_WARMUP = 10
QUICK_WARMUP = 2
TARGET_NAMES = 5000
TARGET_RATIO = 2.0
VERBS: tuple[str, ...] = ("filter", "prioritize")
JSON_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "gzip"}

Form = Literal["names", "nodes"]


class BenchmarkError(RuntimeError):
    """A server answered something other than the expected payload: no numbers are reported."""


# ---------------------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True, slots=True)
class Latency:
    """Per-request wall times of one series (send request .. last response byte read)."""

    median_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    runs: int
    samples_ns: tuple[int, ...]

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Latency:
        if not samples_ns:
            raise ValueError("no samples")
        return cls(
            median_ms=statistics.median(samples_ns) / 1e6,
            p99_ms=float(np.percentile(np.asarray(samples_ns, dtype=np.float64), 99)) / 1e6,
            min_ms=min(samples_ns) / 1e6,
            max_ms=max(samples_ns) / 1e6,
            mean_ms=statistics.fmean(samples_ns) / 1e6,
            runs=len(samples_ns),
            samples_ns=tuple(samples_ns),
        )


@dataclass(frozen=True, slots=True)
class VerbResult:
    verb: str
    extender: Latency
    floor: Latency
    extender_response_bytes: int
    floor_response_bytes: int

    @property
    def ratio(self) -> float:
        """extender / floor, medians."""
        return self.extender.median_ms / self.floor.median_ms

    @property
    def p99_ratio(self) -> float:
        return self.extender.p99_ms / self.floor.p99_ms


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    name: str
    form: Form
    nodes: int
    request_bytes: dict[str, int]  # verb -> body size
    passed: int  # the extender's filter verdicts on these candidates
    failed: int
    node_object_bytes_avg: float | None  # form "nodes": compact JSON size of one Node, on average
    node_object_bytes_min: int | None
    node_object_bytes_max: int | None
    verbs: list[VerbResult]


@dataclass(slots=True)
class Report:
    machine: dict[str, str]
    spec_path: str
    spec_digest: str
    spec_sets: int
    spec_expressions: int
    image: str
    table_nodes: int
    seed: int
    repeat: int
    warmup: int
    detail_limit: int
    scenarios: list[ScenarioResult] = field(default_factory=list)

    def target(self) -> dict[str, Any] | None:
        """The target, extender ≤ 2× floor (medians), on the NodeNames scenario at
        TARGET_NAMES names, or the one nearest to it when that size was not run."""
        names = [s for s in self.scenarios if s.form == "names"]
        if not names:
            return None
        big = min(names, key=lambda s: (abs(s.nodes - TARGET_NAMES), -s.nodes))
        ratios = {v.verb: v.ratio for v in big.verbs}
        return {
            "scenario": big.name,
            "nodes": big.nodes,
            "target_nodes": TARGET_NAMES,
            "max_ratio": TARGET_RATIO,
            "ratios": ratios,
            "met": all(r <= TARGET_RATIO for r in ratios.values()),
        }

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for row, scenario in zip(data["scenarios"], self.scenarios, strict=True):
            for vrow, verb in zip(row["verbs"], scenario.verbs, strict=True):
                vrow["ratio"] = verb.ratio
                vrow["p99_ratio"] = verb.p99_ratio
        data["target"] = self.target()
        return data


# ---------------------------------------------------------------------------------------------------
# The floor: decode, answer the same shape, encode.


async def _floor_filter(request: web.Request) -> web.Response:
    doc = orjson.loads(await request.read())
    nodes = doc.get("Nodes")
    out: dict[str, Any] = {"FailedNodes": {}, "FailedAndUnresolvableNodes": {}, "Error": ""}
    if nodes is not None:
        out["Nodes"] = {"metadata": nodes.get("metadata") or {}, "items": nodes.get("items") or []}
        out["NodeNames"] = None
    else:
        out["Nodes"] = None
        out["NodeNames"] = doc.get("NodeNames") or []
    return web.Response(body=orjson.dumps(out), content_type="application/json")


async def _floor_prioritize(request: web.Request) -> web.Response:
    doc = orjson.loads(await request.read())
    nodes = doc.get("Nodes")
    if nodes is not None:
        names = [item["metadata"]["name"] for item in nodes.get("items") or []]
    else:
        names = doc.get("NodeNames") or []
    body = orjson.dumps([{"Host": n, "Score": 0} for n in names])
    return web.Response(body=body, content_type="application/json")


def build_floor_app(max_body_bytes: int = 1 << 30) -> web.Application:
    """The no-op extender: it reads, decodes and answers, and decides nothing."""
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post("/filter", _floor_filter)
    app.router.add_post("/prioritize", _floor_prioritize)
    return app


# ---------------------------------------------------------------------------------------------------
# Fixtures.


def bench_pod(image: str = BENCH_IMAGE) -> dict[str, Any]:
    """The Pod a real kube-scheduler sent, running ``image`` instead of the capture's pause image."""
    pod: dict[str, Any] = orjson.loads(POD_CAPTURE.read_bytes())["Pod"]
    containers = pod["spec"]["containers"]
    containers[0] = {**containers[0], "image": image}
    return pod


def sample_names(table: FeatureTable, n: int, seed: int) -> list[str]:
    """``n`` distinct nodes of the table in a random (but reproducible) order."""
    names = sorted(table.node_names())
    if n > len(names):
        raise ValueError(f"{n} candidates asked, the table has {len(names)} nodes")
    return random.Random(f"candidates:{seed}:{n}").sample(names, n)


def names_body(pod: dict[str, Any], names: list[str]) -> bytes:
    return orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": names})


def nodes_body(pod: dict[str, Any], nodes: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"Pod": pod, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None})


# ---------------------------------------------------------------------------------------------------
# Checks of the answers (once per scenario and verb, before timing).


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise BenchmarkError(what)


def check_filter(
    who: str, payload: bytes, form: Form, names: list[str], expected_passed: list[str] | None
) -> tuple[int, int]:
    """(passed, failed) of a filter answer, after checking its shape and, when given, its verdicts."""
    doc = orjson.loads(payload)
    _check(
        isinstance(doc, dict) and doc.get("Error") == "", f"{who} filter: not a clean ExtenderFilterResult"
    )
    if form == "names":
        _check(
            doc["Nodes"] is None and isinstance(doc["NodeNames"], list), f"{who} filter: expected NodeNames"
        )
        passed = list(doc["NodeNames"])
    else:
        _check(doc["NodeNames"] is None and isinstance(doc["Nodes"], dict), f"{who} filter: expected Nodes")
        passed = [item["metadata"]["name"] for item in doc["Nodes"]["items"]]
    failed = {**doc.get("FailedNodes", {}), **doc.get("FailedAndUnresolvableNodes", {})}
    _check(set(passed) <= set(names), f"{who} filter: answered nodes that were not sent")
    _check(len(passed) + len(failed) == len(names), f"{who} filter: passed + failed != candidates")
    if expected_passed is not None:
        _check(passed == expected_passed, f"{who} filter: verdicts differ from decide()")
    return len(passed), len(failed)


def check_prioritize(who: str, payload: bytes, names: list[str], expected: dict[str, int] | None) -> None:
    doc = orjson.loads(payload)
    _check(isinstance(doc, list), f"{who} prioritize: expected a HostPriorityList")
    _check([h["Host"] for h in doc] == names, f"{who} prioritize: hosts differ from the candidates")
    if expected is not None:
        got = {h["Host"]: h["Score"] for h in doc}
        _check(got == expected, f"{who} prioritize: scores differ from decide()")


# ---------------------------------------------------------------------------------------------------
# Measurement.


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, bytes]:
    t0 = time.perf_counter_ns()
    async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
        payload = await resp.read()
        status = resp.status
    elapsed = time.perf_counter_ns() - t0
    if status != 200:
        raise BenchmarkError(f"POST {url}: HTTP {status}: {payload[:200]!r}")
    return elapsed, payload


async def _series(
    session: aiohttp.ClientSession, urls: tuple[str, str], body: bytes, repeat: int
) -> tuple[list[int], list[int]]:
    """``repeat`` requests to each URL, alternating which goes first."""
    first: list[int] = []
    second: list[int] = []
    gc.collect()
    for i in range(repeat):
        if i % 2 == 0:
            first.append((await _post(session, urls[0], body))[0])
            second.append((await _post(session, urls[1], body))[0])
        else:
            second.append((await _post(session, urls[1], body))[0])
            first.append((await _post(session, urls[0], body))[0])
    return first, second


@dataclass(slots=True)
class _Fixture:
    name: str
    form: Form
    names: list[str]
    body: bytes
    node_sizes: list[int]


async def _measure(
    fixtures: list[_Fixture],
    *,
    table: FeatureTable,
    spec: Spec,
    settings: AppSettings,
    repeat: int,
    warmup: int,
    out: TextIO,
    progress: Steps = NO_PROGRESS,
) -> list[ScenarioResult]:
    extender_app = build_app(StaticFeatures(table), StaticSpecs({BENCH_IMAGE: spec}), settings)
    ext_runner, ext_url = await start_app(extender_app)
    floor_runner, floor_url = await start_app(build_floor_app())
    results: list[ScenarioResult] = []
    try:
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for fx in fixtures:
                progress.step(f"{len(fx.names):,} {'names' if fx.form == 'names' else 'Node objects'}")
                say(out, f"### {fx.name}: {len(fx.names):,} candidates as {_form_text(fx.form)}")
                if fx.node_sizes:
                    say(
                        out,
                        f"- Node objects: avg {statistics.fmean(fx.node_sizes) / 1024:.1f} KiB "
                        f"(min {min(fx.node_sizes) / 1024:.1f}, max {max(fx.node_sizes) / 1024:.1f})",
                    )
                say(out, f"- request body {len(fx.body) / 1024:,.1f} KiB (both verbs)")
                expected = decide(
                    [ImageSpec(BENCH_IMAGE, spec)], table, fx.names, detail_limit=settings.detail_limit
                )
                verbs: list[VerbResult] = []
                passed = failed = 0
                for verb in VERBS:
                    progress.note(verb)
                    urls = (f"{ext_url}/{verb}", f"{floor_url}/{verb}")
                    _, ext_payload = await _post(session, urls[0], fx.body)
                    _, floor_payload = await _post(session, urls[1], fx.body)
                    if verb == "filter":
                        passed, failed = check_filter(
                            "extender", ext_payload, fx.form, fx.names, expected.passed
                        )
                        check_filter("floor", floor_payload, fx.form, fx.names, fx.names)
                    else:
                        check_prioritize("extender", ext_payload, fx.names, expected.scores)
                        check_prioritize("floor", floor_payload, fx.names, dict.fromkeys(fx.names, 0))
                    await _series(session, urls, fx.body, warmup)
                    ext_ns, floor_ns = await _series(session, urls, fx.body, repeat)
                    result = VerbResult(
                        verb=verb,
                        extender=Latency.of(ext_ns),
                        floor=Latency.of(floor_ns),
                        extender_response_bytes=len(ext_payload),
                        floor_response_bytes=len(floor_payload),
                    )
                    verbs.append(result)
                    say(
                        out,
                        f"- {verb}: extender median {fmt_ms(result.extender.median_ms)} ms "
                        f"(p99 {fmt_ms(result.extender.p99_ms)}), "
                        f"floor median {fmt_ms(result.floor.median_ms)} ms "
                        f"(p99 {fmt_ms(result.floor.p99_ms)}): {result.ratio:.2f}× the floor; responses "
                        f"{len(ext_payload) / 1024:,.1f} / {len(floor_payload) / 1024:,.1f} KiB",
                    )
                say(out, f"- filter verdicts: {passed:,} passed, {failed:,} failed")
                say(out)
                results.append(
                    ScenarioResult(
                        name=fx.name,
                        form=fx.form,
                        nodes=len(fx.names),
                        request_bytes=dict.fromkeys(VERBS, len(fx.body)),
                        passed=passed,
                        failed=failed,
                        node_object_bytes_avg=statistics.fmean(fx.node_sizes) if fx.node_sizes else None,
                        node_object_bytes_min=min(fx.node_sizes) if fx.node_sizes else None,
                        node_object_bytes_max=max(fx.node_sizes) if fx.node_sizes else None,
                        verbs=verbs,
                    )
                )
    finally:
        await ext_runner.cleanup()
        await floor_runner.cleanup()
    return results


# ---------------------------------------------------------------------------------------------------
# The whole cost of one pod: filter, then prioritize of what passed, against a no-op extender.

POD_NAMES = 500  # what a default kube-scheduler sends at 5,000 nodes (percentageOfNodesToScore)
POD_TABLE = 5000
DEFAULT_PODS = 200
QUICK_PODS = 5


@dataclass(frozen=True, slots=True)
class PodResult:
    """Per pod: wall time of filter + prioritize (the scheduler's side: send, read, decode the filter
    answer, send the survivors to prioritize, read), and each server's CPU time per pod."""

    names: int
    table_nodes: int
    pods: int
    passed: int  # the extender's filter survivors (the floor passes every candidate)
    extender: Latency
    floor: Latency
    extender_cpu_ms: float
    floor_cpu_ms: float

    @property
    def ratio(self) -> float:
        return self.extender.median_ms / self.floor.median_ms

    @property
    def p99_ratio(self) -> float:
        return self.extender.p99_ms / self.floor.p99_ms

    @property
    def cpu_ratio(self) -> float:
        return self.extender_cpu_ms / self.floor_cpu_ms if self.floor_cpu_ms > 0 else float("inf")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _one_pod(session: aiohttp.ClientSession, url: str, pod_json: bytes, names: list[str]) -> int:
    """One pod's exchange with an extender at ``url``; the wall time in ns."""
    t0 = time.perf_counter_ns()
    body = b'{"Pod":' + pod_json + b',"Nodes":null,"NodeNames":' + orjson.dumps(names) + b"}"
    async with session.post(f"{url}/filter", data=body, headers=JSON_HEADERS) as resp:
        answer = orjson.loads(await resp.read())
        status = resp.status
    if status != 200 or answer.get("Error"):
        raise BenchmarkError(f"POST {url}/filter: HTTP {status}: {str(answer)[:200]}")
    survivors = answer["NodeNames"]
    body = b'{"Pod":' + pod_json + b',"Nodes":null,"NodeNames":' + orjson.dumps(survivors) + b"}"
    async with session.post(f"{url}/prioritize", data=body, headers=JSON_HEADERS) as resp:
        payload = await resp.read()
        status = resp.status
    if status != 200 or len(orjson.loads(payload)) != len(survivors):
        raise BenchmarkError(f"POST {url}/prioritize: HTTP {status}: {payload[:200]!r}")
    return time.perf_counter_ns() - t0


async def _measure_pods(names_n: int, table_nodes: int, pods: int, warmup: int, seed: int) -> PodResult:
    from benchmarks.server import start_server, stop_server

    ext = await start_server("extender", table_nodes, seed)
    try:
        floor = await start_server("floor")
        try:
            pod_json = orjson.dumps(bench_pod())
            all_names = sorted(ext.nodes)
            rng = random.Random(f"pods:{seed}:{names_n}")
            # a different candidate sample per pod, as the scheduler's rotating start index gives
            # warm-up: long enough that the explanation cache holds the reason of nearly every failing
            # node (each pod explains its first detailLimit failing candidates), as it does in an
            # extender that has been running for a while
            warmup = max(warmup, table_nodes // 10)
            samples = [rng.sample(all_names, names_n) for _ in range(pods + warmup)]
            ext_ns: list[int] = []
            floor_ns: list[int] = []
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
                for names in samples[:warmup]:
                    await _one_pod(session, ext.url, pod_json, names)
                    await _one_pod(session, floor.url, pod_json, names)
                first = await session.post(
                    f"{ext.url}/filter", data=names_body(bench_pod(), samples[0]), headers=JSON_HEADERS
                )
                passed = len(orjson.loads(await first.read())["NodeNames"])
                gc.collect()
                cpu0 = (_cpu_seconds(ext.process.pid), _cpu_seconds(floor.process.pid))
                for i, names in enumerate(samples[warmup:]):
                    if i % 2 == 0:
                        ext_ns.append(await _one_pod(session, ext.url, pod_json, names))
                        floor_ns.append(await _one_pod(session, floor.url, pod_json, names))
                    else:
                        floor_ns.append(await _one_pod(session, floor.url, pod_json, names))
                        ext_ns.append(await _one_pod(session, ext.url, pod_json, names))
                cpu1 = (_cpu_seconds(ext.process.pid), _cpu_seconds(floor.process.pid))
        finally:
            await stop_server(floor)
    finally:
        await stop_server(ext)
    return PodResult(
        names=names_n,
        table_nodes=table_nodes,
        pods=pods,
        passed=passed,
        extender=Latency.of(ext_ns),
        floor=Latency.of(floor_ns),
        extender_cpu_ms=(cpu1[0] - cpu0[0]) * 1e3 / pods,
        floor_cpu_ms=(cpu1[1] - cpu0[1]) * 1e3 / pods,
    )


def run_pod_benchmark(
    names: int = POD_NAMES,
    table_nodes: int = POD_TABLE,
    *,
    pods: int = DEFAULT_PODS,
    warmup: int = DEFAULT_WARMUP,
    seed: int = 0,
    out: TextIO = sys.stdout,
    progress: Steps = NO_PROGRESS,
) -> PodResult:
    """Filter + prioritize per pod, extender and floor each in a process of its own (so each one's
    CPU time is its own), pods alternating between them. Every pod gets its own random sample of
    ``names`` candidates from a ``table_nodes``-node cluster; the extender's prioritize gets the
    filter's survivors, the floor's gets every candidate (it passes them all)."""
    progress.step(f"{names:,} names per pod, filter + prioritize")
    result = asyncio.run(_measure_pods(names, table_nodes, pods, warmup, seed))
    say(
        out,
        f"### pod: filter + prioritize per pod, {names:,} names of a {table_nodes:,}-node table, "
        f"{pods} pods (servers in processes of their own)",
    )
    say(
        out,
        f"- extender median {fmt_ms(result.extender.median_ms)} ms (p99 {fmt_ms(result.extender.p99_ms)}), "
        f"floor median {fmt_ms(result.floor.median_ms)} ms (p99 {fmt_ms(result.floor.p99_ms)}): "
        f"{result.ratio:.2f}× the floor; CPU per pod {result.extender_cpu_ms:.2f} / "
        f"{result.floor_cpu_ms:.2f} ms ({result.cpu_ratio:.2f}×); "
        f"{result.passed} of {names} passed the first pod's filter",
    )
    return result


def render_pod(result: PodResult) -> str:
    return "\n".join(
        [
            "| per pod | names | extender median ms | extender p99 ms | floor median ms | floor p99 ms | "
            "ratio (median) | ratio (p99) | extender CPU ms | floor CPU ms | CPU ratio |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| filter + prioritize | {result.names:,} | {fmt_ms(result.extender.median_ms)} | "
            f"{fmt_ms(result.extender.p99_ms)} | {fmt_ms(result.floor.median_ms)} | "
            f"{fmt_ms(result.floor.p99_ms)} | "
            f"{result.ratio:.2f}× | {result.p99_ratio:.2f}× | {result.extender_cpu_ms:.2f} | "
            f"{result.floor_cpu_ms:.2f} | {result.cpu_ratio:.2f}× |",
            "",
            f"Per pod: filter of {result.names:,} candidates (a fresh sample per pod) of a "
            f"{result.table_nodes:,}-node table, then prioritize of the survivors (the floor passes "
            "all); wall time on the client, CPU time of each server's own process.",
        ]
    )


def _form_text(form: Form) -> str:
    return (
        "NodeNames (nodeCacheCapable: true)" if form == "names" else "Nodes.items (nodeCacheCapable: false)"
    )


def run_benchmark(
    names_sizes: Sequence[int] = DEFAULT_NAMES,
    nodes_sizes: Sequence[int] = DEFAULT_NODES,
    *,
    repeat: int = DEFAULT_REPEAT,
    warmup: int = DEFAULT_WARMUP,
    seed: int = 0,
    spec_path: Path = BENCH_SPEC,
    settings: AppSettings | None = None,
    out: TextIO = sys.stdout,
    progress: Steps = NO_PROGRESS,
) -> Report:
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    if warmup < 0:
        raise ValueError("warmup must be >= 0")
    sizes = [*names_sizes, *nodes_sizes]
    if not sizes or any(n < 1 for n in sizes):
        raise ValueError("scenario sizes must be positive integers")
    settings = settings or AppSettings()
    spec = load_bench_spec(spec_path)
    table_nodes = max(sizes)
    report = Report(
        machine=_machine(),
        spec_path=str(spec_path),
        spec_digest=spec.digest,
        spec_sets=len(spec.compatibilities),
        spec_expressions=count_expressions(spec),
        image=BENCH_IMAGE,
        table_nodes=table_nodes,
        seed=seed,
        repeat=repeat,
        warmup=warmup,
        detail_limit=settings.detail_limit,
    )
    say(out, "## HTTP end-to-end benchmark")
    say(out)
    say(out, render_machine(report))
    say(out)

    progress.note(f"building a {table_nodes:,}-node table")
    t0 = time.perf_counter()
    objs = generate_cluster(table_nodes, seed)
    table = table_from_nodefeatures(objs)
    say(out, f"- feature table: {len(table):,} nodes, built in {time.perf_counter() - t0:,.1f} s")
    by_name = {o["metadata"]["name"]: o for o in objs}
    pod = bench_pod()
    fixtures: list[_Fixture] = []
    for n in names_sizes:
        names = sample_names(table, n, seed)
        fixtures.append(_Fixture(f"names-{n}", "names", names, names_body(pod, names), []))
    for n in nodes_sizes:
        names = sample_names(table, n, seed)
        nodes = generate_node_objects([by_name[name] for name in names], seed)
        sizes_ = [len(orjson.dumps(node)) for node in nodes]
        fixtures.append(_Fixture(f"nodes-{n}", "nodes", names, nodes_body(pod, nodes), sizes_))
        del nodes
    del objs, by_name
    say(out)
    # Setup objects (the table, the fixtures) are long-lived in a real server too, but the floor
    # shares this process: keep both servers' collections to what their own requests allocate.
    gc.collect()
    gc.freeze()
    try:
        report.scenarios = asyncio.run(
            _measure(
                fixtures,
                table=table,
                spec=spec,
                settings=settings,
                repeat=repeat,
                warmup=warmup,
                out=out,
                progress=progress,
            )
        )
    finally:
        gc.unfreeze()
    return report


# ---------------------------------------------------------------------------------------------------
# Rendering.


def _machine() -> dict[str, str]:
    facts = machine_facts()
    facts["aiohttp"] = importlib.metadata.version("aiohttp")
    facts["orjson"] = importlib.metadata.version("orjson")
    return facts


def render_machine(report: Report) -> str:
    m = report.machine
    return "\n".join(
        [
            f"- machine: {m['cpu']}, nproc {m['nproc']} (cpu_count {m['cpu_count']}), {m['platform']}",
            f"- python {m['python']} ({m['implementation']}), aiohttp {m['aiohttp']}, orjson {m['orjson']}, "
            f"numpy {m['numpy']}",
            f"- pod image {report.image}: spec {report.spec_path} ({report.spec_digest[:19]}…), "
            f"{report.spec_sets} compatibility sets, {report.spec_expressions} expressions; "
            f"detailLimit {report.detail_limit}",
            f"- seed {report.seed}; {report.warmup} warm-up then {report.repeat} timed requests per server, "
            "verb and scenario, sequential on one keep-alive connection per server, extender and floor "
            "alternating",
        ]
    )


def render_markdown(report: Report) -> str:
    lines = [
        "| scenario | verb | request KiB | extender median ms | extender p99 ms | floor median ms | "
        "floor p99 ms | extender / floor (median) | extender / floor (p99) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in report.scenarios:
        for v in s.verbs:
            lines.append(
                f"| {s.name} | {v.verb} | {s.request_bytes[v.verb] / 1024:,.0f} | "
                f"{fmt_ms(v.extender.median_ms)} | {fmt_ms(v.extender.p99_ms)} | "
                f"{fmt_ms(v.floor.median_ms)} | {fmt_ms(v.floor.p99_ms)} | "
                f"{v.ratio:.2f}× | {v.p99_ratio:.2f}× |"
            )
    lines.append("")
    lines.append(
        "names-N: N candidates as NodeNames (nodeCacheCapable: true); nodes-N: N full v1.Node objects "
        "in Nodes.items (nodeCacheCapable: false). Floor: a no-op aiohttp handler that decodes the body "
        "and answers the same payload. Ratios are extender / floor."
    )
    target = report.target()
    if target is not None:
        verdict = "met" if target["met"] else "NOT met"
        ratios = ", ".join(f"{verb} {r:.2f}×" for verb, r in target["ratios"].items())
        note = "" if target["nodes"] == target["target_nodes"] else f" (run at {target['nodes']:,} names)"
        lines.append("")
        lines.append(
            f"Target: extender ≤ {target['max_ratio']:.0f}× the floor at {target['target_nodes']:,} names"
            f"{note}: {ratios}: {verdict}."
        )
    return "\n".join(lines)


def _cpu_extra(pod: PodResult) -> dict[str, float]:
    """CPU per pod for the row, when both sides' CPU time was measurable (a quick run's few pods can
    read as 0 ticks in /proc: then the row has none, and the goal reads "not measured")."""
    if pod.extender_cpu_ms <= 0 or pod.floor_cpu_ms <= 0:
        return {}
    return {"cpu_ms": pod.extender_cpu_ms, "floor_cpu_ms": pod.floor_cpu_ms, "cpu_ratio": pod.cpu_ratio}


def run_scenario(ctx: RunContext) -> HarnessResult:
    """The harness's ``http`` scenario: node names at every node count, plus full Node objects."""
    node_objects = QUICK_NODES if ctx.quick else DEFAULT_NODES
    report = run_benchmark(
        ctx.nodes,
        node_objects,
        repeat=QUICK_REPEAT if ctx.quick else DEFAULT_REPEAT,
        warmup=QUICK_WARMUP if ctx.quick else DEFAULT_WARMUP,
        seed=ctx.seed,
        out=ctx.log,
        progress=ctx.progress,
    )
    rows: list[Row] = []
    for s in report.scenarios:
        form = "names" if s.form == "names" else "Node objects"
        for v in s.verbs:
            rows.append(
                Row.latency(
                    f"{v.verb} ({form})",
                    s.nodes,
                    v.extender.median_ms,
                    v.extender.p99_ms,
                    f"no-op floor, {v.verb} ({form})",
                    v.floor.median_ms,
                    v.floor.p99_ms,
                    v.extender.runs,
                )
            )
    pod_table = max(ctx.nodes)
    pod = run_pod_benchmark(
        min(POD_NAMES, pod_table),
        pod_table,
        pods=QUICK_PODS if ctx.quick else DEFAULT_PODS,
        warmup=QUICK_WARMUP if ctx.quick else DEFAULT_WARMUP,
        seed=ctx.seed,
        out=ctx.log,
        progress=ctx.progress,
    )
    rows.append(
        Row.latency(
            "filter + prioritize per pod (names)",
            pod.names,
            pod.extender.median_ms,
            pod.extender.p99_ms,
            "no-op floor, filter + prioritize per pod",
            pod.floor.median_ms,
            pod.floor.p99_ms,
            pod.extender.runs,
            _cpu_extra(pod),
        )
    )
    notes = [
        f"Feature table of {report.table_nodes:,} nodes; {report.warmup} warm-up then {report.repeat} "
        "sequential requests per series on one keep-alive connection per server, extender and floor "
        "alternating (both in this process). Every candidate goes to both verbs (prioritize's worst case).",
    ]
    notes += [
        f"Node objects: {s.nodes:,} full v1.Node of {(s.node_object_bytes_avg or 0) / 1024:.1f} KiB on "
        f"average ({s.request_bytes['filter'] / 1048576:,.1f} MiB body)."
        for s in report.scenarios
        if s.form == "nodes"
    ]
    notes.append(
        f"Per pod: {pod.names:,} names of a {pod.table_nodes:,}-node table, filter then prioritize of "
        f"the survivors, servers in processes of their own; CPU per pod {pod.extender_cpu_ms:.2f} ms "
        f"against the floor's {pod.floor_cpu_ms:.2f} ms ({pod.cpu_ratio:.2f}×)."
    )
    detail = report.as_json()
    pod_detail = dataclasses.asdict(pod)
    for side in ("extender", "floor"):
        pod_detail[side].pop("samples_ns", None)
    detail["pod"] = {**pod_detail, "ratio": pod.ratio, "p99_ratio": pod.p99_ratio, "cpu_ratio": pod.cpu_ratio}
    for scenario in detail["scenarios"]:  # the raw samples are in the per-row p50/p99 already
        for verb in scenario["verbs"]:
            for side in ("extender", "floor"):
                verb[side].pop("samples_ns", None)
    return HarnessResult(
        rows=rows,
        params={
            "names": list(ctx.nodes),
            "node_objects": list(node_objects),
            "table_nodes": report.table_nodes,
            "repeat": report.repeat,
            "warmup": report.warmup,
            "spec": report.spec_path,
            "image": report.image,
        },
        detail=detail,
        markdown=render_markdown(report) + "\n\n" + render_pod(pod),
        notes=notes,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.http",
        description="Benchmark the extender's /filter and /prioritize over HTTP against a no-op floor.",
    )
    p.add_argument(
        "--names", type=parse_sizes, default=None, help="NodeNames scenario sizes (default 500,5000)"
    )
    p.add_argument(
        "--nodes", type=parse_sizes, default=None, help="full Node object scenario sizes (default 500)"
    )
    p.add_argument(
        "--repeat", type=int, default=None, help=f"timed requests per series (default {DEFAULT_REPEAT})"
    )
    p.add_argument("--warmup", type=int, default=None, help=f"warm-up requests (default {DEFAULT_WARMUP})")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every number as JSON")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: names {QUICK_NAMES}, nodes {QUICK_NODES}, repeat {QUICK_REPEAT}",
    )
    p.add_argument("--seed", type=int, default=0, help="cluster generator seed")
    p.add_argument(
        "--pods",
        type=int,
        default=0,
        help=f"also run the per-pod scenario (filter + prioritize of the survivors) with this many pods "
        f"(default: not run; the harness runs {DEFAULT_PODS})",
    )
    p.add_argument(
        "--pod-names", type=int, default=POD_NAMES, help=f"candidates per pod (default {POD_NAMES})"
    )
    p.add_argument("--pod-table", type=int, default=POD_TABLE, help=f"table nodes (default {POD_TABLE})")
    p.add_argument("--pod-only", action="store_true", help="run only the per-pod scenario")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    names: tuple[int, ...] = (
        args.names if args.names is not None else (QUICK_NAMES if args.quick else DEFAULT_NAMES)
    )
    nodes: tuple[int, ...] = (
        args.nodes if args.nodes is not None else (QUICK_NODES if args.quick else DEFAULT_NODES)
    )
    repeat: int = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    warmup: int = args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else DEFAULT_WARMUP)
    try:
        pod = None
        if args.pods > 0:
            pod = run_pod_benchmark(
                args.pod_names, args.pod_table, pods=args.pods, warmup=warmup, seed=args.seed, out=stream
            )
            if args.pod_only:
                pod_json = dataclasses.asdict(pod)
                finish(stream, render_pod(pod), args.json, {**pod_json, "ratio": pod.ratio})
                return 0
        report = run_benchmark(names, nodes, repeat=repeat, warmup=warmup, seed=args.seed, out=stream)
    except BenchmarkError as exc:
        print(f"\nABORT: a server gave an unexpected answer — no numbers reported.\n{exc}", file=sys.stderr)
        return 1
    data = report.as_json()
    markdown = render_markdown(report)
    if pod is not None:
        data["pod"] = {**dataclasses.asdict(pod), "ratio": pod.ratio, "cpu_ratio": pod.cpu_ratio}
        markdown += "\n\n" + render_pod(pod)
    finish(stream, markdown, args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
