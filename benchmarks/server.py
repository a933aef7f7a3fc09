"""A benchmark server in a process of its own: the extender (as ``serve`` builds it) or the no-op floor.

Why a separate process: under concurrent load the client's own work (sending, reading responses) must
not share the server's event loop and core, or the load generator would measure itself. The parent
starts ``python -m benchmarks.server extender --nodes N`` (or ``floor``), reads one JSON line from its
stdout, ``{"url": "http://127.0.0.1:PORT", "nodes": [...]}`` (the table's node names, so the client
can build requests without generating the cluster again), and closes the child's stdin to stop it.

The extender is :func:`extender.http.app.build_app` over a :mod:`benchmarks.cluster` table with the
benchmark spec behind single-flight lookups, on 127.0.0.1 only, no access log, no ``gc.freeze`` (as
``serve`` runs). :func:`start_server` / :func:`stop_server` are the parent's side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 900.0  # a 50,000-node table takes a minute or two on a slow, busy machine


@dataclass(slots=True)
class ServerProcess:
    kind: str
    url: str
    nodes: list[str]
    process: asyncio.subprocess.Process


class ServerError(RuntimeError):
    """The child did not come up (its stderr is in the message)."""


async def start_server(kind: str, nodes: int = 0, seed: int = 0) -> ServerProcess:
    """Start ``python -m benchmarks.server KIND`` and wait until it listens."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.server",
        kind,
        "--nodes",
        str(nodes),
        "--seed",
        str(seed),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=64 << 20,  # the ready line carries every node name
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
        doc = orjson.loads(line) if line else None
    except (TimeoutError, orjson.JSONDecodeError):
        doc = None
    if not isinstance(doc, dict) or "url" not in doc:
        await stop_server(ServerProcess(kind, "", [], proc))
        err = b""
        if proc.stderr is not None:
            err = await proc.stderr.read()
        raise ServerError(f"benchmarks.server {kind} did not start: {err.decode(errors='replace')[-2000:]}")
    return ServerProcess(kind, str(doc["url"]), list(doc.get("nodes", [])), proc)


async def stop_server(server: ServerProcess, timeout: float = 15.0) -> None:
    """Close the child's stdin (it shuts down cleanly) and wait; kill it only if it hangs."""
    proc = server.process
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


# ---------------------------------------------------------------------------------------------------
# The child.


def _extender_app(nodes: int, seed: int) -> tuple[web.Application, list[str]]:
    from benchmarks.cluster import generate_cluster
    from benchmarks.http import BENCH_IMAGE
    from benchmarks.matcher import load_bench_spec
    from extender.http.app import build_app
    from extender.match.table import table_from_nodefeatures
    from extender.sources.base import StaticFeatures, StaticSpecs
    from extender.sources.heap import freeze
    from extender.sources.specs import SharedLookups

    table = table_from_nodefeatures(generate_cluster(nodes, seed))
    lookups = SharedLookups(StaticSpecs({BENCH_IMAGE: load_bench_spec()}))
    freeze()  # what serve's heap keeper does once the features are loaded (extender/sources/heap.py)
    return build_app(StaticFeatures(table), lookups), list(table.node_names())


async def _serve(kind: str, nodes: int, seed: int) -> None:
    if kind == "extender":
        app, names = _extender_app(nodes, seed)
    else:
        from benchmarks.http import build_floor_app

        app, names = build_floor_app(), []
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        sys.stdout.buffer.write(orjson.dumps({"url": f"http://{host}:{port}", "nodes": names}) + b"\n")
        sys.stdout.flush()
        # serve until the parent closes our stdin (or goes away)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.server", description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=("extender", "floor"))
    p.add_argument("--nodes", type=int, default=0, help="feature table size (extender)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    asyncio.run(_serve(args.kind, args.nodes, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
