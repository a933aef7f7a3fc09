"""specs.scope: which images may carry specs. Patterns, what they cover, and the lookups in front of
a spec source (out-of-scope images never reach it; failures are logged once per image a minute)."""

from __future__ import annotations

import logging

import pytest

from extender.config import load_config
from extender.errors import ConfigError, ImageReferenceError, SpecLookupError
from extender.images import ImageScope, parse_scope_pattern
from extender.sources.base import StaticSpecs
from extender.sources.specs import FAILURE_LOG_SECONDS, SharedLookups
from extender.spec.model import Spec
from tests.helpers import S


@pytest.mark.parametrize(
    ("pattern", "canonical"),
    [
        ("registry.example.com", "registry.example.com"),
        ("registry.example.com/", "registry.example.com"),
        (" registry.example.com/hpc/ ", "registry.example.com/hpc"),
        ("localhost:5000", "localhost:5000"),
        ("localhost", "localhost"),
        ("10.0.0.1:5000/team/app", "10.0.0.1:5000/team/app"),
        ("index.docker.io/istio", "docker.io/istio"),
        ("docker.io/library", "docker.io/library"),  # a prefix, not an image: no "library/" added
    ],
)
def test_patterns_in_their_canonical_spelling(pattern: str, canonical: str) -> None:
    assert parse_scope_pattern(pattern) == canonical


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "expected host"),
        ("nginx", "must start with a registry host"),
        ("library/nginx", "must start with a registry host"),
        ("reg.io/app:1", "no tag or digest"),
        ("reg.io/app@sha256:" + "0" * 64, "no tag or digest"),
        ("reg..io/app", "invalid registry host"),
        ("reg.io/App", "invalid path component 'App'"),
        ("reg.io//app", "invalid path component ''"),
    ],
)
def test_patterns_that_are_refused(pattern: str, fragment: str) -> None:
    with pytest.raises(ImageReferenceError, match=fragment):
        parse_scope_pattern(pattern)


def test_what_a_scope_covers() -> None:
    scope = ImageScope(["registry.example.com/hpc", "docker.io/library", "localhost:5000"])
    covered = [
        "registry.example.com/hpc/solver:1",
        "registry.example.com/hpc@sha256:" + "a" * 64,
        "registry.example.com/hpc/deep/er/image",
        "nginx",  # docker.io/library/nginx:latest
        "docker.io/library/busybox:1",
        "localhost:5000/anything/at/all:2",
    ]
    not_covered = [
        "registry.example.com/hpcx/solver:1",  # a prefix ends at a "/"
        "registry.example.com/other:1",
        "istio/proxyv2:1.24.0",  # docker.io/istio/proxyv2
        "ghcr.io/org/app:1",
        "localhost:5001/app",
        "NOT A REFERENCE",
    ]
    assert [i for i in covered if not scope.covers(i)] == []
    assert [i for i in not_covered if scope.covers(i)] == []
    assert scope and not ImageScope()
    assert ImageScope().covers("anything/at:all") and ImageScope().covers("NOT A REFERENCE")


def test_config_names_the_bad_pattern() -> None:
    assert load_config(None, {"specs.scope": ["reg.io/hpc"]}).specs.scope == ("reg.io/hpc",)
    with pytest.raises(ConfigError, match=r"specs\.scope\[1\]: scope pattern 'nginx'"):
        load_config(None, {"specs.scope": ["reg.io/hpc", "nginx"]})


class CountingSpecs(StaticSpecs):
    def __init__(self) -> None:
        super().__init__({"reg.io/hpc/app:1": S()}, failing={"reg.io/hpc/broken:1": "registry answered 503"})
        self.asked: list[str] = []

    async def lookup(self, image: str) -> Spec | None:
        self.asked.append(image)
        return await super().lookup(image)


async def test_out_of_scope_images_are_never_looked_up() -> None:
    inner = CountingSpecs()
    lookups = SharedLookups(inner, scope=ImageScope(["reg.io/hpc"]))
    assert await lookups.lookup("reg.io/hpc/app:1") is not None
    assert await lookups.lookup("docker.io/istio/proxyv2:1") is None
    assert await lookups.lookup("reg.io/other:1") is None
    assert inner.asked == ["reg.io/hpc/app:1"]
    c = lookups.counts
    assert (c.spec, c.no_spec, c.error, c.out_of_scope) == (1, 0, 0, 2)


async def test_failures_are_logged_once_per_image_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    lookups = SharedLookups(CountingSpecs(), clock=lambda: now[0])

    async def fail(image: str) -> None:
        with pytest.raises(SpecLookupError):
            await lookups.lookup(image)

    with caplog.at_level(logging.WARNING, logger="extender.sources.specs"):
        for _ in range(3):
            await fail("reg.io/hpc/broken:1")
        lines = [r.getMessage() for r in caplog.records]
        assert lines == ["spec lookup for image reg.io/hpc/broken:1 failed: registry answered 503"]
        now[0] += FAILURE_LOG_SECONDS + 1
        await fail("reg.io/hpc/broken:1")
        assert len(caplog.records) == 2
    assert lookups.counts.error == 4
