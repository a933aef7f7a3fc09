"""An image with a spec attached, pushed to a real registry (tests/distribution.py), for the tests
that serve specs from the registry: the example spec examples/specs/hpc-solver.yaml and
``pushed_with_spec``."""

from __future__ import annotations

import itertools
from pathlib import Path

from extender.images import parse_reference
from extender.sources.registry.attach import attach
from extender.sources.registry.client import RegistryClient
from extender.sources.registry.transport import AiohttpTransport
from tests.distribution import Distribution
from tests.oci_images import push_image

ROOT = Path(__file__).resolve().parent.parent
SPEC = (ROOT / "examples" / "specs" / "hpc-solver.yaml").read_bytes()

_names = itertools.count()


async def pushed_with_spec(d: Distribution) -> str:
    """Push a new image (a repository name not used before in this run) with ``SPEC`` attached;
    return its reference."""
    transport = AiohttpTransport()
    try:
        client = RegistryClient(transport)
        name = f"{d.host}/hpc/solver{next(_names)}"
        await push_image(client, name, "2024.2")
        await attach(client, parse_reference(f"{name}:2024.2"), SPEC)
        return f"{name}:2024.2"
    finally:
        await transport.close()
