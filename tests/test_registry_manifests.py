"""OCI manifest/index/descriptor parsing, digests, referrers tag and artifact/platform/layer choice."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extender.errors import DigestMismatchError, ManifestError, PlatformError, RegistryError
from extender.platforms import Platform, normalise_platform, parse_platform_spec
from extender.sources.registry.manifests import (
    ANNOTATION_CREATED,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFEST_ACCEPT,
    MANIFEST_ACCEPT_HEADER,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageIndex,
    ImageManifest,
    decode_json,
    digest_of,
    filters_applied,
    order_referrers,
    parse_descriptor,
    parse_digest,
    parse_image_index,
    parse_image_manifest,
    parse_manifest,
    parse_platform,
    parse_rfc3339,
    referrers_tag,
    select_artifact,
    select_platform,
    spec_layer,
    untyped_referrers,
    verify_descriptor,
    verify_digest,
)
from extender.spec.model import ARTIFACT_TYPE, SPEC_MEDIA_TYPE

SPEC_YAML = b"version: v1alpha1\ncompatibilities: []\n"
EMPTY = b"{}"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def d(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "0")


SUBJECT = {"mediaType": OCI_MANIFEST, "digest": d(0xA), "size": 1234}


def artifact_manifest(created: str | None = "2024-05-01T10:00:00Z") -> dict[str, Any]:
    """What ``oras attach --artifact-type <NFD> ... spec.yaml:<spec type>`` pushes."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": sha(EMPTY), "size": 2, "data": "e30="},
        "layers": [
            {
                "mediaType": SPEC_MEDIA_TYPE,
                "digest": sha(SPEC_YAML),
                "size": len(SPEC_YAML),
                "annotations": {"org.opencontainers.image.title": "spec.yaml"},
            }
        ],
        "subject": SUBJECT,
    }
    if created is not None:
        doc["annotations"] = {ANNOTATION_CREATED: created}
    return doc


def referrer(n: int, created: str | None = None, artifact_type: str | None = ARTIFACT_TYPE) -> dict[str, Any]:
    desc: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": d(n), "size": 700 + n}
    if artifact_type is not None:
        desc["artifactType"] = artifact_type
    if created is not None:
        desc["annotations"] = {ANNOTATION_CREATED: created}
    return desc


def referrers_index(*descs: dict[str, Any]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(descs)}


MULTI_ARCH = {
    "schemaVersion": 2,
    "mediaType": OCI_INDEX,
    "manifests": [
        {
            "mediaType": OCI_MANIFEST,
            "digest": d(1),
            "size": 1,
            "platform": {"os": "linux", "architecture": "amd64"},
        },
        {
            "mediaType": OCI_MANIFEST,
            "digest": d(2),
            "size": 2,
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
        },
        {
            "mediaType": OCI_MANIFEST,
            "digest": d(3),
            "size": 3,
            "platform": {"os": "linux", "architecture": "arm", "variant": "v6"},
        },
        {
            "mediaType": OCI_MANIFEST,
            "digest": d(4),
            "size": 4,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        },
        {
            "mediaType": OCI_MANIFEST,
            "digest": d(5),
            "size": 5,
            "platform": {
                "os": "windows",
                "architecture": "amd64",
                "os.version": "10.0.17763.1234",
                "os.features": ["win32k"],
            },
        },
    ],
}


# --- constants, digests ----------------------------------------------------------------------------


