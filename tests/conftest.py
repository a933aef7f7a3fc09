"""Fixtures shared by several test modules: real registries (Debian's docker-registry) on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from extender import values
from tests.distribution import Distribution, run_distribution
from tests.fuzz import quick
from tests.helpers import plain_id

# `make mutate`: the same draws on every run (a mutant is killed or not, never by luck), no example
# database carried between mutants.
settings.register_profile("mutation", derandomize=True, database=None)
if quick():
    settings.load_profile("mutation")


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


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Ids made from strings and bytes stay selectable on a command line (see ``plain_id``)."""
    if isinstance(val, str):
        return plain_id(val)
    if isinstance(val, bytes):
        return plain_id(val.decode("latin-1"))
    return None


@pytest.fixture(autouse=True)
def _no_compiled_regexps_from_earlier_tests() -> None:
    """Every test compiles its patterns afresh: a cache filled by an earlier test must not decide what
    a later one sees (``make mutate`` forks each mutant's tests from a process that ran them all)."""
    values._compile.cache_clear()
