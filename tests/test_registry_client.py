"""The registry client and spec source against the protocol-level registry stand-in
(``tests/oci_registry.py``): the referrers API (filter honoured or not, ``Link`` pages, ggcr's wrong
``artifactType``), the fallbacks, Bearer tokens (anonymous, with credentials, expiry), and faults —
5xx, 403, timeouts, wrong digests, truncated and oversized bodies. Round trips are counted on the
registry's side: what a cold lookup costs is part of the contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from extender.errors import RegistryError, SpecLookupError
from extender.images import parse_reference
from extender.platforms import Platform
from extender.sources.registry.attach import attach
from extender.sources.registry.auth import Credentials
from extender.sources.registry.client import RegistryClient
from extender.sources.registry.lookup import CacheSettings, RegistrySpecs
from extender.sources.registry.transport import AiohttpTransport
from extender.spec.parse import parse_spec
from tests.oci_registry import FakeRegistry, serve_registry

SPEC = (
    b"version: v1alpha1\ncompatibilities:\n- rules:\n  - name: r\n    matchFeatures:\n"
    b"    - feature: cpu.cpuid\n      matchExpressions: {AVX2: {op: Exists}}\n"
)
OTHER = SPEC.replace(b"AVX2", b"AVX512F")
#: Far beyond what a request on loopback takes on a busy machine: only a held request times out.
REQUEST_SECONDS = 10.0
LOOKUP_SECONDS = 30.0
#: A delay that lasts until the stand-in is released (when the fixture stops it).
HELD = 10**6


@dataclass
class Env:
    registry: FakeRegistry
    host: str
    transport: AiohttpTransport

    def client(self, **kw: object) -> RegistryClient:
        return RegistryClient(self.transport, **kw)  # type: ignore[arg-type]

    def specs(self, cache: CacheSettings | None = None, **kw: object) -> RegistrySpecs:
        return RegistrySpecs(self.client(**kw), cache=cache, lookup_seconds=LOOKUP_SECONDS)

    def trips(self) -> int:
        """Registry requests so far, token requests not counted ("after auth")."""
        return len([r for r in self.registry.requests if r.route != "token"])


@pytest.fixture
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    registry: FakeRegistry = getattr(request, "param", None) or FakeRegistry()
    transport = AiohttpTransport(request_seconds=REQUEST_SECONDS)
    async with serve_registry(registry) as base:
        yield Env(registry, base.removeprefix("http://"), transport)
        await transport.close()


def image_with_spec(env: Env, repo: str = "app", tag: str = "1", spec: bytes = SPEC) -> str:
    digest = env.registry.put_image(repo, tag, layer=f"layer of {tag}".encode())
    env.registry.put_artifact(repo, digest, spec)
    return digest


# -- the referrers API ------------------------------------------------------------------------------


async def test_cold_lookup_round_trips(env: Env) -> None:
    digest = image_with_spec(env)
    specs = env.specs()
    before = env.trips()
    assert await specs.lookup(f"{env.host}/app:1") == parse_spec(SPEC)
    assert env.trips() - before == 4  # image manifest, referrers, artifact manifest, spec blob
    routes = [r.route for r in env.registry.requests[before:]]
    assert routes == ["manifests", "referrers", "manifests", "blobs"]
    referrers = env.registry.requests_to("referrers")[-1]
    assert "artifactType=application%2Fvnd.nfd.image-compatibility.v1alpha1" in referrers.query
    before = env.trips()
    assert await env.specs().lookup(f"{env.host}/app@{digest}") == parse_spec(SPEC)
    # by digest the image manifest is still read once: whether it is a multi-arch index (whose
    # children may carry artifacts of their own) decides what else to ask
    assert env.trips() - before == 4


async def test_no_artifact_is_none_and_other_artifact_types_are_ignored(env: Env) -> None:
    digest = env.registry.put_image("app", "1")
    env.registry.put_artifact("app", digest, b"signature", artifact_type="application/vnd.dev.cosign.v1")
    assert await env.specs().lookup(f"{env.host}/app:1") is None


@pytest.mark.parametrize("env", [FakeRegistry(filter_artifact_type=False)], indirect=True)
async def test_unfiltered_answer_is_filtered_by_the_client(env: Env) -> None:
    digest = env.registry.put_image("app", "1")
    env.registry.put_artifact("app", digest, SPEC, created="2026-01-01T00:00:00Z")
    env.registry.put_artifact(
        "app",
        digest,
        b"newer, but a signature",
        artifact_type="application/vnd.dev.cosign.v1",
        created="2026-06-01T00:00:00Z",
    )
    assert await env.specs().lookup(f"{env.host}/app:1") == parse_spec(SPEC)


@pytest.mark.parametrize("env", [FakeRegistry.ggcr()], indirect=True)
async def test_ggcr_wrong_artifact_type_is_checked_on_the_manifest(env: Env) -> None:
    digest = env.registry.put_image("app", "1")
    env.registry.put_artifact("app", digest, SPEC)
    survey = await env.specs().survey(parse_reference(f"{env.host}/app:1"))
    assert survey.found.artifact != ""  # the one listed as a config media type was checked and kept
    assert await env.specs().lookup(f"{env.host}/app:1") == parse_spec(SPEC)


@pytest.mark.parametrize("env", [FakeRegistry(page_size=1)], indirect=True)
async def test_link_pages_are_followed_and_the_newest_wins(env: Env) -> None:
    digest = env.registry.put_image("app", "1")
    env.registry.put_artifact("app", digest, OTHER, created="2026-01-01T00:00:00Z")
    env.registry.put_artifact("app", digest, SPEC, created="2026-03-01T00:00:00Z")
    env.registry.put_artifact("app", digest, OTHER + b"# 2\n", created="2026-02-01T00:00:00Z")
    assert await env.specs().lookup(f"{env.host}/app:1") == parse_spec(SPEC)
    assert len(env.registry.requests_to("referrers")) == 3


@pytest.mark.parametrize("env", [FakeRegistry(referrers_content_type="application/json")], indirect=True)
async def test_a_non_index_answer_means_no_api_and_the_tag_schema_is_read(env: Env) -> None:
    digest = image_with_spec(env)
    env.registry.write_referrers_tag("app", digest)
    assert await env.specs().lookup(f"{env.host}/app:1") == parse_spec(SPEC)


@pytest.mark.parametrize("env", [FakeRegistry(name_unknown=True)], indirect=True)
async def test_name_unknown_is_an_error_not_a_missing_api(env: Env) -> None:
    with pytest.raises(SpecLookupError, match="NAME_UNKNOWN"):
        await env.specs().lookup(f"{env.host}/nope@sha256:{'3' * 64}")


async def test_multi_arch_child_through_the_api(env: Env) -> None:
    amd = env.registry.put_image("app", platform="linux/amd64", layer=b"a")
    arm = env.registry.put_image("app", platform="linux/arm64", layer=b"b")
    env.registry.put_index("app", [amd, arm], "multi")
    env.registry.put_artifact("app", amd, SPEC)
    specs = env.specs()
    survey = await specs.survey(parse_reference(f"{env.host}/app:multi"), ("linux/amd64/v1",))
    variant = survey.found.variant("linux/amd64/v1")
    assert variant is not None and variant.origin == "platform" and variant.manifest == amd
    assert await specs.lookup(f"{env.host}/app:multi") == parse_spec(SPEC)


# -- Bearer tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("env", [FakeRegistry(auth="bearer", anonymous_pull={"app"})], indirect=True)
async def test_bearer_anonymous_token_cached_per_scope(env: Env) -> None:
    image_with_spec(env, tag="1")
    image_with_spec(env, tag="2", spec=OTHER)
    client = env.client()
    specs = RegistrySpecs(client)
    before = env.trips()
    assert await specs.lookup(f"{env.host}/app:1") == parse_spec(SPEC)
    assert env.trips() - before == 5  # the first request is challenged once, then 4
    assert env.registry.token_request_count == 1
    before = env.trips()
    assert await specs.lookup(f"{env.host}/app:2") == parse_spec(OTHER)
    assert env.trips() - before == 4  # token sent up front: no challenge, no new token
    assert env.registry.token_request_count == 1
    assert all(r.auth_scheme == "Bearer" for r in env.registry.requests[-4:])


@pytest.mark.parametrize(
    "env",
    [
        FakeRegistry(
            auth="bearer", users={"bob": "pw"}, token_requires_credentials=True, token_field="access_token"
        )
    ],
    indirect=True,
)
async def test_bearer_with_credentials(env: Env) -> None:
    image_with_spec(env)
    good = env.specs(credentials=lambda r: Credentials("bob", "pw"))
    assert await good.lookup(f"{env.host}/app:1") == parse_spec(SPEC)
    assert env.registry.token_requests[-1].user == "bob"
    bad = env.specs(credentials=lambda r: Credentials("bob", "wrong"))
    with pytest.raises(SpecLookupError, match="refused a token"):
        await bad.lookup(f"{env.host}/app:1")
    with pytest.raises(SpecLookupError, match="refused a token"):
        await env.specs().lookup(f"{env.host}/app:1")


@pytest.mark.parametrize("env", [FakeRegistry(auth="bearer")], indirect=True)
async def test_anonymous_token_without_access_is_an_error_without_a_loop(env: Env) -> None:
    image_with_spec(env)
    with pytest.raises(SpecLookupError, match="still 401"):
        await env.specs().lookup(f"{env.host}/app:1")
    assert env.registry.token_request_count <= 2
    assert len(env.registry.requests) <= 4


@pytest.mark.parametrize("env", [FakeRegistry(auth="bearer", anonymous_pull={"*"})], indirect=True)
async def test_expired_token_is_replaced(env: Env) -> None:
    image_with_spec(env, tag="1")
    image_with_spec(env, tag="2", spec=OTHER)
    client = env.client()
    assert await RegistrySpecs(client).lookup(f"{env.host}/app:1") == parse_spec(SPEC)
    env.registry.expire_tokens()  # the registry no longer takes it, though our cache thinks it fresh
    assert await RegistrySpecs(client).lookup(f"{env.host}/app:2") == parse_spec(OTHER)
    assert env.registry.token_request_count == 2


@pytest.mark.parametrize(
    "env",
    [
        FakeRegistry(
            auth="basic", users={"bob": "pw"}, blob_redirect=True, blobstore_rejects_authorization=True
        )
    ],
    indirect=True,
)
async def test_blob_redirect_does_not_carry_credentials(env: Env) -> None:
    image_with_spec(env)
    specs = env.specs(credentials=lambda r: Credentials("bob", "pw"))
    assert await specs.lookup(f"{env.host}/app:1") == parse_spec(SPEC)
    assert env.registry.blobstore_authorization == [None]


# -- faults: every one is an error (the failure policy decides), and nothing wrong is cached ---------


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        (lambda r: r.fail_next(1, 500), "500"),
        (lambda r: r.fail_next(1, 503, route="referrers", retry_after=1), "503"),
        (lambda r: r.fail_next(1, 403, route="manifests"), "access denied"),
        (lambda r: r.fail_next(1, 429, route="blobs"), "429"),
        (lambda r: r.delay_next(HELD, route="referrers"), f"no complete answer within {REQUEST_SECONDS:g}s"),
        (lambda r: r.corrupt_next(1, route="blobs"), "digest"),
        (lambda r: r.corrupt_next(1, route="manifests"), r"(?i)digest"),
        (lambda r: r.truncate_next(1, route="blobs"), "cut short"),
        (lambda r: r.truncate_next(1, route="manifests"), "cut short"),
        (lambda r: r.oversize_next(8 << 20, route="blobs"), "limit"),
        (lambda r: r.oversize_next(8 << 20, route="manifests", declare_length=False), "limit"),
        (lambda r: r.lie_digest_next(1, route="manifests"), "Docker-Content-Digest"),
    ],
    ids=[
        "500",
        "503",
        "403",
        "429",
        "timeout",
        "corrupt-blob",
        "corrupt-manifest",
        "truncated-blob",
        "truncated-manifest",
        "oversized-blob",
        "oversized-chunked",
        "lying-digest-header",
    ],
)
async def test_faults_are_errors_and_recovery_is_complete(env: Env, fault: object, match: str) -> None:
    image_with_spec(env)
    specs = env.specs()
    fault(env.registry)  # type: ignore[operator]
    with pytest.raises(SpecLookupError, match=match):
        await specs.lookup(f"{env.host}/app:1")
    assert f"{env.host}/app:1" in specs.errors
    # the fault is over: the same source (same caches) finds the spec, and forgets the error
    assert await specs.lookup(f"{env.host}/app:1") == parse_spec(SPEC)
    assert specs.errors == {}


async def test_oversized_spec_blob_is_refused_before_download(env: Env) -> None:
    digest = env.registry.put_image("app", "1")
    env.registry.put_artifact("app", digest, SPEC + b"#" * (2 << 20))
    before = env.trips()
    with pytest.raises(SpecLookupError, match="over the 1048576-byte limit"):
        await env.specs().lookup(f"{env.host}/app:1")
    assert [r.route for r in env.registry.requests[before:]] == ["manifests", "referrers", "manifests"]


async def test_registry_down_is_an_error(env: Env) -> None:
    specs = RegistrySpecs(RegistryClient(env.transport), lookup_seconds=LOOKUP_SECONDS)
    with pytest.raises(SpecLookupError, match=r"ClientConnectorError|Connect"):
        await specs.lookup("127.0.0.1:9/app:1")


# -- multi-arch images: a variant per platform ------------------------------------------------------

AMD64, ARM64, S390X = "linux/amd64/v1", "linux/arm64/v8", "linux/s390x"


async def test_multi_arch_variants_through_the_api(env: Env) -> None:
    """An index with an artifact of its own and one on its arm64 child: the arm64 child's wins for
    arm64 nodes, the index's applies to amd64 (whose child has none), and s390x, which the index
    lacks, has no variant. Referrers are asked only for the digests the asked platforms need."""
    amd = env.registry.put_image("app", platform="linux/amd64", layer=b"a")
    arm = env.registry.put_image("app", platform="linux/arm64", layer=b"b")
    index = env.registry.put_index("app", [amd, arm], "multi")
    env.registry.put_artifact("app", index, OTHER)
    env.registry.put_artifact("app", arm, SPEC)
    specs = env.specs()
    image = f"{env.host}/app:multi"
    before = len(env.registry.requests)
    found = await specs.lookup_variants(image, (AMD64, S390X))
    asked = [r.path.rsplit("/", 1)[-1] for r in env.registry.requests[before:] if r.route == "referrers"]
    assert asked == [index, amd]  # the index and amd64's child; never arm64's: no arm64 node asked
    assert found is not None and found.digest == index and found.variants is not None
    amd_variant = found.variants[AMD64]
    assert amd_variant is not None and amd_variant.origin == "index" and amd_variant.manifest == amd
    assert amd_variant.spec == parse_spec(OTHER)
    assert found.variants[S390X] is None
    found = await specs.lookup_variants(image, (AMD64, ARM64))
    assert found is not None and found.variants is not None
    arm_variant = found.variants[ARM64]
    assert arm_variant is not None and arm_variant.origin == "platform" and arm_variant.manifest == arm
    assert arm_variant.spec == parse_spec(SPEC)
    # everything is cached per digest now: a third lookup costs no round trip
    before = env.trips()
    assert await specs.lookup_variants(image, (ARM64, AMD64, S390X)) is not None
    assert env.trips() == before


async def test_multi_arch_without_any_artifact_is_no_spec(env: Env) -> None:
    """Only an image with an artifact somewhere is judged per platform: an index without any
    imposes nothing, even on a platform it lacks (the kubelet's business, not this extender's)."""
    amd = env.registry.put_image("app", platform="linux/amd64", layer=b"a")
    env.registry.put_index("app", [amd], "bare")
    assert await env.specs().lookup_variants(f"{env.host}/app:bare", (AMD64, ARM64)) is None


async def test_survey_lists_what_every_platform_of_an_index_is_judged_by(env: Env) -> None:
    """What ``discover`` shows: every platform the index has (the child's own artifact wins, else
    the index's), each listing read once (the index's first), and with platforms asked only those,
    a platform the index lacks mapping to None."""
    amd = env.registry.put_image("app", platform="linux/amd64", layer=b"a")
    arm = env.registry.put_image("app", platform="linux/arm64", layer=b"b")
    index = env.registry.put_index("app", [amd, arm], "multi")
    on_index = env.registry.put_artifact("app", index, OTHER)
    on_arm = env.registry.put_artifact("app", arm, SPEC)
    ref = parse_reference(f"{env.host}/app:multi")
    survey = await env.specs().survey(ref, use_cache=False)
    assert survey.platforms == (AMD64, ARM64)
    assert [subject for subject, _ in survey.listings] == [index, amd, arm]
    assert dict(survey.chosen) == {index: survey.artifact(on_index), arm: survey.artifact(on_arm)}
    variants = survey.found.variants
    assert variants is not None and list(variants) == [AMD64, ARM64]
    amd_v, arm_v = variants[AMD64], variants[ARM64]
    assert amd_v is not None and (amd_v.origin, amd_v.manifest, amd_v.artifact) == ("index", amd, on_index)
    assert amd_v.spec == parse_spec(OTHER)
    assert arm_v is not None and (arm_v.origin, arm_v.manifest, arm_v.artifact) == ("platform", arm, on_arm)
    assert arm_v.spec == parse_spec(SPEC)

    narrowed = await env.specs().survey(ref, (S390X,))
    assert narrowed.found.variants == {S390X: None}
    assert [subject for subject, _ in narrowed.listings] == [index]  # no child asked about
    assert narrowed.platforms == (AMD64, ARM64)  # what the index has, still

    plain = env.registry.put_image("app", "plain", layer=b"p")
    not_index = await env.specs().survey(parse_reference(f"{env.host}/app:plain"), (ARM64,))
    assert not_index.found.variants is None and not_index.found.spec is None
    assert not_index.platforms == () and [s for s, _ in not_index.listings] == [plain]


async def test_attach_to_one_platforms_child_of_an_index(env: Env) -> None:
    amd = env.registry.put_image("app", platform="linux/amd64", layer=b"a")
    arm = env.registry.put_image("app", platform="linux/arm64", layer=b"b")
    index = env.registry.put_index("app", [amd, arm], "multi")
    ref = parse_reference(f"{env.host}/app:multi")
    done = await attach(env.client(), ref, SPEC, platform=Platform("linux", "arm64"))
    assert done.subject.digest == arm and done.index == index and done.platform == ARM64
    assert done.indexed == "registry"  # the stand-in's referrers API indexed it (OCI-Subject)
    assert [d["digest"] for d in env.registry.referrers("app", arm)] == [done.artifact.digest]
    assert env.registry.referrers("app", index) == []
    found = await env.specs().lookup_variants(f"{env.host}/app:multi", (AMD64, ARM64))
    assert found is not None and found.variants is not None
    amd_v, arm_v = found.variants[AMD64], found.variants[ARM64]
    assert amd_v is not None and amd_v.origin == "none"
    assert arm_v is not None and arm_v.origin == "platform" and arm_v.artifact == done.artifact.digest

    with pytest.raises(
        RegistryError, match=r"has no linux/s390x child \(it has: linux/amd64/v1, linux/arm64/v8\)"
    ):
        await attach(env.client(), ref, SPEC, platform=Platform("linux", "s390x"))
    with pytest.raises(RegistryError, match="not a multi-arch image index"):
        await attach(
            env.client(), parse_reference(f"{env.host}/app@{amd}"), SPEC, platform=Platform("linux", "amd64")
        )
    assert len(env.registry.referrers("app", amd)) == 0  # nothing was pushed for either
