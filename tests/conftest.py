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


@pytest.fixture(scope="session")
def distribution_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    """distribution 2.8, anonymous, over TLS with a certificate from a throw-away CA."""
    with run_distribution(tmp_path_factory.mktemp("registry-tls"), auth=False, tls=True) as d:
        yield d
