"""The registry client, attach and the registry spec source against a real registry: Debian's
``docker-registry`` (distribution 2.8), which has no referrers API, so every lookup here goes
through the tag-schema fallback that ``attach`` maintains. Run anonymous and behind htpasswd."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from extender.errors import (
    RegistryAuthError,
    RegistryNotAllowedError,
    RegistryStatusError,
    SpecError,
    SpecLookupError,
)
from extender.images import parse_reference
from extender.platforms import Platform
from extender.sources.registry import attach as attach_module
from extender.sources.registry.attach import attach
from extender.sources.registry.auth import Credentials
from extender.sources.registry.client import RegistryClient
from extender.sources.registry.lookup import CacheSettings, RegistrySpecs
from extender.sources.registry.manifests import OCI_MANIFEST, Descriptor, digest_of, referrers_tag
from extender.sources.registry.transport import AiohttpTransport
from extender.spec.model import ARTIFACT_TYPE
from extender.spec.parse import parse_spec
from tests.distribution import PASSWORD, USER, Distribution
from tests.oci_images import push_image, push_index

SPEC = b"""\
version: v1alpha1
compatibilities:
- description: needs AVX-512
  rules:
  - name: avx512
    matchFeatures:
    - feature: cpu.cpuid
      matchExpressions:
        AVX512F: {op: Exists}
"""
SPEC_NEWER = SPEC.replace(b"needs AVX-512", b"needs AVX-512 (v2)")

_names = itertools.count()


def repo(d: Distribution) -> str:
    """A fresh repository per test, so tests do not see each other's artifacts."""
    return f"{d.host}/test/app{next(_names)}"


@pytest.fixture
async def client() -> AsyncIterator[RegistryClient]:
    transport = AiohttpTransport(request_seconds=10)
    yield RegistryClient(transport)
    await transport.close()


def specs_for(client: RegistryClient, **kw: object) -> RegistrySpecs:
    return RegistrySpecs(client, **kw)  # type: ignore[arg-type]


def requests(client: RegistryClient) -> int:
    transport = client.transport
    assert isinstance(transport, AiohttpTransport)
    return transport.requests


async def test_attach_then_lookup_through_the_tag_schema(
    distribution: Distribution, client: RegistryClient
) -> None:
    name = repo(distribution)
    image = await push_image(client, name, "1.0")
    done = await attach(client, parse_reference(f"{name}:1.0"), SPEC, created="2026-01-01T00:00:00Z")
    assert done.indexed == "tag-schema"  # distribution 2.8 sends no OCI-Subject
    assert done.subject == image.descriptor

    specs = specs_for(RegistryClient(client.transport))
    before = requests(client)
    spec = await specs.lookup(f"{name}:1.0")
    assert spec == parse_spec(SPEC)
    # image manifest, referrers API (404: none), tag-schema index, artifact manifest, spec blob
    assert requests(client) - before == 5
    # another image of the same repository: the missing API is remembered -> 4
    await push_image(client, name, "1.1", payload=b"other")
    await attach(client, parse_reference(f"{name}:1.1"), SPEC)
    before = requests(client)
    assert await specs.lookup(f"{name}:1.1") == parse_spec(SPEC)
    assert requests(client) - before == 4
    # warm: nothing at all
    before = requests(client)
    assert await specs.lookup(f"{name}:1.0") == parse_spec(SPEC)
    assert requests(client) == before
    assert specs.tags.hits >= 1 and specs.referrers.hits >= 1


async def test_by_digest_reads_the_manifest_once(distribution: Distribution, client: RegistryClient) -> None:
    name = repo(distribution)
    image = await push_image(client, name, "v")
    await attach(client, image.ref, SPEC)
    specs = specs_for(RegistryClient(client.transport))
    before = requests(client)
    assert await specs.lookup(f"{name}@{image.digest}") == parse_spec(SPEC)
    # the manifest (is it an index?), referrers API 404, tag schema, artifact, blob
    assert requests(client) - before == 5
    before = requests(client)
    assert await specs.lookup(f"{name}@{image.digest}") == parse_spec(SPEC)
    assert requests(client) == before  # all cached


