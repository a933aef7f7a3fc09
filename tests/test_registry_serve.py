"""The registry spec source in the service and the CLI, against a real registry (Debian's
docker-registry, distribution 2.8): ``serve`` with ``specs.source: registry`` answers exactly as
with the same spec from a file; 100 concurrent filter calls for one new image make one lookup;
``attach`` and ``discover`` from the command line."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from extender.cli.main import main
from extender.http.app import AppSettings, build_app
from extender.sources.base import StaticFeatures
from extender.sources.files import FileFeatures
from extender.sources.registry.client import RegistryClient
from extender.sources.registry.lookup import RegistrySpecs
from extender.sources.registry.transport import AiohttpTransport
from extender.sources.specs import SharedLookups
from tests.distribution import Distribution
from tests.oci_images import push_image_sync
from tests.registry_specs import SPEC, pushed_with_spec
from tests.serving import serving

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FILE_IMAGE = "registry.example.com/hpc/cfd-solver:2024.2"

_names = itertools.count()


def node_names() -> list[str]:
    return sorted(p.stem for p in (EXAMPLES / "nodefeatures").glob("*.yaml"))


def pod(image: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "d"},
        "spec": {"containers": [{"name": "c", "image": image}]},
    }


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, data=orjson.dumps(body)) as resp:
        return resp.status, orjson.loads(await resp.read())


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_serve_with_registry_specs_answers_like_files(
    distribution: Distribution, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    image = await pushed_with_spec(distribution)
    names = node_names()
    common = {"listen": {"port": 0}, "features": {"path": str(EXAMPLES / "nodefeatures"), "reloadSeconds": 0}}
    async with serving({**common, "specs": {"source": "registry"}}, tmp_path) as base:
        status, from_registry = await post(session, f"{base}/filter", {"Pod": pod(image), "NodeNames": names})
        assert status == 200 and from_registry["Error"] == ""
        status, scores = await post(session, f"{base}/prioritize", {"Pod": pod(image), "NodeNames": names})
        async with session.get(f"{base}/metrics") as resp:
            metrics = await resp.text()
        async with session.get(f"{base}/debug/sources") as resp:
            sources = await resp.json()
    files = {**common, "specs": {"images": str(EXAMPLES / "images.yaml"), "reloadSeconds": 0}}
    async with serving(files, tmp_path) as base:
        _, from_files = await post(session, f"{base}/filter", {"Pod": pod(FILE_IMAGE), "NodeNames": names})
        _, file_scores = await post(
            session, f"{base}/prioritize", {"Pod": pod(FILE_IMAGE), "NodeNames": names}
        )
    assert from_registry["NodeNames"] == from_files["NodeNames"]
    assert 0 < len(from_registry["NodeNames"]) < len(names)
    assert set(from_registry["FailedAndUnresolvableNodes"]) == set(from_files["FailedAndUnresolvableNodes"])
    assert scores == file_scores
    assert 'compat_extender_cache_entries{cache="specs"} 1.0' in metrics
    assert 'compat_extender_spec_lookups_total{result="spec"}' in metrics
    assert sources["sources"]["specs"] == {"reloads": 1, "errors": {}}
    # every cache, the table's and the registry's, with its bounds and counters
    caches = sources["caches"]
    assert {"results", "explanations", "tags", "referrers", "negative", "specs"} <= set(caches)
    assert caches["specs"]["entries"] == 1 and caches["specs"]["maxEntries"] > 1
    assert caches["results"] == {
        **caches["results"],
        "entries": 1,
        "misses": 1,
        "hits": 1,
    }  # filter, prioritize
    assert caches["explanations"]["misses"] >= 1 and caches["explanations"]["bytes"] > 0


async def test_lookup_failures_follow_the_policy(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    # nothing listens on port 9 of loopback: connection refused
    image = "127.0.0.1:9/nothing/here:1"
    common = {"listen": {"port": 0}, "features": {"path": str(EXAMPLES / "nodefeatures"), "reloadSeconds": 0}}
    body = {"Pod": pod(image), "NodeNames": node_names()}
    for policy, expect_error in (("Fail", True), ("Ignore", False)):
        config = {**common, "failurePolicy": policy, "specs": {"source": "registry"}}
        async with serving(config, tmp_path) as base:
            status, out = await post(session, f"{base}/filter", body)
            async with session.get(f"{base}/debug/sources") as resp:
                errors = (await resp.json())["sources"]["specs"]["errors"]
        assert status == 200
        if expect_error:
            assert "ClientConnectorError" in out["Error"] or "Connect" in out["Error"], out
            assert out["NodeNames"] is None or out["NodeNames"] == []
        else:
            assert out["Error"] == "" and out["NodeNames"] == body["NodeNames"]
        assert image in next(iter(errors))


async def test_hundred_concurrent_filters_make_one_lookup(
    distribution: Distribution, session: aiohttp.ClientSession
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    image = await pushed_with_spec(distribution)
    features = FileFeatures(EXAMPLES / "nodefeatures")
    await features.refresh()
    transport = AiohttpTransport()
    specs = RegistrySpecs(RegistryClient(transport))
    lookups = SharedLookups(specs)
    app = build_app(StaticFeatures(features.table), lookups, AppSettings())
    body = {"Pod": pod(image), "NodeNames": node_names()}
    try:
        async with TestClient(TestServer(app)) as client:

            async def one() -> Any:
                resp = await client.post("/filter", data=orjson.dumps(body))
                assert resp.status == 200
                return await resp.json()

            answers = await asyncio.gather(*(one() for _ in range(100)))
    finally:
        await transport.close()
    assert all(a == answers[0] for a in answers) and answers[0]["Error"] == ""
    assert lookups.flight.started == 1 and lookups.flight.joined + lookups.counts.spec >= 100
    assert specs.reloads == 1
    # one set of requests: image manifest, referrers API (404), tag-schema index, artifact, blob
    assert transport.requests == 5


def test_cli_attach_and_discover(
    distribution: Distribution, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = push_image_sync(f"{distribution.host}/cli/app{next(_names)}")
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(SPEC)
    assert main(["discover", "--image", image]) == 1
    assert "no image compatibility artifact" in capsys.readouterr().out

    assert main(["attach", "--image", image, "--spec", str(spec), "--created", "2026-03-01T10:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("attached sha256:") and "tag-schema index" in out
    assert main(["attach", "--image", image, "--spec", str(spec), "--created", "2026-03-01T10:00:00Z"]) == 0
    assert "attached before" in capsys.readouterr().out

    assert main(["discover", "--image", image, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (listing,) = doc["listings"]
    assert listing["via"] == "tag-schema" and len(listing["referrers"]) == 1
    assert listing["referrers"][0]["used"] and listing["referrers"][0]["created"] == "2026-03-01T10:00:00Z"
    assert doc["spec"]["sets"] == 3

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v9\ncompatibilities: []\n")
    assert main(["attach", "--image", image, "--spec", str(bad)]) == 1
    assert "INVALID" in capsys.readouterr().err
    assert main(["attach", "--image", f"{distribution.host}/cli/missing:1", "--spec", str(spec)]) == 2
    assert "MANIFEST_UNKNOWN" in capsys.readouterr().err
    assert main(["discover", "--image", "Not A Reference"]) == 2
    assert main(["attach", "--image", image, "--spec", str(spec), "--created", "yesterday"]) == 2


async def test_scope_spares_sidecars_from_other_registries(
    distribution: Distribution, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """registry.allow names only the project's registry and the policy is Fail: an injected sidecar
    from elsewhere fails the pod's lookups unless specs.scope leaves it out (no spec, never looked up)."""
    image = await pushed_with_spec(distribution)
    sidecar = "docker.io/istio/proxyv2:1.24.0"  # not allowed: looking it up is an error, not "no spec"
    body = {
        "Pod": {"metadata": {"name": "p"}, "spec": {"containers": [{"image": image}, {"image": sidecar}]}},
        "NodeNames": node_names(),
    }
    base_config = {
        "listen": {"port": 0},
        "failurePolicy": "Fail",
        "features": {"path": str(EXAMPLES / "nodefeatures"), "reloadSeconds": 0},
        "registry": {"allow": [distribution.host]},
    }
    async with serving({**base_config, "specs": {"source": "registry"}}, tmp_path) as base:
        _, unscoped = await post(session, f"{base}/filter", body)
    assert sidecar in unscoped["Error"] and "allow" in unscoped["Error"], unscoped

    scoped = {**base_config, "specs": {"source": "registry", "scope": [f"{distribution.host}/hpc"]}}
    async with serving(scoped, tmp_path) as base:
        _, out = await post(session, f"{base}/filter", body)
        _, alone = await post(session, f"{base}/filter", {**body, "Pod": pod(image)})
        async with session.get(f"{base}/metrics") as resp:
            metrics = await resp.text()
    assert out["Error"] == "" and out == alone  # the sidecar imposes nothing: the same answer as without it
    assert 0 < len(out["NodeNames"]) < len(node_names())
    assert 'compat_extender_spec_lookups_total{result="out_of_scope"} 1.0' in metrics
    assert 'compat_extender_spec_lookups_total{result="error"} 0.0' in metrics
