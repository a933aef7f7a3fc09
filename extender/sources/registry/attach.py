"""Attach a compatibility spec to an image: what ``compat-extender attach`` does.

The artifact is what ``oras attach`` and NFD expect: an OCI image manifest with
``artifactType: application/vnd.nfd.image-compatibility.v1alpha1``, the OCI empty config, one layer
holding the spec YAML, ``subject`` = the image's manifest (or index) descriptor and the
``org.opencontainers.image.created`` annotation. It is pushed **by digest** only, so no tag of the
image's can be clobbered.

The subject is what the reference resolves to (for a multi-arch image: the index, whose artifact
applies to every platform without one of its own), or, given a ``platform``, that platform's child
manifest of the index (the child's artifact wins over the index's for nodes of that platform, see
:mod:`extender.spec.variants`); the child is chosen the way a container runtime chooses it
(:func:`~extender.sources.registry.manifests.select_platform`).

A registry that indexed the subject itself says so with the ``OCI-Subject`` header on the manifest
PUT. Otherwise (distribution 2.8 and 3.x) the referrers tag-schema index ``<alg>-<hex>`` is updated
here: read it (404 = empty), append the artifact's descriptor unless it is listed, write it back,
then read it again to check the descriptor survived a concurrent writer (retried a few times; the
tag schema has no atomic update). Descriptors already in the index are kept as they were written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from extender.errors import RegistryError
from extender.images import ImageRef
from extender.platforms import Platform, platform_key
from extender.sources.registry.client import Fetched, RegistryClient
from extender.sources.registry.manifests import (
    ANNOTATION_CREATED,
    MANIFEST_TYPES,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageIndex,
    decode_json,
    digest_of,
    referrers_tag,
    select_platform,
)
from extender.spec.model import ARTIFACT_TYPE, SPEC_MEDIA_TYPE
from extender.spec.parse import parse_spec

EMPTY_CONFIG = b"{}"
INDEX_WRITE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Attached:
    subject: Descriptor
    artifact: Descriptor
    indexed: Literal["registry", "tag-schema", "already listed"]
    index: str = ""  # with a platform: the digest of the index whose child ``subject`` is
    platform: str = ""  # with a platform: its key (``linux/arm64/v8``)


def _descriptor_doc(d: Descriptor) -> dict[str, Any]:
    doc: dict[str, Any] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
    if d.artifact_type:
        doc["artifactType"] = d.artifact_type
    if d.annotations:
        doc["annotations"] = dict(d.annotations)
    return doc


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def artifact_manifest(
    spec: bytes, subject: Descriptor, annotations: dict[str, str]
) -> tuple[bytes, Descriptor, Descriptor]:
    """The artifact manifest bytes, and the config and layer descriptors it names."""
    config = Descriptor(OCI_EMPTY, digest_of(EMPTY_CONFIG), len(EMPTY_CONFIG))
    layer = Descriptor(SPEC_MEDIA_TYPE, digest_of(spec), len(spec))
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": _descriptor_doc(config),
        "layers": [_descriptor_doc(layer)],
        "subject": _descriptor_doc(Descriptor(subject.media_type, subject.digest, subject.size)),
        "annotations": dict(sorted(annotations.items())),
    }
    return _dumps(doc), config, layer


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def attach(
    client: RegistryClient,
    ref: ImageRef,
    spec: bytes,
    *,
    created: str | None = None,
    annotations: dict[str, str] | None = None,
    platform: Platform | None = None,
) -> Attached:
    """Validate ``spec`` (SpecError), then push it as an artifact referring to ``ref``'s manifest,
    or with ``platform`` to that platform's child of the index ``ref`` names (RegistryError when
    ``ref`` is not an index or has no such child)."""
    parse_spec(spec)
    image = await client.manifest(ref, what="image")
    subject, index = image.descriptor(), ""
    if platform is not None:
        subject, index = await _platform_child(client, ref, image, platform), image.digest
    notes = {**(annotations or {}), ANNOTATION_CREATED: created or now_rfc3339()}
    data, config, layer = artifact_manifest(spec, subject, notes)
    await client.push_blob(ref, EMPTY_CONFIG, config.media_type)
    await client.push_blob(ref, spec, layer.media_type)
    digest = digest_of(data)
    resp = await client.push_manifest(ref, data, OCI_MANIFEST, digest)
    artifact = Descriptor(OCI_MANIFEST, digest, len(data), ARTIFACT_TYPE, tuple(sorted(notes.items())))
    key = platform_key(platform) if platform is not None else ""
    if resp.header("OCI-Subject") == subject.digest:
        return Attached(subject, artifact, "registry", index, key)
    indexed = await _update_tag_schema(client, ref, subject.digest, artifact)
    return Attached(subject, artifact, indexed, index, key)


async def _platform_child(
    client: RegistryClient, ref: ImageRef, image: Fetched, platform: Platform
) -> Descriptor:
    """The descriptor of ``platform``'s child manifest of the index ``image``, as the registry
    serves it (fetched by digest: it must exist, and the subject names its exact bytes)."""
    key = platform_key(platform)
    if not isinstance(image.document, ImageIndex):
        raise RegistryError(
            f"{ref}: not a multi-arch image index (it resolves to the manifest {image.digest}): "
            f"there is no {key} child to attach to; attach without --platform"
        )
    chosen = select_platform(image.document, platform)
    if chosen is None:
        have = sorted(
            {
                platform_key(d.platform)
                for d in image.document.manifests
                if d.platform is not None and d.media_type in MANIFEST_TYPES
            }
        )
        raise RegistryError(
            f"{ref}: the image index {image.digest} has no {key} child "
            f"(it has: {', '.join(have) or 'no platform manifest'})"
        )
    child = await client.manifest(ref, chosen.digest, what="platform manifest")
    return child.descriptor()


def _listed(index: Fetched | None, digest: str) -> bool:
    return (
        index is not None
        and isinstance(index.document, ImageIndex)
        and any(d.digest == digest for d in index.document.manifests)
    )


async def _update_tag_schema(
    client: RegistryClient, ref: ImageRef, subject: str, artifact: Descriptor
) -> Literal["tag-schema", "already listed"]:
    tag = referrers_tag(subject)
    for _ in range(INDEX_WRITE_ATTEMPTS):
        current = await client.optional_manifest(ref, tag)
        if _listed(current, artifact.digest):
            return "already listed"
        manifests: list[Any] = []
        if current is not None and isinstance(current.document, ImageIndex):
            doc = decode_json(current.data, "referrers index")
            if isinstance(doc, dict) and isinstance(doc.get("manifests"), list):
                manifests = list(doc["manifests"])  # kept as written, not re-derived
        manifests.append(_descriptor_doc(artifact))
        index = _dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
        await client.push_manifest(ref, index, OCI_INDEX, tag)
        if _listed(await client.optional_manifest(ref, tag), artifact.digest):
            return "tag-schema"
    raise RegistryError(
        f"{ref.name}:{tag}: the referrers index kept losing the new artifact to concurrent writers "
        f"({INDEX_WRITE_ATTEMPTS} attempts)"
    )