def test_accept_lists_all_four_types() -> None:
    assert MANIFEST_ACCEPT == (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
    assert MANIFEST_ACCEPT_HEADER.split(", ") == list(MANIFEST_ACCEPT)
    assert ARTIFACT_TYPE == "application/vnd.nfd.image-compatibility.v1alpha1"


def test_digest_of_and_verify() -> None:
    assert digest_of(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert digest_of(b"x", "sha512") == "sha512:" + hashlib.sha512(b"x").hexdigest()
    verify_digest(SPEC_YAML, sha(SPEC_YAML))
    verify_digest(b"x", "sha512:" + hashlib.sha512(b"x").hexdigest())
    with pytest.raises(DigestMismatchError, match=r"expected sha256:0+1$"):
        verify_digest(SPEC_YAML, d(1))
    with pytest.raises(ManifestError, match="unsupported digest algorithm 'md5'"):
        verify_digest(b"x", "md5:" + hashlib.md5(b"x").hexdigest())
    with pytest.raises(ManifestError, match="unsupported"):
        digest_of(b"x", "sha1")
    with pytest.raises(ManifestError, match="64 lower-case hex"):
        verify_digest(b"x", "sha256:" + "A" * 64)
    with pytest.raises(ManifestError, match="not a digest"):
        verify_digest(b"x", "sha256")
    assert issubclass(DigestMismatchError, ManifestError)
    assert issubclass(ManifestError, RegistryError)


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "sha256:",
        ":abc",
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "SHA256:" + "a" * 64,
        "sha256:a b",
        "x",
    ],
)
def test_parse_digest_rejects(digest: str) -> None:
    with pytest.raises(ManifestError):
        parse_digest(digest)


def test_parse_digest_accepts_grammar() -> None:
    assert parse_digest(d(1)) == ("sha256", "0" * 63 + "1")
    assert (
        parse_digest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")[0]
        == "multihash+base58"
    )
    with pytest.raises(ManifestError, match="expected a digest string"):
        parse_digest(5)


def test_verify_descriptor_size_then_digest() -> None:
    layer = parse_image_manifest(artifact_manifest()).layers[0]
    verify_descriptor(SPEC_YAML, layer)
    with pytest.raises(DigestMismatchError, match="size: content is 3 bytes"):
        verify_descriptor(b"abc", layer)
    same_size = bytes(len(SPEC_YAML))
    with pytest.raises(DigestMismatchError, match="digest: content is"):
        verify_descriptor(same_size, layer)


def test_referrers_tag() -> None:
    hexpart = "0123456789abcdef" * 4
    assert referrers_tag(f"sha256:{hexpart}") == f"sha256-{hexpart}"
    long = hashlib.sha512(b"x").hexdigest()
    assert referrers_tag(f"sha512:{long}") == f"sha512-{long[:64]}"
    assert referrers_tag("multihash+base58:Qm") == "multihash-base58-Qm"
    with pytest.raises(ManifestError):
        referrers_tag("latest")


# --- JSON decoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"size": NaN}', "NaN is not JSON"),
        (b'{"size": -Infinity}', "Infinity is not JSON"),
        (b"[" * 200_000, "not valid JSON"),
    ],
)
def test_decode_json_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        decode_json(data)


def test_decode_json_limit() -> None:
    assert decode_json(b"{}", limit=2) == {}
    with pytest.raises(ManifestError, match="over the 2 limit"):
        decode_json(b"{} ", "blob", limit=2)


# --- descriptors, manifests, indexes -------------------------------------------------------------------


def test_parse_artifact_manifest() -> None:
    m = parse_image_manifest(artifact_manifest())
    assert m.media_type == OCI_MANIFEST
    assert m.artifact_type == ARTIFACT_TYPE == m.effective_artifact_type
    assert m.config == Descriptor(OCI_EMPTY, sha(EMPTY), 2)
    assert m.layers[0].annotation("org.opencontainers.image.title") == "spec.yaml"
    assert m.subject == Descriptor(OCI_MANIFEST, d(0xA), 1234)
    assert m.annotation(ANNOTATION_CREATED) == "2024-05-01T10:00:00Z"
    assert m.annotation("nope") is None
    assert spec_layer(m).digest == sha(SPEC_YAML)


def test_manifest_artifact_type_falls_back_to_config() -> None:
    doc = artifact_manifest()
    del doc["artifactType"]
    doc["config"]["mediaType"] = ARTIFACT_TYPE
    assert parse_image_manifest(doc).effective_artifact_type == ARTIFACT_TYPE


