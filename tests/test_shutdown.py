"""Graceful shutdown of ``compat-extender serve`` (a real process): SIGTERM closes the listener at
once, lets the request in flight finish with its real answer, closes the sources and exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp

from tests.oci_registry import FakeRegistry, serve_registry
from tests.waiting import finishes, until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def _refused(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except (ConnectionRefusedError, ConnectionResetError):
        # refused once the listener is closed; reset when the connect raced the close itself
        return True
    writer.close()
    return False


async def test_sigterm_drains_the_request_in_flight(tmp_path: Path) -> None:
    registry = FakeRegistry()
    async with serve_registry(registry) as registry_url:
        host = registry_url.removeprefix("http://")
        digest = registry.put_image("telco/app", "1")
        registry.put_artifact("telco/app", digest, (EXAMPLES / "specs" / "dpdk-app.yaml").read_bytes())
        config = tmp_path / "extender.yaml"
        config.write_text(
            json.dumps(
                {
                    "listen": {"host": "127.0.0.1", "port": 0},
                    "features": {"path": str(EXAMPLES / "nodefeatures"), "reloadSeconds": 0},
                    "specs": {"source": "registry"},
                    "registry": {"lookupSeconds": 20, "requestSeconds": 20},
                }
            )
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "extender.cli",
            "serve",
            "--config",
            str(config),
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stderr is not None
        try:
            seen: list[str] = []
            match = None
            while match is None:
                line = (await finishes(proc.stderr.readline(), "a line from serve")).decode()
                assert line, "".join(seen)
                seen.append(line)
                match = re.search(r"listening on http://([\d.]+):(\d+)", line)
            ext_host, ext_port = match.group(1), int(match.group(2))

            body = json.loads((EXAMPLES / "requests" / "filter-dpdk.json").read_text())
            body["Pod"]["spec"]["containers"][0]["image"] = f"{host}/telco/app:1"
            registry.delay_next(10**6)  # the lookup's first registry request hangs until released
            async with aiohttp.ClientSession() as session:
                url = f"http://{ext_host}:{ext_port}/filter"
                in_flight = asyncio.create_task(session.post(url, json=body))
                await until(lambda: not registry.faults, "the lookup's request reaches the registry")
                proc.send_signal(signal.SIGTERM)
                # the listener closes, while the request is still being answered
                await until(lambda: _refused(ext_host, ext_port), "the listener closes after SIGTERM")
                assert not in_flight.done()
                registry.release()  # the registry answers: the drained request gets its real answer
                response = await finishes(in_flight, "the request in flight is answered")
                assert response.status == 200
                answer = await response.json()
                assert answer["Error"] == "" and answer["NodeNames"], answer
                assert "dpdk-e810-01" in answer["NodeNames"]
            assert await finishes(proc.wait(), "serve exits after draining") == 0
            rest = (await proc.stderr.read()).decode()
            assert "stopping: draining in-flight requests" in rest, rest
            assert "Traceback" not in rest, rest
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
