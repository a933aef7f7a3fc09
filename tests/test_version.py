"""The version: ``compat-extender --version``, the startup log line, ``compat_extender_build_info``;
and a ``/metrics`` body without prometheus_client's ``*_created`` series."""

from __future__ import annotations

import logging
import platform
import re
from importlib import metadata
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, generate_latest

import extender
from extender.cli.main import main
from extender.config import load_config
from extender.http.metrics import REVISION_ENV, Metrics, build_info
from tests.file_sources import SPEC_A, nf, put
from tests.serving import serving_config

VERSION = metadata.version("nfd-compat-extender")


def test_version_is_the_installed_distributions() -> None:
    assert extender.__version__ == VERSION
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", VERSION)


def test_version_without_metadata_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.delitem(vars(extender), "__version__", raising=False)  # the cached lookup
    monkeypatch.setattr(metadata, "version", missing)
    assert extender.__version__ == "0+unknown"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = extender.nothing


def test_dash_dash_version(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REVISION_ENV, "0123abc")
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out == f"compat-extender {VERSION} (Python {platform.python_version()}, revision 0123abc)\n"


def test_revision_comes_from_the_environment_or_is_unknown() -> None:
    assert build_info({REVISION_ENV: " 0123abc\n"})["revision"] == "0123abc"
    assert build_info({})["revision"] == "unknown"
    assert build_info({REVISION_ENV: ""})["revision"] == "unknown"
    assert build_info({}) == {
        "version": VERSION,
        "python_version": platform.python_version(),
        "revision": "unknown",
    }


def test_created_series_are_dropped_from_this_registry_only() -> None:
    """The library's default emits ``*_created`` (so the check on /metrics below can fail), and
    dropping them in :class:`Metrics` leaves other registries in the process as they were."""
    metrics = Metrics()
    metrics.requests.labels("filter", "200").inc()
    assert b"_created" not in generate_latest(metrics.registry)
    other = CollectorRegistry()
    Counter("other_things", "Things.", registry=other).inc()
    assert b"other_things_created " in generate_latest(other)


async def test_served_version_log_build_info_and_no_created_series(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REVISION_ENV, "feedbeef")
    (tmp_path / "nf").mkdir()
    put(tmp_path / "nf" / "a.yaml", yaml.safe_dump(nf("a", "node-a", ["vfio-pci"])))
    put(tmp_path / "dpdk.yaml", SPEC_A)
    put(tmp_path / "images.yaml", "images:\n  reg/dpdk:1: dpdk.yaml\n")
    put(
        tmp_path / "extender.yaml",
        yaml.safe_dump(
            {"listen": {"port": 0}, "features": {"path": "nf"}, "specs": {"images": "images.yaml"}}
        ),
    )
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "reg/dpdk:1"}]}}
    caplog.set_level(logging.INFO, logger="compat-extender")
    config = load_config(tmp_path / "extender.yaml")
    async with serving_config(config) as urls, aiohttp.ClientSession() as session:
        base = urls[0]
        async with session.post(f"{base}/filter", json={"Pod": pod, "NodeNames": ["node-a"]}) as resp:
            assert resp.status == 200
        async with session.get(f"{base}/metrics") as resp:
            assert resp.status == 200
            body = await resp.text()
    starting = [r.getMessage() for r in caplog.records if "starting" in r.getMessage()]
    assert starting == [
        f"compat-extender {VERSION} starting (Python {platform.python_version()}, revision feedbeef)"
    ]

    lines = body.splitlines()
    info = [line for line in lines if line.startswith("compat_extender_build_info{")]
    assert info == [
        f'compat_extender_build_info{{python_version="{platform.python_version()}",'
        f'revision="feedbeef",version="{VERSION}"}} 1.0'
    ]
    # counters and a histogram with children: each would have had a _created sample
    assert any(line.startswith('compat_extender_requests_total{code="200",verb="filter"}') for line in lines)
    assert any(line.startswith("compat_extender_request_duration_seconds_bucket{") for line in lines)
    assert any(line.startswith("compat_extender_node_verdicts_total{") for line in lines)
    assert [line for line in lines if "_created" in line] == []