def test_docker_manifest_and_minimal_manifest() -> None:
    docker = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": d(1),
            "size": 1469,
        },
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d(2), "size": 3}
        ],
    }
    m = parse_image_manifest(docker)
    assert m.media_type == DOCKER_MANIFEST and m.subject is None and m.annotations == ()
    minimal = {"schemaVersion": 2, "config": docker["config"], "layers": []}
    assert parse_image_manifest(minimal).media_type == ""


def test_parse_index_with_platforms() -> None:
    idx = parse_image_index(MULTI_ARCH)
    assert idx.media_type == OCI_INDEX and len(idx.manifests) == 5
    assert idx.manifests[1].platform == Platform("linux", "arm64", "v8")
    win = idx.manifests[4].platform
    assert win == Platform("windows", "amd64", "", "10.0.17763.1234", ("win32k",))
    assert str(win) == "windows/amd64"
    assert str(idx.manifests[1].platform) == "linux/arm64/v8"


def test_parse_referrers_answers_olareg_and_ggcr() -> None:
    olareg = parse_image_index(referrers_index(referrer(1, "2024-01-01T00:00:00Z")))
    assert olareg.manifests[0].artifact_type == ARTIFACT_TYPE
    assert olareg.manifests[0].annotation(ANNOTATION_CREATED) == "2024-01-01T00:00:00Z"
    ggcr = parse_image_index(referrers_index(referrer(2, artifact_type=OCI_EMPTY)))
    assert ggcr.manifests[0].annotations == ()
    assert parse_image_index({"schemaVersion": 2, "manifests": []}) == ImageIndex("", ())


def _with(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target: Any = out
    for p in path[:-1]:
        target = target[p]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "fragment"),
    [
        (("schemaVersion",), _DELETE, "schemaVersion", "required"),
        (("schemaVersion",), 1, "schemaVersion", "expected 2"),
        (("schemaVersion",), True, "schemaVersion", "expected 2"),
        (("schemaVersion",), "2", "schemaVersion", "expected 2"),
        (("mediaType",), OCI_INDEX, "mediaType", "not an image manifest type"),
        (("mediaType",), "not a type", "mediaType", "not a media type"),
        (("artifactType",), 7, "artifactType", "expected a string, got number"),
        (("config",), _DELETE, "config", "required"),
        (("config",), None, "config", "expected an object, got null"),
        (("config", "digest"), _DELETE, "config.digest", "required"),
        (("config", "mediaType"), _DELETE, "config.mediaType", "required"),
        (("config", "size"), _DELETE, "config.size", "required"),
        (("config", "size"), -1, "config.size", "non-negative integer"),
        (("config", "size"), 2**63, "config.size", "non-negative integer"),
        (("config", "size"), "2", "config.size", "non-negative integer"),
        (("config", "size"), False, "config.size", "non-negative integer"),
        (("config", "size"), 2.5, "config.size", "non-negative integer"),
        (("layers",), _DELETE, "layers", "required"),
        (("layers",), {}, "layers", "expected an array, got object"),
        (("layers", 0), [], "layers[0]", "expected an object, got array"),
        (("layers", 0, "digest"), "sha256:xyz", "layers[0].digest", "64 lower-case hex"),
        (("layers", 0, "digest"), "sha256 x", "layers[0].digest", "not a digest"),
        (("layers", 0, "annotations"), {"k": 1}, "layers[0].annotations['k']", "expected a string"),
        (("layers", 0, "annotations"), ["k"], "layers[0].annotations", "expected an object"),
        (("layers", 0, "platform"), {"os": "linux"}, "layers[0].platform.architecture", "required"),
        (("subject",), "sha256:x", "subject", "expected an object, got string"),
        (("subject", "digest"), d(1)[:-1], "subject.digest", "64 lower-case hex"),
        (("annotations",), {"a": None}, "annotations['a']", "expected a string, got null"),
    ],
)
def test_manifest_errors_name_the_field(path: tuple[Any, ...], value: Any, field: str, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment) as info:
        parse_image_manifest(_with(artifact_manifest(), path, value))
    assert info.value.path == field


