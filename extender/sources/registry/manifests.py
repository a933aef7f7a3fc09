"""OCI manifests, indexes and descriptors, the pure parts: media types, digests, parsing and
validation, the referrers tag-schema tag, and choosing the NFD artifact, platform child and spec
layer. No I/O.

Parsers take decoded JSON (:func:`decode_json` turns bytes into it) and raise
:class:`ManifestError` naming the offending field (``manifests[2].digest``); digest and size
mismatches raise :class:`DigestMismatchError`. Nothing else is raised for any input.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from extender.errors import DigestMismatchError, ManifestError
from extender.platforms import Platform, normalise_platform
from extender.spec.model import ARTIFACT_TYPE, SPEC_MEDIA_TYPE

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
#: What to send as ``Accept`` when resolving a tag or digest: without the OCI types distribution
#: answers 404, and without the index types some servers silently pick a platform child.
MANIFEST_ACCEPT: tuple[str, ...] = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
MANIFEST_ACCEPT_HEADER = ", ".join(MANIFEST_ACCEPT)
ANNOTATION_CREATED = "org.opencontainers.image.created"
#: oras-go's default cap on a manifest body.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_SIZE = 2**63 - 1
#: The distribution spec limits the digest part of a referrers tag to 64 characters.
REFERRERS_TAG_HEX_LIMIT = 64

_HASHES = {"sha256": 64, "sha512": 128}
_ALGORITHM = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_ENCODED = re.compile(r"[a-zA-Z0-9=_-]+")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_TAG_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")


# ---------------------------------------------------------------------------------------------------
# digests


def parse_digest(digest: object, path: str = "digest") -> tuple[str, str]:
    """``(algorithm, encoded)`` of a digest string. The general grammar is accepted; the registered
    algorithms (``sha256``, ``sha512``) must also have the right number of lower-case hex digits."""
    if not isinstance(digest, str):
        raise ManifestError(path, f"expected a digest string, got {type(digest).__name__}")
    alg, colon, encoded = digest.partition(":")
    if not colon or not _ALGORITHM.fullmatch(alg) or not _ENCODED.fullmatch(encoded):
        raise ManifestError(path, f"not a digest: {digest[:80]!r}")
    size = _HASHES.get(alg)
    if size is not None and not re.fullmatch(rf"[a-f0-9]{{{size}}}", encoded):
        raise ManifestError(path, f"a {alg} digest is {size} lower-case hex digits: {digest[:80]!r}")
    return alg, encoded


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """``<algorithm>:<hex>`` of the exact bytes."""
    if algorithm not in _HASHES:
        raise ManifestError(
            "digest", f"unsupported digest algorithm {algorithm!r} (supported: sha256, sha512)"
        )
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def verify_digest(data: bytes, expected: str) -> None:
    """Raise :class:`DigestMismatchError` unless ``data`` hashes to ``expected``; an algorithm
    other than sha256/sha512 is refused (:class:`ManifestError`), never silently accepted."""
    alg, _ = parse_digest(expected)
    if alg not in _HASHES:
        raise ManifestError("digest", f"unsupported digest algorithm {alg!r} (supported: sha256, sha512)")
    actual = digest_of(data, alg)
    if actual != expected:
        raise DigestMismatchError("digest", f"content is {actual}, expected {expected}")


def verify_descriptor(data: bytes, descriptor: Descriptor) -> None:
    """Check ``data`` against a descriptor: its ``size`` first (cheap), then its digest."""
    if len(data) != descriptor.size:
        raise DigestMismatchError("size", f"content is {len(data)} bytes, descriptor says {descriptor.size}")
    verify_digest(data, descriptor.digest)


def referrers_tag(digest: str) -> str:
    """The tag-schema fallback tag for a subject digest: ``sha256:<hex>`` -> ``sha256-<hex>``.

    ``<alg>-<encoded>`` with the encoded part cut to 64 characters (a sha512 tag keeps the first
    64 hex digits) and any character not allowed in a tag replaced by ``-``."""
    alg, encoded = parse_digest(digest)
    return _TAG_BAD_CHARS.sub("-", f"{alg}-{encoded[:REFERRERS_TAG_HEX_LIMIT]}")


# ---------------------------------------------------------------------------------------------------
# JSON shapes


def decode_json(data: bytes, what: str = "manifest", limit: int = MAX_MANIFEST_BYTES) -> object:
    """Decode a JSON body (UTF-8, at most ``limit`` bytes; ``NaN``/``Infinity`` refused)."""
    if len(data) > limit:
        raise ManifestError("", f"{what}: {len(data)} bytes, over the {limit} limit")

    def constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=constant)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ManifestError("", f"{what}: not valid JSON: {str(e)[:200]}") from None


def _obj(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ManifestError(path, f"expected an object, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _str(doc: Mapping[str, object], key: str, path: str, required: bool = False) -> str:
    value = doc.get(key)
    if value is None:
        if required:
            raise ManifestError(_join(path, key), "required")
        return ""
    if not isinstance(value, str):
        raise ManifestError(_join(path, key), f"expected a string, got {_kind(value)}")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _media_type(doc: Mapping[str, object], key: str, path: str, required: bool = False) -> str:
    value = _str(doc, key, path, required)
    if value and not _MEDIA_TYPE.fullmatch(value):
        raise ManifestError(_join(path, key), f"not a media type: {value[:80]!r}")
    return value


def _annotations(doc: Mapping[str, object], path: str) -> tuple[tuple[str, str], ...]:
    value = doc.get("annotations")
    if value is None:
        return ()
    where = _join(path, "annotations")
    ann = _obj(value, where)
    for k, v in ann.items():
        if not isinstance(v, str):
            raise ManifestError(f"{where}[{k!r}]", f"expected a string, got {_kind(v)}")
    return tuple(sorted((str(k), str(v)) for k, v in ann.items()))


def parse_platform(doc: object, path: str = "platform") -> Platform:
    p = _obj(doc, path)
    features = p.get("os.features")
    if features is not None and not (
        isinstance(features, list) and all(isinstance(f, str) for f in features)
    ):
        raise ManifestError(_join(path, "os.features"), "expected an array of strings")
    return Platform(
        os=_str(p, "os", path, required=True),
        architecture=_str(p, "architecture", path, required=True),
        variant=_str(p, "variant", path),
        os_version=_str(p, "os.version", path),
        os_features=tuple(features or ()),
    )


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor. ``annotations`` are sorted ``(key, value)`` pairs; use :meth:`annotation`."""

    media_type: str
    digest: str
    size: int
    artifact_type: str = ""
    annotations: tuple[tuple[str, str], ...] = ()
    platform: Platform | None = None

    def annotation(self, key: str) -> str | None:
        return next((v for k, v in self.annotations if k == key), None)


