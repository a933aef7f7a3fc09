"""The warm-up before /readyz (extender/sources/warmup.py): once the feature source is ready, every
image whose spec is known is looked up and its verdicts computed, so the first /filter reads warm
caches; a hanging lookup cannot keep the replica unready past the budget, a failing one is skipped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from extender.decide import ImageSpec, decide, failing
from extender.http.app import build_app
from extender.sources.base import StaticFeatures, StaticSpecs
from extender.sources.files import FileFeatures, FileSpecs
from extender.sources.from_config import open_sources
from extender.sources.specs import LookupCounts, SharedLookups
from extender.sources.warmup import Warmed
from extender.spec.model import Spec
from extender.spec.parse import parse_spec
from tests.helpers import example_files_config
from tests.waiting import finishes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPEC = parse_spec(
    b"version: v1alpha1\ncompatibilities:\n- rules:\n  - name: r\n    matchFeatures:\n"
    b"    - feature: cpu.cpuid\n      matchExpressions: {AVX2: {op: Exists}}\n"
)


class Gate:
    """A feature source that becomes ready when told to."""

    def __init__(self, inner: FileFeatures) -> None:
        self.inner = inner
        self.open = False

    @property
    def table(self) -> Any:
        return self.inner.table

    @property
    def ready(self) -> bool:
        return self.open


async def test_readyz_waits_for_the_verdicts_of_every_known_spec() -> None:
    features = FileFeatures(EXAMPLES / "nodefeatures")
    await features.refresh()
    mapping = FileSpecs(EXAMPLES / "images.yaml")
    await mapping.refresh()
    gate = Gate(features)
    warmed = Warmed(gate, SharedLookups(mapping))
    app = build_app(warmed, SharedLookups(mapping))
    async with TestClient(TestServer(app)) as client:
        task = asyncio.create_task(warmed.run())
        try:
            resp = await client.get("/readyz")
            assert resp.status == 503 and "initial NodeFeature sync" in await resp.text()
            assert len(features.table.caches.results) == 0
            gate.open = True
            await finishes(task, "the warm-up")
            resp = await client.get("/readyz")
            assert resp.status == 200
        finally:
            task.cancel()
    # the six single-spec images and the multi-arch one's two platform specs
    assert warmed.done.complete and warmed.done.images == 7 and warmed.done.specs == 8
    assert len(features.table.caches.results) == 8
    # then the reason of every failing node of every one of them, which a filter now reads cached
    table = features.table
    spec = parse_spec((EXAMPLES / "specs" / "dpdk-app.yaml").read_bytes())
    assert warmed.done.reasons == len(table.caches.explanations) > 0
    rejected = failing(spec, table)
    assert len(rejected) == 10  # examples/README.md: the DPDK app runs on two of the twelve nodes
    hits = table.caches.explanations.hits
    decision = decide([ImageSpec("registry.example.com/telco/dpdk-app:23.11", spec)], table, rejected)
    assert len(decision.failed) == 10 and table.caches.explanations.hits == hits + 10


class Hanging:
    """A spec source whose lookups never finish (a registry that accepts and never answers)."""

    def known_images(self) -> list[str]:
        return ["reg/slow:1"]

    async def lookup(self, image: str) -> Spec | None:
        await asyncio.Event().wait()
        return None


async def test_a_hanging_lookup_cannot_keep_the_replica_unready() -> None:
    features = FileFeatures(EXAMPLES / "nodefeatures")
    await features.refresh()
    warmed = Warmed(features, Hanging(), budget=0.05)
    await finishes(warmed.run(), "the warm-up, cut short by its budget")
    assert warmed.warm and not warmed.done.complete


async def test_a_failing_lookup_is_skipped() -> None:
    features = StaticFeatures(FileFeatures(EXAMPLES / "nodefeatures").table)
    specs = StaticSpecs({"reg/ok:1": SPEC, "reg/broken:1": SPEC}, failing={"reg/broken:1": "registry down"})
    warmed = Warmed(features, specs)
    await warmed.run()
    assert warmed.warm and warmed.done.complete
    assert (warmed.done.images, warmed.done.failed, warmed.done.specs) == (1, 1, 1)


async def test_the_warm_up_of_serve_is_not_counted_as_lookups() -> None:
    """serve's warm-up goes through the configured source, not the counting single-flight layer:
    compat_extender_spec_lookups_total counts what pods caused, and a warm-up racing the prefetcher
    must not make it flake. With the file source it is done before the sources are handed over."""
    async with open_sources(example_files_config()) as sources:
        assert isinstance(sources.features, Warmed) and sources.features.warm
        assert sources.features.done.specs == 8
        assert sources.lookups.counts == LookupCounts()  # nothing counted
        assert len(sources.features.table.caches.results) == 8
