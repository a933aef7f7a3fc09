"""What `make run` serves: the bundled examples behind config/extender.yaml answer the requests in
examples/requests/ exactly as the stored answers (which the README quotes) say.

After an intended change of behaviour: UPDATE_ANSWERS=1 .venv/bin/pytest tests/test_run_examples.py
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from extender.cli.server import settings_from
from extender.config import load_config
from extender.http.app import build_app
from extender.sources.files import FileFeatures, FileSpecs

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = sorted(
    p for p in (ROOT / "examples" / "requests").glob("*.json") if not p.name.endswith(".answer.json")
)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    config = load_config(ROOT / "config" / "extender.yaml")
    features = FileFeatures(config.features.path, nfd_namespace=config.features.nfdNamespace)
    specs = FileSpecs(config.specs.images)
    await features.refresh()
    await specs.refresh()
    assert features.errors == {} and specs.errors == {}
    assert len(features.table) == 12
    async with TestClient(TestServer(build_app(features, specs, settings_from(config)))) as c:
        yield c


def test_every_request_has_an_answer() -> None:
    assert REQUESTS
    for request in REQUESTS:
        assert request.name.split("-")[0] in ("filter", "prioritize"), request.name
        assert request.with_suffix(".answer.json").exists(), request.name


@pytest.mark.parametrize("request_file", REQUESTS, ids=[p.stem for p in REQUESTS])
async def test_example_answers(client: TestClient[Any, Any], request_file: Path) -> None:
    verb = request_file.name.split("-")[0]
    resp = await client.post(f"/{verb}", data=request_file.read_bytes())
    assert resp.status == 200
    got = orjson.loads(await resp.read())
    answer = request_file.with_suffix(".answer.json")
    if os.environ.get("UPDATE_ANSWERS"):
        answer.write_bytes(orjson.dumps(got, option=orjson.OPT_INDENT_2) + b"\n")
    assert got == orjson.loads(answer.read_bytes())