@pytest.mark.parametrize(
    ("doc", "field", "fragment"),
    [
        ([], "", "expected an object, got array"),
        ({"schemaVersion": 2}, "manifests", "required"),
        ({"schemaVersion": 2, "manifests": {}}, "manifests", "expected an array"),
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "manifests": []}, "mediaType", "not an image index"),
        (
            {"schemaVersion": 2, "manifests": [{"digest": d(1), "size": 1}]},
            "manifests[0].mediaType",
            "required",
        ),
        (
            {"schemaVersion": 2, "manifests": [referrer(1), {**referrer(2), "artifactType": "x"}]},
            "manifests[1].artifactType",
            "not a media type",
        ),
        (
            _with(MULTI_ARCH, ("manifests", 4, "platform", "os.features"), "win32k"),
            "manifests[4].platform.os.features",
            "array of strings",
        ),
    ],
)
def test_index_errors_name_the_field(doc: Any, field: str, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment) as info:
        parse_image_index(doc)
    assert info.value.path == field


def test_descriptor_float_size_that_is_integral() -> None:
    assert parse_descriptor({"mediaType": OCI_MANIFEST, "digest": d(1), "size": 12.0}).size == 12


def test_parse_manifest_dispatch() -> None:
    art = json.dumps(artifact_manifest()).encode()
    idx = json.dumps(MULTI_ARCH).encode()
    assert isinstance(parse_manifest(art), ImageManifest)
    assert isinstance(parse_manifest(idx, f"{OCI_INDEX}; charset=utf-8"), ImageIndex)
    no_type_idx = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert isinstance(parse_manifest(no_type_idx), ImageIndex)
    assert isinstance(parse_manifest(no_type_idx, DOCKER_MANIFEST_LIST), ImageIndex)
    no_type_man = json.dumps({k: v for k, v in artifact_manifest().items() if k != "mediaType"}).encode()
    assert isinstance(parse_manifest(no_type_man, "application/json"), ImageManifest)
    with pytest.raises(ManifestError, match="Content-Type"):
        parse_manifest(art, OCI_INDEX)
    with pytest.raises(ManifestError, match="config: required"):
        parse_manifest(no_type_idx, OCI_MANIFEST)  # header says manifest, body has no config
    with pytest.raises(ManifestError, match="neither a manifest nor an index"):
        parse_manifest(b'{"schemaVersion": 2}')
    with pytest.raises(ManifestError, match="expected an object"):
        parse_manifest(b"[]")


def test_raw_bytes_digest_is_the_subject_digest() -> None:
    """The digest is of the bytes served, never of a re-serialisation."""
    raw = json.dumps(artifact_manifest(), indent=3).encode()
    parsed = parse_manifest(raw)
    assert digest_of(raw) != digest_of(json.dumps(json.loads(raw)).encode())
    assert isinstance(parsed, ImageManifest)
    verify_digest(raw, digest_of(raw))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=12,
)
_KEYS = [
    "schemaVersion",
    "mediaType",
    "artifactType",
    "config",
    "layers",
    "manifests",
    "subject",
    "annotations",
    "digest",
    "size",
    "platform",
    "os",
    "architecture",
    "os.features",
]
_VALUES = st.sampled_from([2, OCI_MANIFEST, OCI_INDEX, ARTIFACT_TYPE, d(1), 5, -1, "linux", "x"])
_SHAPED = st.recursive(
    _VALUES | _JSON,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), kids, max_size=6),
    max_leaves=25,
)


@given(_SHAPED)
def test_parsers_never_crash(doc: object) -> None:
    for parse in (parse_image_manifest, parse_image_index, parse_descriptor, parse_platform):
        with contextlib.suppress(ManifestError):
            parse(doc)
    with contextlib.suppress(ManifestError):
        parse_manifest(json.dumps(doc).encode(), OCI_INDEX)


@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_parse_manifest_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(data)


@given(st.text(max_size=80))
def test_digest_helpers_never_crash(text: str) -> None:
    try:
        tag = referrers_tag(text)
    except ManifestError:
        return
    assert len(tag) <= 128 or not text.startswith(("sha256:", "sha512:"))
    with contextlib.suppress(ManifestError):
        verify_digest(b"", text)