def parse_descriptor(doc: object, path: str = "") -> Descriptor:
    """A descriptor: ``mediaType``, ``digest`` and ``size`` are required; ``artifactType``,
    ``annotations`` and ``platform`` optional (other fields such as ``urls`` are ignored)."""
    d = _obj(doc, path)
    media_type = _media_type(d, "mediaType", path, required=True)
    digest = _str(d, "digest", path, required=True)
    parse_digest(digest, _join(path, "digest"))
    size = d.get("size")
    if size is None:
        raise ManifestError(_join(path, "size"), "required")
    if isinstance(size, float) and size.is_integer():
        size = int(size)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise ManifestError(_join(path, "size"), f"expected a non-negative integer, got {size!r:.40}")
    platform = d.get("platform")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        artifact_type=_media_type(d, "artifactType", path),
        annotations=_annotations(d, path),
        platform=None if platform is None else parse_platform(platform, _join(path, "platform")),
    )


def _schema_version(d: Mapping[str, object]) -> None:
    v = d.get("schemaVersion")
    if v is None:
        raise ManifestError("schemaVersion", "required")
    if isinstance(v, bool) or v != 2:
        raise ManifestError("schemaVersion", f"expected 2, got {v!r:.40}")


def _descriptors(d: Mapping[str, object], key: str) -> tuple[Descriptor, ...]:
    items = d.get(key)
    if items is None:
        raise ManifestError(key, "required")
    if not isinstance(items, list):
        raise ManifestError(key, f"expected an array, got {_kind(items)}")
    return tuple(parse_descriptor(x, f"{key}[{i}]") for i, x in enumerate(items))


def _subject(d: Mapping[str, object]) -> Descriptor | None:
    s = d.get("subject")
    return None if s is None else parse_descriptor(s, "subject")