async def test_newest_artifact_wins_and_attach_is_idempotent(
    distribution: Distribution, client: RegistryClient
) -> None:
    name = repo(distribution)
    await push_image(client, name, "1")
    ref = parse_reference(f"{name}:1")
    await attach(client, ref, SPEC, created="2026-01-01T00:00:00Z")
    await attach(client, ref, SPEC_NEWER, created="2026-02-01T00:00:00Z")
    again = await attach(client, ref, SPEC_NEWER, created="2026-02-01T00:00:00Z")
    assert again.indexed == "already listed"  # same bytes, same digest: not listed twice
    survey = await specs_for(client).survey(ref)
    listing = dict(survey.listings)[survey.found.digest]
    assert listing.via == "tag-schema" and len(listing.descriptors) == 2
    assert await specs_for(client).lookup(f"{name}:1") == parse_spec(SPEC_NEWER)
    # the image's own tag was not touched: it still names the image, not an artifact
    fetched = await client.manifest(ref)
    assert fetched.media_type == OCI_MANIFEST and fetched.digest == survey.found.digest


async def test_no_artifact_is_no_spec_and_is_cached(
    distribution: Distribution, client: RegistryClient
) -> None:
    name = repo(distribution)
    await push_image(client, name, "bare")
    specs = specs_for(client)
    assert await specs.lookup(f"{name}:bare") is None
    before = requests(client)
    assert await specs.lookup(f"{name}:bare") is None
    assert requests(client) == before  # tag and negative caches
    # with the negative cache off, an artifact attached later is seen at once
    fresh = specs_for(client, cache=CacheSettings(negative_seconds=0, tag_seconds=0))
    assert await fresh.lookup(f"{name}:bare") is None
    await attach(client, parse_reference(f"{name}:bare"), SPEC)
    assert await fresh.lookup(f"{name}:bare") == parse_spec(SPEC)


async def test_multi_arch_platform_child_fallback(distribution: Distribution, client: RegistryClient) -> None:
    name = repo(distribution)
    index, children = await push_index(client, name, "multi")
    await attach(client, children["arm64"].ref, SPEC)  # attached to the arm64 manifest only
    arm = specs_for(client, platform=Platform("linux", "arm64"))
    survey = await arm.survey(parse_reference(f"{name}:multi"), ("linux/arm64/v8",))
    variant = survey.found.variant("linux/arm64/v8")
    assert survey.found.digest == index.digest
    assert (
        variant is not None and variant.origin == "platform" and variant.manifest == children["arm64"].digest
    )
    assert await arm.lookup(f"{name}:multi") == parse_spec(SPEC)
    amd = specs_for(client)
    assert await amd.lookup(f"{name}:multi") is None  # amd64's child has none, nor has the index
    # by digest of the index: the same
    assert await arm.lookup(f"{name}@{index.digest}") == parse_spec(SPEC)
    # an artifact on the index itself is found without asking the child
    await attach(client, parse_reference(f"{name}:multi"), SPEC_NEWER)
    survey = await specs_for(client).survey(parse_reference(f"{name}:multi"), ("linux/amd64/v1",))
    variant = survey.found.variant("linux/amd64/v1")
    assert variant is not None and variant.origin == "index" and variant.artifact == survey.found.artifact
    assert await specs_for(client).lookup(f"{name}:multi") == parse_spec(SPEC_NEWER)


async def test_errors_are_lookup_errors_not_no_spec(
    distribution: Distribution, client: RegistryClient
) -> None:
    name = repo(distribution)
    specs = specs_for(client)
    with pytest.raises(SpecLookupError, match="MANIFEST_UNKNOWN"):
        await specs.lookup(f"{name}:missing")
    with pytest.raises(SpecLookupError, match="MANIFEST_UNKNOWN"):
        await specs.lookup(f"{distribution.host}/no/such/repo@sha256:{'1' * 64}")
    with pytest.raises(SpecLookupError, match="invalid tag"):
        await specs.lookup(f"{name}:bad$tag")
    assert f"{name}:missing" in specs.errors
    blocked = specs_for(RegistryClient(client.transport, allow=frozenset({"ghcr.io"})))
    with pytest.raises(SpecLookupError, match=r"not in registry\.allow"):
        await blocked.lookup(f"{name}:1")
    with pytest.raises(RegistryNotAllowedError):
        RegistryClient(client.transport, allow=frozenset({"ghcr.io"})).check_allowed(parse_reference(name))