# --- choosing the artifact ---------------------------------------------------------------------------


def descs(*docs: dict[str, Any]) -> list[Descriptor]:
    return list(parse_image_index(referrers_index(*docs)).manifests)


def test_filters_applied() -> None:
    assert filters_applied(None) == frozenset()
    assert filters_applied("") == frozenset()
    assert filters_applied("artifactType") == {"artifactType"}
    assert "artifactType" in filters_applied(" annotation , artifactType")


def test_select_newest_by_created() -> None:
    found = descs(
        referrer(1, "2024-01-01T00:00:00Z"),
        referrer(2, "2024-03-01T00:00:00Z"),
        referrer(3, "2024-02-01T00:00:00Z"),
    )
    chosen = select_artifact(found)
    assert chosen is not None and chosen.digest == d(2)


def test_select_honours_offsets_not_string_order() -> None:
    # as strings "…T10:00:00+02:00" > "…T09:00:00Z", but as instants 08:00Z < 09:00Z
    found = descs(referrer(1, "2024-01-01T10:00:00+02:00"), referrer(2, "2024-01-01T09:00:00Z"))
    chosen = select_artifact(found)
    assert chosen is not None and chosen.digest == d(2)


def test_select_missing_or_bad_dates_are_oldest() -> None:
    found = descs(
        referrer(1), referrer(2, "not a date"), referrer(3, "1970-01-01T00:00:00Z"), referrer(4, "2024")
    )
    chosen = select_artifact(found)
    assert chosen is not None and chosen.digest == d(3)
    assert [x.digest for x in order_referrers(found)] == [d(3), d(1), d(2), d(4)]


def test_select_ties_break_on_smallest_digest_whatever_the_listing_order() -> None:
    same = "2024-01-01T00:00:00Z"
    a = descs(referrer(9, same), referrer(3, same), referrer(5, same))
    chosen = select_artifact(a)
    assert chosen is not None and chosen.digest == d(3)
    chosen_rev = select_artifact(list(reversed(a)))
    assert chosen_rev is not None and chosen_rev.digest == d(3)
    undated = descs(referrer(7), referrer(6))
    chosen_undated = select_artifact(undated)
    assert chosen_undated is not None and chosen_undated.digest == d(6)
    # the same instant spelt two ways is a tie too
    spelt = descs(referrer(8, "2024-01-01T02:00:00+02:00"), referrer(4, "2024-01-01T00:00:00.000Z"))
    chosen_spelt = select_artifact(spelt)
    assert chosen_spelt is not None and chosen_spelt.digest == d(4)


def test_select_filters_by_artifact_type() -> None:
    found = descs(
        referrer(1, "2025-01-01T00:00:00Z", artifact_type="application/vnd.dev.sigstore.bundle.v0.3+json"),
        referrer(2, "2024-01-01T00:00:00Z"),
        referrer(3, "2026-01-01T00:00:00Z", artifact_type=None),
        referrer(4, "2027-01-01T00:00:00Z", artifact_type=OCI_EMPTY),  # ggcr's wrong type
    )
    chosen = select_artifact(found)
    assert chosen is not None and chosen.digest == d(2)
    # a server that says it filtered is believed for descriptors that state no type, never against one
    chosen_f = select_artifact(found, server_filtered=True)
    assert chosen_f is not None and chosen_f.digest == d(3)
    assert select_artifact(found, "application/other") is None
    assert select_artifact([]) is None
    assert select_artifact(descs(referrer(1, artifact_type=OCI_EMPTY))) is None
    assert [x.digest for x in untyped_referrers(found)] == [d(3), d(4)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01t10:00:00z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01 10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00.123456789Z", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        (
            "2024-05-01T10:00:00.5-05:30",
            datetime(2024, 5, 1, 10, 0, 0, 500000, timezone(-timedelta(hours=5.5))),
        ),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2024-05-01T10:00:00", None),
        ("2024-05-01", None),
        ("2024-02-30T00:00:00Z", None),
        ("2024-05-01T24:00:00Z", None),
        ("2024-05-01T10:00:00+24:00", None),
        ("0000-01-01T00:00:00Z", None),
        ("٢٠٢٤-05-01T10:00:00Z", None),
        ("", None),
        (None, None),
        (20240501, None),
    ],
)
def test_parse_rfc3339(text: object, expected: datetime | None) -> None:
    assert parse_rfc3339(text) == expected