@dataclass(frozen=True, slots=True)
class ImageIndex:
    """An OCI image index (or Docker manifest list); also the shape of a referrers-API answer and
    of a tag-schema referrers index."""

    media_type: str  # "" when the document does not say
    manifests: tuple[Descriptor, ...]
    artifact_type: str = ""
    subject: Descriptor | None = None
    annotations: tuple[tuple[str, str], ...] = ()


def parse_image_index(doc: object) -> ImageIndex:
    d = _obj(doc, "")
    _schema_version(d)
    media_type = _media_type(d, "mediaType", "")
    if media_type and media_type not in INDEX_TYPES:
        raise ManifestError("mediaType", f"{media_type!r} is not an image index type")
    return ImageIndex(
        media_type=media_type,
        manifests=_descriptors(d, "manifests"),
        artifact_type=_media_type(d, "artifactType", ""),
        subject=_subject(d),
        annotations=_annotations(d, ""),
    )


@dataclass(frozen=True, slots=True)
class ImageManifest:
    media_type: str  # "" when the document does not say
    config: Descriptor
    layers: tuple[Descriptor, ...]
    artifact_type: str = ""
    subject: Descriptor | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def effective_artifact_type(self) -> str:
        """``artifactType``, or ``config.mediaType`` when it is absent (what the referrers API reports)."""
        return self.artifact_type or self.config.media_type

    def annotation(self, key: str) -> str | None:
        return next((v for k, v in self.annotations if k == key), None)


def parse_image_manifest(doc: object) -> ImageManifest:
    d = _obj(doc, "")
    _schema_version(d)
    media_type = _media_type(d, "mediaType", "")
    if media_type and media_type not in MANIFEST_TYPES:
        raise ManifestError("mediaType", f"{media_type!r} is not an image manifest type")
    if "config" not in d:
        raise ManifestError("config", "required")
    return ImageManifest(
        media_type=media_type,
        config=parse_descriptor(d["config"], "config"),
        layers=_descriptors(d, "layers"),
        artifact_type=_media_type(d, "artifactType", ""),
        subject=_subject(d),
        annotations=_annotations(d, ""),
    )


def parse_manifest(data: bytes, content_type: str | None = None) -> ImageManifest | ImageIndex:
    """Decode and parse a manifest body of either kind. The body's ``mediaType`` decides; without
    it the ``Content-Type`` header does (parameters ignored); without a known one either, the shape
    (``manifests`` -> index, ``config`` -> manifest). A header naming the other kind than the body
    is an error."""
    doc = _obj(decode_json(data), "")
    body_type = _media_type(doc, "mediaType", "")
    header_type = (content_type or "").split(";", 1)[0].strip().lower()
    known = MANIFEST_TYPES | INDEX_TYPES
    if (
        body_type in known
        and header_type in known
        and (body_type in INDEX_TYPES) != (header_type in INDEX_TYPES)
    ):
        raise ManifestError("mediaType", f"body says {body_type!r} but Content-Type is {header_type!r}")
    kind = body_type if body_type in known else header_type
    if kind in INDEX_TYPES or (kind not in known and "manifests" in doc and "config" not in doc):
        return parse_image_index(doc)
    if kind in MANIFEST_TYPES or "config" in doc:
        return parse_image_manifest(doc)
    raise ManifestError(
        "mediaType", f"neither a manifest nor an index ({body_type or header_type or 'no type'})"
    )


# ---------------------------------------------------------------------------------------------------
# choosing


