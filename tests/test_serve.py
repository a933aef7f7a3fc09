"""`compat-extender serve` end to end on loopback: file sources, reload while serving, a separate
debug listener, SIGTERM; and the CLI's exit codes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from extender.cli.main import main
from extender.config import load_config
from tests.file_sources import SPEC_A, nf, put
from tests.serving import serving_config
from tests.waiting import SAFETY_SECONDS, until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "nf").mkdir()
    put(tmp_path / "nf" / "a.yaml", yaml.safe_dump(nf("a", "node-a", ["vfio-pci"])))
    put(tmp_path / "nf" / "b.yaml", yaml.safe_dump(nf("b", "node-b", ["nvidia"])))
    put(tmp_path / "dpdk.yaml", SPEC_A)
    put(tmp_path / "images.yaml", "images:\n  reg/dpdk:1: dpdk.yaml\n")
    return tmp_path


def write_config(tree: Path, **extra: Any) -> Path:
    cfg = {
        "listen": {"port": 0},
        "features": {"path": "nf", "reloadSeconds": 0.02},
        "specs": {"images": "images.yaml", "reloadSeconds": 0.02},
        **extra,
    }
    path = tree / "extender.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


FILTER = {
    "Pod": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "reg/dpdk:1"}]}},
    "NodeNames": ["node-a", "node-b"],
}


class Running:
    def __init__(self, urls: list[str], session: aiohttp.ClientSession) -> None:
        self.urls = urls
        self.session = session

    async def json(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else orjson.dumps(body)
        async with self.session.request(method, url, data=data) as resp:
            raw = await resp.read()
            return resp.status, orjson.loads(raw) if resp.content_type == "application/json" else raw.decode()


@pytest.fixture
async def running(tree: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    extra = getattr(request, "param", {})
    config = load_config(write_config(tree, **extra))
    async with serving_config(config) as urls, aiohttp.ClientSession() as session:
        yield Running(urls, session)


async def test_serves_from_files_and_reloads(running: Running, tree: Path) -> None:
    base = running.urls[0]
    assert (await running.json("GET", f"{base}/readyz"))[0] == 200
    status, out = await running.json("POST", f"{base}/filter", FILTER)
    assert (
        status == 200
        and out["NodeNames"] == ["node-a"]
        and list(out["FailedAndUnresolvableNodes"]) == ["node-b"]
    )

    # node-b gets vfio-pci: after the next reload it passes too
    put(tree / "nf" / "b.yaml", yaml.safe_dump(nf("b", "node-b", ["nvidia", "vfio-pci"])))
    last: dict[str, Any] = {}

    async def filtered_to(names: list[str]) -> bool:
        status, last["out"] = await running.json("POST", f"{base}/filter", FILTER)
        return bool(status == 200 and last["out"]["NodeNames"] == names)

    await until(lambda: filtered_to(["node-a", "node-b"]), lambda: f"node-b passes after the reload: {last}")

    # the spec changes to require nvidia: node-a drops out
    put(tree / "dpdk.yaml", SPEC_A.replace(b"vfio-pci", b"nvidia"))
    await until(lambda: filtered_to(["node-b"]), lambda: f"only node-b passes after the reload: {last}")

    # a broken file is reported and changes nothing
    put(tree / "nf" / "a.yaml", "{{{")

    async def reported() -> bool:
        _, last["out"] = await running.json("GET", f"{base}/debug/sources")
        return bool(last["out"]["sources"]["features"]["errors"])

    await until(reported, lambda: f"the broken file is reported: {last}")
    out = last["out"]
    assert "a.yaml" in next(iter(out["sources"]["features"]["errors"]))
    assert out["nodes"] == 2
    status, text = await running.json("GET", f"{base}/metrics")
    assert 'compat_extender_source_errors{source="features"} 1.0' in text


@pytest.mark.parametrize("running", [{"debug": {"port": 0, "enabled": False}}], indirect=True)
async def test_debug_can_be_switched_off(running: Running) -> None:
    (base,) = running.urls
    assert (await running.json("GET", f"{base}/debug/explain?image=reg/dpdk:1"))[0] == 404
    assert (await running.json("POST", f"{base}/filter", FILTER))[0] == 200


DEBUG_PORT = free_port()


@pytest.mark.parametrize("running", [{"debug": {"port": DEBUG_PORT}}], indirect=True)
async def test_debug_on_its_own_port(running: Running) -> None:
    base, debug = running.urls
    assert debug.endswith(f":{DEBUG_PORT}")
    assert (await running.json("GET", f"{base}/debug/explain?image=reg/dpdk:1"))[0] == 404
    status, out = await running.json("GET", f"{debug}/debug/explain?image=reg/dpdk:1&node=node-a")
    assert status == 200 and out["nodes"][0]["verdict"] == "compatible"
    assert (await running.json("POST", f"{debug}/filter", FILTER))[0] == 404


def test_sigterm_stops_the_server_cleanly(tree: Path) -> None:
    cfg = write_config(tree)
    proc = subprocess.Popen(
        [sys.executable, "-m", "extender.cli", "serve", "--config", str(cfg)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        seen: list[str] = []
        m = None
        while m is None:  # until serve says where it listens, or ends (readline then returns "")
            line = proc.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
            m = re.search(r"listening on (http://\S+)", line)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=SAFETY_SECONDS) == 0
        rest = proc.stderr.read()
        assert "stopping: draining in-flight requests" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_cli_configuration_errors_exit_2(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--features", str(tree / "missing"), "--images", str(tree / "images.yaml")]) == 2
    err = capsys.readouterr().err
    assert "features.path:" in err and "is not a directory" in err
    bad = tree / "bad.yaml"
    bad.write_text("listen: {port: many}\n")
    assert main(["serve", "--config", str(bad)]) == 2
    assert "configuration error: listen.port: expected an integer, got str" in capsys.readouterr().err


def test_cli_port_in_use_exits_2(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = write_config(tree, listen={"port": port})
        assert main(["serve", "--config", str(cfg)]) == 2
    assert "cannot serve" in capsys.readouterr().err


def test_print_config(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config", str(write_config(tree)), "--port", "9999", "--print-config"]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["listen"]["port"] == 9999 and out["features"]["path"] == str(tree / "nf")


def test_check_spec_exit_codes(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-spec", str(tree / "dpdk.yaml")]) == 0
    assert "ok, 1 compatibility sets" in capsys.readouterr().out
    (tree / "bad.yaml").write_text("version: v1alpha1\ncompatibilities: [{rules: 3}]\n")
    assert main(["check-spec", str(tree / "dpdk.yaml"), str(tree / "bad.yaml")]) == 1
    assert "INVALID: compatibilities[0].rules" in capsys.readouterr().out
    assert main(["check-spec", str(tree / "nope.yaml")]) == 2