@given(st.text(max_size=40))
def test_parse_rfc3339_never_crashes(text: str) -> None:
    result = parse_rfc3339(text)
    assert result is None or result.tzinfo is not None


# --- platforms ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "digest"),
    [
        (None, d(1)),
        (Platform("linux", "amd64"), d(1)),
        (Platform("linux", "x86_64"), d(1)),
        (Platform("linux", "arm64"), d(2)),
        (Platform("linux", "aarch64"), d(2)),
        (Platform("linux", "arm64", "v8"), d(2)),
        (Platform("Linux", "ARM64", "V8"), d(2)),
        (Platform("linux", "arm", "v6"), d(3)),
        (Platform("linux", "arm"), None),  # arm means v7 by default; only v6 is there
        (Platform("linux", "arm64", "v9"), None),
        (Platform("windows", "amd64"), d(5)),
        (Platform("linux", "s390x"), None),
        (Platform("unknown", "unknown"), d(4)),  # explicitly asked for: allowed
    ],
)
def test_select_platform(platform: Platform | None, digest: str | None) -> None:
    chosen = select_platform(parse_image_index(MULTI_ARCH), platform)
    assert (chosen.digest if chosen else None) == digest


def test_select_platform_skips_nested_indexes_and_unplatformed_children_and_takes_the_first() -> None:
    idx = parse_image_index(
        referrers_index(
            {"mediaType": OCI_MANIFEST, "digest": d(1), "size": 1},
            {
                "mediaType": OCI_INDEX,
                "digest": d(2),
                "size": 1,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": d(3),
                "size": 1,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": d(4),
                "size": 1,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
        )
    )
    chosen = select_platform(idx)
    assert chosen is not None and chosen.digest == d(3)


def test_normalise_and_parse_platform_spec() -> None:
    assert normalise_platform(Platform("linux", "arm64", "8")) == ("linux", "arm64", "v8")
    assert normalise_platform(Platform("linux", "amd64")) == ("linux", "amd64", "v1")
    assert normalise_platform(Platform("linux", "riscv64")) == ("linux", "riscv64", "")
    assert parse_platform_spec("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert parse_platform_spec(" linux/amd64 ") == Platform("linux", "amd64")
    for bad in ("linux", "linux/", "/amd64", "a/b/c/d", ""):
        with pytest.raises(PlatformError, match="os/arch"):
            parse_platform_spec(bad)


# --- the spec layer ----------------------------------------------------------------------------------


def test_spec_layer_checks_type_and_uniqueness() -> None:
    other = parse_image_manifest(
        _with(artifact_manifest(), ("artifactType",), "application/vnd.example+json")
    )
    with pytest.raises(ManifestError, match=r"expected .application/vnd\.nfd"):
        spec_layer(other)
    untyped = parse_image_manifest(_with(artifact_manifest(), ("artifactType",), _DELETE))
    with pytest.raises(ManifestError, match=re.escape(f"got '{OCI_EMPTY}'")):
        spec_layer(untyped)
    no_spec = parse_image_manifest(
        _with(artifact_manifest(), ("layers", 0, "mediaType"), "application/vnd.oci.image.layer.v1.tar")
    )
    with pytest.raises(ManifestError, match="no layer with media type"):
        spec_layer(no_spec)
    doc = artifact_manifest()
    doc["layers"].insert(0, {"mediaType": "text/plain", "digest": d(7), "size": 1})
    assert spec_layer(parse_image_manifest(doc)).digest == sha(SPEC_YAML)  # not blindly layers[0]
    doc["layers"].append(dict(doc["layers"][1]))
    with pytest.raises(ManifestError, match="2 layers with media type") as info:
        spec_layer(parse_image_manifest(doc))
    assert info.value.path == "layers"