def filters_applied(header: str | None) -> frozenset[str]:
    """The filters named in an ``OCI-Filters-Applied`` header (comma-separated; ``None`` = none)."""
    if not header:
        return frozenset()
    return frozenset(f.strip() for f in header.split(",") if f.strip())


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_rfc3339(text: object) -> datetime | None:
    """An RFC 3339 timestamp (date, time and offset all required) as an aware datetime, or ``None``
    when it is not one. A leap second ``:60`` counts as ``:59``; fractions beyond microseconds are cut."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    m = _RFC3339.fullmatch(text.strip())
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    try:
        tz = UTC
        if not z:
            if int(oh) > 23 or int(om) > 59:
                return None
            offset = timedelta(hours=int(oh), minutes=int(om))
            tz = timezone(-offset if sign == "-" else offset)
        micro = int((frac or "0")[:6].ljust(6, "0"))
        return datetime(int(y), int(mo), int(d), int(h), int(mi), min(int(s), 59), micro, tzinfo=tz)
    except (ValueError, OverflowError):
        return None


_OLDEST = datetime.min.replace(tzinfo=UTC)


def created_at(descriptor: Descriptor) -> datetime | None:
    return parse_rfc3339(descriptor.annotation(ANNOTATION_CREATED))


def order_referrers(descriptors: Iterable[Descriptor]) -> list[Descriptor]:
    """Newest first by ``org.opencontainers.image.created``; a missing or unparsable timestamp
    sorts as the oldest; equal timestamps by ascending digest string.

    Timestamps are compared as instants (``+02:00`` offsets honoured), not as strings as NFD does.
    The digest tie-break makes the choice independent of the order the registry lists referrers in
    (olareg lists in push order, ggcr in map order, a tag-schema index in append order, pages split
    anywhere), so every replica picks the same artifact; ascending is arbitrary but is what a plain
    ``sort`` of the digests gives, so it is easy to reproduce by hand."""
    by_digest = sorted(descriptors, key=lambda d: d.digest)

    def key(d: Descriptor) -> tuple[bool, datetime]:
        t = created_at(d)
        return (t is not None, t or _OLDEST)

    return sorted(by_digest, key=key, reverse=True)  # stable: equal keys keep the digest order


def matches_artifact_type(descriptor: Descriptor, artifact_type: str, server_filtered: bool) -> bool:
    if descriptor.artifact_type == artifact_type:
        return True
    return server_filtered and not descriptor.artifact_type


def select_artifact(
    descriptors: Iterable[Descriptor],
    artifact_type: str = ARTIFACT_TYPE,
    *,
    server_filtered: bool = False,
) -> Descriptor | None:
    """The referrer to use: of those with ``artifactType == artifact_type``, the newest (see
    :func:`order_referrers`); ``None`` when there is none.

    ``server_filtered`` says the registry applied the ``artifactType`` filter (its
    ``OCI-Filters-Applied`` header named it, see :func:`filters_applied`). The filter is still
    applied here to descriptors that state a different type (a cheap guard against a wrong
    server); only descriptors that state no type at all are taken on the server's word."""
    kept = [d for d in descriptors if matches_artifact_type(d, artifact_type, server_filtered)]
    ordered = order_referrers(kept)
    return ordered[0] if ordered else None


def untyped_referrers(descriptors: Iterable[Descriptor]) -> list[Descriptor]:
    """Referrers whose listed type cannot be trusted to be their ``artifactType`` (none, or the OCI
    empty config type that ggcr reports): candidates for fetching the manifest to check."""
    return [d for d in descriptors if d.artifact_type in ("", OCI_EMPTY)]


def select_platform(index: ImageIndex, platform: Platform | None = None) -> Descriptor | None:
    """The child manifest for ``platform`` (default ``linux/amd64``), or ``None``.

    Platforms compare after :func:`normalise_platform`, so ``arm64`` matches ``arm64/v8`` and
    ``aarch64``. A requested variant must match; an unspecified one means the architecture's
    default. ``os.version`` is ignored. Nested indexes and children without a platform (such as
    attestations marked ``unknown/unknown``) are skipped; of several matches the first in index
    order wins, as the image spec recommends."""
    want = normalise_platform(platform or Platform("linux", "amd64"))
    for d in index.manifests:
        if (
            d.platform is not None
            and d.media_type in MANIFEST_TYPES
            and normalise_platform(d.platform) == want
        ):
            return d
    return None


def spec_layer(
    manifest: ImageManifest,
    artifact_type: str = ARTIFACT_TYPE,
    media_type: str = SPEC_MEDIA_TYPE,
) -> Descriptor:
    """The one layer of an NFD artifact holding the spec, after checking the manifest is that
    artifact (``artifactType``, or ``config.mediaType`` when it is absent). Raises
    :class:`ManifestError` for another artifact type and for zero or several spec layers (several
    would make the choice arbitrary)."""
    if manifest.effective_artifact_type != artifact_type:
        raise ManifestError(
            "artifactType", f"expected {artifact_type!r}, got {manifest.effective_artifact_type or 'none'!r}"
        )
    found = [i for i, layer in enumerate(manifest.layers) if layer.media_type == media_type]
    if not found:
        raise ManifestError("layers", f"no layer with media type {media_type!r}")
    if len(found) > 1:
        raise ManifestError("layers", f"{len(found)} layers with media type {media_type!r} (layers {found})")
    return manifest.layers[found[0]]