async def test_a_broken_spec_in_the_registry_is_an_error_and_is_cached(
    distribution: Distribution, client: RegistryClient
) -> None:
    name = repo(distribution)
    image = await push_image(client, name, "1")
    ref = parse_reference(f"{name}:1")
    bad = (
        b"version: v1alpha1\ncompatibilities:\n- rules: [{name: r, matchFeatures: "
        b"[{feature: cpu.cpuid, matchExpressions: {X: {op: Bogus}}}]}]\n"
    )
    data, config, layer = attach_module.artifact_manifest(
        bad, image.descriptor, {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
    )
    await client.push_blob(ref, attach_module.EMPTY_CONFIG, config.media_type)
    await client.push_blob(ref, bad, layer.media_type)
    await client.push_manifest(ref, data, OCI_MANIFEST, digest_of(data))
    artifact = Descriptor(OCI_MANIFEST, digest_of(data), len(data), ARTIFACT_TYPE)
    await attach_module._update_tag_schema(client, ref, image.digest, artifact)
    specs = specs_for(client)
    with pytest.raises(SpecLookupError, match="Bogus"):
        await specs.lookup(f"{name}:1")
    before = requests(client)
    with pytest.raises(SpecLookupError, match="Bogus"):
        await specs.lookup(f"{name}:1")
    assert requests(client) == before  # the broken spec is content-addressed too


async def test_attach_refuses_an_invalid_spec(distribution: Distribution, client: RegistryClient) -> None:
    name = repo(distribution)
    await push_image(client, name, "1")
    with pytest.raises(SpecError):
        await attach(client, parse_reference(f"{name}:1"), b"version: v2\ncompatibilities: []\n")
    missing = await client.optional_manifest(
        parse_reference(f"{name}:1"), referrers_tag(f"sha256:{'2' * 64}")
    )
    assert missing is None


# -- htpasswd (Basic) -------------------------------------------------------------------------------


async def test_basic_auth(distribution_auth: Distribution) -> None:
    transport = AiohttpTransport(request_seconds=10)
    try:
        good = RegistryClient(transport, credentials=lambda r: Credentials(USER, PASSWORD))
        name = repo(distribution_auth)
        await push_image(good, name, "1")
        await attach(good, parse_reference(f"{name}:1"), SPEC)

        reader = RegistryClient(transport, credentials=lambda r: Credentials(USER, PASSWORD))
        specs = specs_for(reader)
        before = transport.requests
        assert await specs.lookup(f"{name}:1") == parse_spec(SPEC)
        # the first request is challenged (401) and resent; after that Basic is sent up front.
        # distribution 2.8 does not challenge the referrers route (it does not exist): 1 + 5
        assert transport.requests - before == 6

        anonymous = specs_for(RegistryClient(transport))
        with pytest.raises(SpecLookupError, match="authentication required"):
            await anonymous.lookup(f"{name}:1")
        wrong = specs_for(RegistryClient(transport, credentials=lambda r: Credentials(USER, "nope")))
        with pytest.raises(SpecLookupError, match="rejected"):
            await wrong.lookup(f"{name}:1")
        with pytest.raises(RegistryAuthError):
            await RegistryClient(transport).manifest(parse_reference(f"{name}:1"))
    finally:
        await transport.close()


async def test_status_errors_name_the_code(distribution: Distribution, client: RegistryClient) -> None:
    name = repo(distribution)
    with pytest.raises(RegistryStatusError) as err:
        await client.manifest(parse_reference(f"{name}:nope"))
    assert err.value.status == 404 and "MANIFEST_UNKNOWN" in err.value.codes


# -- TLS with a per-registry CA ----------------------------------------------------------------------


async def test_tls_with_a_configured_ca(distribution_tls: Distribution, tmp_path: Path) -> None:
    assert distribution_tls.ca is not None
    host = distribution_tls.host
    trusted = AiohttpTransport(ca_files={host: distribution_tls.ca})
    untrusted = AiohttpTransport()
    try:
        client = RegistryClient(trusted, tls_hosts=frozenset({host}))
        assert client.base_url(parse_reference(f"{host}/a/b")) == f"https://{host}"
        name = f"{host}/tls/app"
        await push_image(client, name, "1")
        await attach(client, parse_reference(f"{name}:1"), SPEC)
        assert await specs_for(client).lookup(f"{name}:1") == parse_spec(SPEC)
        # without the CA the certificate is not trusted: an error, never "no spec"
        strict = specs_for(RegistryClient(untrusted, tls_hosts=frozenset({host})))
        with pytest.raises(SpecLookupError, match=r"(?i)certificate"):
            await strict.lookup(f"{name}:1")
        # and a loopback host without a CA entry is spoken to in plain HTTP: the TLS port refuses it
        plain = specs_for(RegistryClient(untrusted))
        with pytest.raises(SpecLookupError):
            await plain.lookup(f"{name}:1")
    finally:
        await trusted.close()
        await untrusted.close()


# -- credentials from a docker config.json ---------------------------------------------------------


async def test_docker_config_credentials_are_read_and_follow_the_file(
    distribution_auth: Distribution, tmp_path: Path
) -> None:
    import base64
    import json

    from extender.sources.from_config import DockerConfigCredentials

    def write(user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        path.write_text(json.dumps({"auths": {distribution_auth.host: {"auth": token}}}))

    path = tmp_path / "config.json"
    write(USER, PASSWORD)
    creds = DockerConfigCredentials(path)
    transport = AiohttpTransport()
    try:
        client = RegistryClient(transport, credentials=creds)
        name = repo(distribution_auth)
        await push_image(client, name, "1")
        await attach(client, parse_reference(f"{name}:1"), SPEC)
        assert await specs_for(client).lookup(f"{name}:1") == parse_spec(SPEC)

        write(USER, "rotated-away")  # the Secret changes: the new (wrong) password is used
        path.touch()
        with pytest.raises(SpecLookupError, match="rejected"):
            await specs_for(RegistryClient(transport, credentials=creds)).lookup(f"{name}:1")
        path.write_text("{ not json")  # broken: anonymous, and the error is kept for operators
        with pytest.raises(SpecLookupError, match="authentication required"):
            await specs_for(RegistryClient(transport, credentials=creds)).lookup(f"{name}:1")
        assert "config.json" in creds.error
        path.unlink()
        assert creds(distribution_auth.host) is None and "No such file" in creds.error
        write(USER, PASSWORD)
        assert creds(distribution_auth.host) == Credentials(USER, PASSWORD) and creds.error == ""
    finally:
        await transport.close()


async def test_multi_arch_variants_per_platform(distribution: Distribution, client: RegistryClient) -> None:
    """Through the tag-schema fallback: an index with per-platform artifacts, with an index-level
    one, with both (the platform's own wins), and a platform the index does not have."""
    name = repo(distribution)
    index, children = await push_index(client, name, "multi")
    amd64, arm64, s390x = "linux/amd64/v1", "linux/arm64/v8", "linux/s390x"
    image = f"{name}:multi"
    await attach(client, children["arm64"].ref, SPEC)  # per platform: arm64 only
    found = await specs_for(client).lookup_variants(image, (amd64, arm64, s390x))
    assert found is not None and found.variants is not None and found.digest == index.digest
    arm, amd = found.variants[arm64], found.variants[amd64]
    assert arm is not None and arm.origin == "platform" and arm.spec == parse_spec(SPEC)
    assert arm.manifest == children["arm64"].digest
    assert amd is not None and amd.origin == "none" and amd.spec is None  # nothing to meet on amd64
    assert found.variants[s390x] is None  # the index has no s390x child
    await attach(client, parse_reference(image), SPEC_NEWER)  # and now one on the index too
    found = await specs_for(client).lookup_variants(image, (amd64, arm64))
    assert found is not None and found.variants is not None
    arm, amd = found.variants[arm64], found.variants[amd64]
    assert arm is not None and arm.origin == "platform" and arm.spec == parse_spec(SPEC)  # its own wins
    assert amd is not None and amd.origin == "index" and amd.spec == parse_spec(SPEC_NEWER)
    assert amd.artifact == found.artifact != ""
    # lookup() answers for registry.platform
    assert await specs_for(client, platform=Platform("linux", "arm64")).lookup(image) == parse_spec(SPEC)
    assert await specs_for(client).lookup(image) == parse_spec(SPEC_NEWER)
