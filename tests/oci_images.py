"""Build and push small but real images for registry tests: an OCI image manifest with a config
and a layer blob, or a multi-arch index over several of them. Pushed through our own client, so
the bytes the registry stores are exactly these."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from extender.images import ImageRef, parse_reference
from extender.sources.registry.client import RegistryClient
from extender.sources.registry.manifests import OCI_INDEX, OCI_MANIFEST, Descriptor, digest_of
from extender.sources.registry.transport import AiohttpTransport

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Pushed:
    ref: ImageRef
    descriptor: Descriptor  # of the manifest or index, as pushed

    @property
    def digest(self) -> str:
        return self.descriptor.digest


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _desc(d: Descriptor) -> dict[str, object]:
    return {"mediaType": d.media_type, "digest": d.digest, "size": d.size}


async def push_image(
    client: RegistryClient, name: str, tag: str | None = None, *, arch: str = "amd64", payload: bytes = b"x"
) -> Pushed:
    """A one-layer linux/<arch> image in repository ``name`` (``host/repo``), under ``tag`` or by
    digest only."""
    ref = parse_reference(f"{name}:{tag or 'untagged'}")
    config = _dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    cfg = await client.push_blob(ref, config, CONFIG_TYPE)
    layer = await client.push_blob(ref, payload + arch.encode(), LAYER_TYPE)
    manifest = _dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": _desc(cfg), "layers": [_desc(layer)]}
    )
    digest = digest_of(manifest)
    await client.push_manifest(ref, manifest, OCI_MANIFEST, tag or digest)
    return Pushed(ref.with_digest(digest), Descriptor(OCI_MANIFEST, digest, len(manifest)))


async def push_index(
    client: RegistryClient, name: str, tag: str | None = None, arches: tuple[str, ...] = ("amd64", "arm64")
) -> tuple[Pushed, dict[str, Pushed]]:
    """A multi-arch index over one image per architecture (children pushed by digest only)."""
    ref = parse_reference(f"{name}:{tag or 'untagged'}")
    children: dict[str, Pushed] = {}
    for arch in arches:
        children[arch] = await push_image(client, name, arch=arch)
    entries = [
        {**_desc(p.descriptor), "platform": {"os": "linux", "architecture": arch}}
        for arch, p in children.items()
    ]
    index = _dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    digest = digest_of(index)
    await client.push_manifest(ref, index, OCI_INDEX, tag or digest)
    return Pushed(ref.with_digest(digest), Descriptor(OCI_INDEX, digest, len(index))), children


def push_image_sync(name: str, tag: str = "1") -> str:
    """For synchronous tests (CLI ones, which run their own event loop): push a one-layer image to
    ``name`` (``host/repo``) through a client of its own; returns ``name:tag``."""

    async def push() -> str:
        transport = AiohttpTransport()
        try:
            await push_image(RegistryClient(transport), name, tag)
            return f"{name}:{tag}"
        finally:
            await transport.close()

    return asyncio.run(push())
