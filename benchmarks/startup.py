"""Startup: ``serve`` from its first instruction to ``/readyz`` answering 200, with its resident set.

Why: a restarted extender (a rollout, an eviction, a crash) answers no pod until its initial load is
in; the goals are 5,000 NodeFeatures ready in at most 5 s from files and 10 s from the API server,
50,000 in 60 s, and a resident set after the initial list within 1.3× of the streamed steady state
(the ``memory`` scenario's figure: the same objects arriving one at a time as watch events; here
moved onto each series' own floor, since the kube series imports more).

Method: for each series and size, a fresh ``python -m extender.cli serve`` child (serve's real start
path: config, sources, listener) on a free loopback port; the clock starts just before the child is
spawned and stops at the first ``GET /readyz`` that answers 200 (polled every 20 ms). Right then the
child's ``VmRSS`` and ``VmHWM`` (peak) are read from ``/proc/<pid>/status``. Series:

* ``files-json``: a directory of one NodeFeature per file, ``kubectl get -o json`` style (indented
  JSON), from :mod:`benchmarks.cluster`;
* ``files-yaml``: the same objects as YAML files;
* ``kube``: ``features.source: kubernetes`` against the API-server stand-in
  (:mod:`tests.kube_apiserver`, in this process) holding the NodeFeatures and one Node per node; the
  extender lists both in pages of 500 (its default), as from a real API server.

Baselines, in the same run: the same series with no NodeFeature at all (imports, config, listener:
the floor a startup cannot go under), and for memory, the ``memory`` scenario's streamed child at the
same size (``streamed_rss_mib``; ``rss_over_streamed`` is the ratio the goal is about).

Run: ``python -m benchmarks.startup [--nodes 1000,5000] [--series files-json,files-yaml,kube]
[--json PATH] [--quick]``, or as the harness's ``startup`` scenario. Linux only (``/proc``). Nothing
here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import orjson
import yaml

from benchmarks.cluster import iter_cluster
from benchmarks.harness import Row, RunContext, ScenarioResult
from benchmarks.memory import measure as measure_streamed
from benchmarks.progress import NO_PROGRESS, Steps
from benchmarks.report import finish, machine_facts, parse_sizes, say
from extender.features.nodefeature import NODE_NAME_LABEL
from extender.sources.kube import NODEFEATURES_PATH, NODES_PATH
from tests.kube_apiserver import FakeApiServer
from tests.kube_objects import kubeconfig, node_object

DEFAULT_NODES: tuple[int, ...] = (1000, 5000)
QUICK_NODES: tuple[int, ...] = (50,)
SERIES: tuple[str, ...] = ("files-json", "files-yaml", "kube")
ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 1800.0
POLL_S = 0.02
KIB_PER_MIB = 1024


@dataclass(frozen=True, slots=True)
class Sample:
    series: str
    nodes: int
    ready_s: float
    rss_mib: float
    peak_mib: float


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _status_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def write_files(directory: Path, n: int, seed: int, fmt: str) -> None:
    """``n`` generated NodeFeatures, one per file, as JSON (indented, as kubectl writes it) or YAML."""
    directory.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    for obj in iter_cluster(n, seed):
        name = obj["metadata"]["name"]
        if fmt == "json":
            (directory / f"{name}.json").write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2))
        else:
            (directory / f"{name}.yaml").write_text(yaml.dump(obj, Dumper=dumper, sort_keys=False))


@contextlib.asynccontextmanager
async def _api_server(n: int, seed: int) -> AsyncIterator[str]:
    server = FakeApiServer()
    for obj in iter_cluster(n, seed):
        await server.put(NODEFEATURES_PATH, dict(obj))
        await server.put(NODES_PATH, node_object(obj["metadata"]["labels"][NODE_NAME_LABEL]))
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


async def _wait_ready(proc: subprocess.Popen[bytes], url: str, t0: float) -> float:
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode} before /readyz answered 200")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    await resp.read()
                    if resp.status == 200:
                        return time.perf_counter() - t0
            if time.perf_counter() - t0 > READY_TIMEOUT_S:
                raise RuntimeError(f"/readyz not 200 after {READY_TIMEOUT_S:.0f} s")
            await asyncio.sleep(POLL_S)


async def _start_serve(series: str, n: int, config: dict[str, Any], workdir: Path) -> Sample:
    port = _free_port()
    config = {**config, "listen": {"host": "127.0.0.1", "port": port}, "logLevel": "warning"}
    config_path = workdir / "extender.yaml"
    config_path.write_bytes(orjson.dumps(config))
    log_path = workdir / f"serve-{series}-{n}.log"
    with log_path.open("wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "extender.cli", "serve", "--config", str(config_path)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            try:
                ready_s = await _wait_ready(proc, f"http://127.0.0.1:{port}/readyz", t0)
            except RuntimeError as exc:
                raise RuntimeError(f"{series} at {n}: {exc}: {log_path.read_text()[-2000:]}") from None
            status = _status_kib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return Sample(series, n, ready_s, status["VmRSS"] / KIB_PER_MIB, status["VmHWM"] / KIB_PER_MIB)


async def measure(series: str, n: int, seed: int, workdir: Path) -> Sample:
    """One fresh ``serve`` for ``series`` with ``n`` NodeFeatures (0: the floor)."""
    workdir.mkdir(parents=True, exist_ok=True)
    images = workdir / "images.yaml"
    images.write_text("images: {}\n")
    specs = {"source": "files", "images": str(images), "reloadSeconds": 0}
    if series in ("files-json", "files-yaml"):
        directory = workdir / f"{series}-{n}"
        if not directory.exists():
            write_files(directory, n, seed, series.removeprefix("files-"))
        features = {"source": "files", "path": str(directory), "reloadSeconds": 0}
        return await _start_serve(series, n, {"features": features, "specs": specs}, workdir)
    if series != "kube":
        raise ValueError(f"unknown series {series!r}")
    async with _api_server(n, seed) as url:
        kc = kubeconfig(workdir / "kubeconfig", url)
        features = {"source": "kubernetes", "kubeconfig": str(kc)}
        return await _start_serve(series, n, {"features": features, "specs": specs}, workdir)


@dataclass(frozen=True, slots=True)
class Result:
    floors: dict[str, Sample]
    samples: list[Sample]
    streamed_rss_mib: dict[int, float]
    streamed_floor_mib: float

    def streamed_like(self, x: Sample) -> float:
        """The streamed steady state at ``x.nodes``, moved onto ``x``'s series' floor (the kube series
        imports kubernetes-asyncio, which the memory child does not): streamed - its floor + floor."""
        return self.streamed_rss_mib[x.nodes] - self.streamed_floor_mib + self.floors[x.series].rss_mib


def run_benchmark(
    sizes: Sequence[int] = DEFAULT_NODES,
    series: Sequence[str] = SERIES,
    *,
    seed: int = 0,
    out: TextIO = sys.stdout,
    progress: Steps = NO_PROGRESS,
) -> Result:
    if not sizes or min(sizes) < 1:
        raise ValueError("sizes must be positive")
    say(out, "## Startup benchmark")
    say(out)
    floors: dict[str, Sample] = {}
    samples: list[Sample] = []
    streamed: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        progress.step("floors (no NodeFeatures)")
        streamed_floor = measure_streamed(0, seed).rss_mib
        say(out, f"- streamed (memory scenario's child), no nodes: RSS {streamed_floor:,.1f} MiB")
        for s in series:
            floors[s] = asyncio.run(measure(s, 0, seed, Path(tmp) / s))
            f = floors[s]
            say(out, f"- {s}, no NodeFeatures: ready in {f.ready_s:.2f} s, RSS {f.rss_mib:,.1f} MiB")
        for n in sizes:
            progress.step(f"{n:,} nodes")
            progress.note("streamed steady state (memory child)")
            streamed[n] = measure_streamed(n, seed).rss_mib
            say(
                out, f"- {n:,} nodes, streamed steady state (memory scenario's child): {streamed[n]:,.1f} MiB"
            )
            for s in series:
                progress.note(f"{s}: serve to /readyz")
                x = asyncio.run(measure(s, n, seed, Path(tmp) / s))
                samples.append(x)
                say(
                    out,
                    f"- {s}, {n:,} NodeFeatures: ready in {x.ready_s:.2f} s "
                    f"({x.ready_s / floors[s].ready_s:.1f}× the floor); RSS {x.rss_mib:,.1f} MiB "
                    f"({x.rss_mib / (streamed[n] - streamed_floor + floors[s].rss_mib):.2f}× streamed), "
                    f"peak {x.peak_mib:,.1f} MiB",
                )
    say(out)
    return Result(floors, samples, streamed, streamed_floor)


def render_markdown(r: Result) -> str:
    lines = [
        "| series | nodes | ready s | floor s | RSS at ready MiB | streamed MiB | RSS ÷ streamed "
        "| peak MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in r.samples:
        st = r.streamed_like(x)
        lines.append(
            f"| {x.series} | {x.nodes:,} | {x.ready_s:.2f} | {r.floors[x.series].ready_s:.2f} "
            f"| {x.rss_mib:,.1f} | {st:,.1f} | {x.rss_mib / st:.2f} | {x.peak_mib:,.1f} |"
        )
    return "\n".join(lines)


def _doc(r: Result) -> dict[str, Any]:
    return {
        "floors": {k: dataclasses.asdict(v) for k, v in r.floors.items()},
        "sizes": [dataclasses.asdict(s) for s in r.samples],
        "streamed_rss_mib": {str(k): v for k, v in r.streamed_rss_mib.items()},
        "streamed_floor_mib": r.streamed_floor_mib,
    }


def run_scenario(ctx: RunContext) -> ScenarioResult:
    r = run_benchmark(ctx.nodes, seed=ctx.seed, out=ctx.log, progress=ctx.progress)
    rows = []
    for x in r.samples:
        floor = r.floors[x.series]
        st = r.streamed_like(x)
        rows.append(
            Row.latency(
                series=f"{x.series}: serve to /readyz",
                nodes=x.nodes,
                p50_ms=x.ready_s * 1000,
                p99_ms=x.ready_s * 1000,
                baseline="the same serve with no NodeFeatures",
                baseline_p50_ms=floor.ready_s * 1000,
                baseline_p99_ms=floor.ready_s * 1000,
                samples=1,
                extra={
                    "rss_at_ready_mib": x.rss_mib,
                    "peak_rss_mib": x.peak_mib,
                    "streamed_rss_mib": st,
                    "rss_over_streamed": x.rss_mib / st,
                },
            )
        )
    return ScenarioResult(
        rows=rows,
        params={"series": list(SERIES), "poll_s": POLL_S},
        detail=_doc(r),
        markdown=render_markdown(r),
        notes=[
            "One fresh serve child per point; time from spawn to the first /readyz 200 (polled every "
            "20 ms), RSS and peak (VmHWM) read at that moment. Streamed: the memory scenario's child at "
            "the same size (objects arriving one at a time as watch events), minus its own no-node "
            "floor plus the series' floor (the kube series also imports kubernetes-asyncio)."
        ],
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=parse_sizes, default=None, help="cluster sizes")
    p.add_argument("--series", default=",".join(SERIES), help=f"comma-separated, of {', '.join(SERIES)}")
    p.add_argument("--json", type=Path, default=None, metavar="PATH")
    p.add_argument("--quick", action="store_true", help="smoke run")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    series = [s for s in args.series.split(",") if s]
    if not series or any(s not in SERIES for s in series):
        p.error(f"--series: expected some of {', '.join(SERIES)}")
    stream = out if out is not None else sys.stdout
    sizes = args.nodes or (QUICK_NODES if args.quick else DEFAULT_NODES)
    r = run_benchmark(sizes, series, seed=args.seed, out=stream)
    finish(stream, render_markdown(r), args.json, {"machine": machine_facts(), **_doc(r)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
