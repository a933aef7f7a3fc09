"""Fixtures shared by several test modules: real registries (Debian's docker-registry) on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.distribution import Distribution, run_distribution


@pytest.fixture(scope="session")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    """distribution 2.8, anonymous."""
    with run_distribution(tmp_path_factory.mktemp("registry-anon"), auth=False) as d:
        yield d


@pytest.fixture(scope="session")
def distribution_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    """distribution 2.8 behind htpasswd (Basic auth)."""
    with run_distribution(tmp_path_factory.mktemp("registry-auth"), auth=True) as d:
        yield d
