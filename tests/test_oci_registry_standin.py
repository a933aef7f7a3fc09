"""The OCI registry stand-in (tests/oci_registry.py) checked with raw aiohttp requests, so that a
client test failing against it can be blamed on the client: storage, the upload protocol,
manifests and content negotiation, referrers (filter, pagination, the 2.8 404, the tag schema),
Basic and Bearer auth, and every fault switch."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.oci_registry import (
    ANNOTATION_CREATED,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFEST_ACCEPT,
    NFD_ARTIFACT_TYPE,
    NOT_FOUND_PAGE,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    FakeRegistry,
    challenge_params,
    digest_of,
    encode_json,
    referrers_tag,
    serve_registry,
)
from tests.waiting import SAFETY_SECONDS, finishes, until

ACCEPT = {"Accept": MANIFEST_ACCEPT}
#: A delay no request outlasts: it ends when the registry is released (the server stops).
HELD = 10**6
OTHER_TYPE = "application/vnd.example.sbom.v1+json"


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
async def base(registry: FakeRegistry) -> AsyncIterator[str]:
    async with serve_registry(registry) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SAFETY_SECONDS)) as session:
        yield session


async def error_of(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """The single entry of a registry JSON error body."""
    assert resp.headers["Content-Type"].startswith("application/json")
    doc = json.loads(await resp.read())
    assert set(doc) == {"errors"} and len(doc["errors"]) == 1
    (err,) = doc["errors"]
    assert set(err) == {"code", "message", "detail"} and isinstance(err["message"], str)
    return dict(err)


async def expect_error(resp: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, (resp.status, await resp.read())
    err = await error_of(resp)
    assert err["code"] == code
    return err


async def token_for(
    http: aiohttp.ClientSession, challenge: str, auth: Mapping[str, str] | None = None
) -> str:
    """What a client does with a Bearer challenge: ask the realm for a token for its scope."""
    params = challenge_params(challenge)
    query = [("service", params["service"])]
    if "scope" in params:
        query.append(("scope", params["scope"]))
    async with http.get(params["realm"], params=query, headers=auth) as r:
        assert r.status == 200, await r.read()
        doc = await r.json()
    token = doc["token"]
    assert isinstance(token, str)
    return token


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


# --- ping, unknown routes ----------------------------------------------------------------------


async def test_ping_and_unknown_routes(base: str, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{base}/v2/") as r:
        assert r.status == 200
        assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert await r.json() == {}
    async with http.get(f"{base}/v2/repo/nonsense") as r:
        assert r.status == 404
        assert r.headers["Content-Type"].startswith("text/plain")
        assert await r.read() == NOT_FOUND_PAGE
    async with http.post(f"{base}/v2/repo/tags/list") as r:
        await expect_error(r, 405, "UNSUPPORTED")


# --- blobs ---------------------------------------------------------------------------------------


async def test_chunked_upload_then_fetch(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    data = b"0123456789" * 1000
    digest = digest_of(data)
    async with http.post(f"{base}/v2/team/app/blobs/uploads/") as r:
        assert r.status == 202
        location = r.headers["Location"]
        assert location.startswith(f"{base}/v2/team/app/blobs/uploads/") and "?_state=" in location
        assert r.headers["Range"] == "0-0" and r.headers["Docker-Upload-UUID"]
    async with http.patch(location, data=data[:4000]) as r:
        assert r.status == 202 and r.headers["Range"] == "0-3999"
        stale, location = location, r.headers["Location"]
    async with http.patch(URL(stale, encoded=True), data=data[4000:]) as r:
        await expect_error(r, 404, "BLOB_UPLOAD_INVALID")  # distribution checks _state
    headers = {"Content-Range": "4000-8999"}
    async with http.patch(URL(location, encoded=True), data=data[4000:9000], headers=headers) as r:
        assert r.status == 202
        location = r.headers["Location"]
    async with http.put(URL(f"{location}&digest={digest}", encoded=True), data=data[9000:]) as r:
        assert r.status == 201
        assert r.headers["Location"] == f"{base}/v2/team/app/blobs/{digest}"
        assert r.headers["Docker-Content-Digest"] == digest
    assert registry.repositories["team/app"].blobs[digest] == data and not registry.uploads
    async with http.get(f"{base}/v2/team/app/blobs/{digest}") as r:
        assert r.status == 200 and await r.read() == data
        assert r.headers["Docker-Content-Digest"] == digest
    async with http.head(f"{base}/v2/team/app/blobs/{digest}") as r:
        assert r.status == 200 and r.headers["Content-Length"] == str(len(data))
        assert await r.read() == b""


async def test_upload_with_wrong_digest_or_range(base: str, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{base}/v2/repo/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with http.patch(URL(location, encoded=True), data=b"abc", headers={"Content-Range": "5-7"}) as r:
        await expect_error(r, 416, "RANGE_INVALID")
    async with http.put(URL(f"{location}&digest={digest_of(b'other')}", encoded=True), data=b"abc") as r:
        await expect_error(r, 400, "DIGEST_INVALID")
    async with http.put(URL(f"{location}&digest={digest_of(b'abc')}", encoded=True), data=b"abc") as r:
        await expect_error(r, 404, "BLOB_UPLOAD_UNKNOWN")  # the failed PUT ended the session


async def test_monolithic_post_is_a_switch(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    data = b"single post"
    async with http.post(
        f"{base}/v2/repo/blobs/uploads/", params={"digest": digest_of(data)}, data=data
    ) as r:
        assert r.status == 202  # distribution 2.8 ignores the digest and opens a session
    assert "repo" not in registry.repositories
    registry.monolithic_post = True
    async with http.post(
        f"{base}/v2/repo/blobs/uploads/", params={"digest": digest_of(b"x")}, data=data
    ) as r:
        await expect_error(r, 400, "DIGEST_INVALID")
    async with http.post(
        f"{base}/v2/repo/blobs/uploads/", params={"digest": digest_of(data)}, data=data
    ) as r:
        assert r.status == 201 and r.headers["Docker-Content-Digest"] == digest_of(data)
    assert registry.repositories["repo"].blobs[digest_of(data)] == data


async def test_relative_location_without_state_check(http: aiohttp.ClientSession) -> None:
    registry = FakeRegistry.olareg()
    async with serve_registry(registry) as base:
        async with http.post(f"{base}/v2/repo/blobs/uploads/") as r:
            location = r.headers["Location"]
        assert location.startswith("/v2/repo/blobs/uploads/")
        upload = location.split("?")[0]  # no _state needed here
        async with http.put(f"{base}{upload}", params={"digest": digest_of(b"abc")}, data=b"abc") as r:
            assert r.status == 201 and r.headers["Location"] == f"/v2/repo/blobs/{digest_of(b'abc')}"


async def test_blob_errors(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    digest = registry.put_blob("repo", b"helper")
    assert digest == "sha256:" + hashlib.sha256(b"helper").hexdigest()
    async with http.get(f"{base}/v2/repo/blobs/{digest}") as r:
        assert await r.read() == b"helper"
    async with http.get(f"{base}/v2/repo/blobs/sha256:xyz") as r:
        await expect_error(r, 400, "DIGEST_INVALID")
    async with http.get(f"{base}/v2/repo/blobs/{digest_of(b'none')}") as r:
        await expect_error(r, 404, "BLOB_UNKNOWN")
    async with http.get(f"{base}/v2/nobody/blobs/{digest}") as r:
        await expect_error(r, 404, "BLOB_UNKNOWN")
    registry.name_unknown = True
    async with http.get(f"{base}/v2/nobody/blobs/{digest}") as r:
        await expect_error(r, 404, "NAME_UNKNOWN")


async def test_blob_redirect_records_authorization(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    digest = registry.put_blob("repo", b"stored elsewhere")
    registry.blob_redirect = True
    async with http.get(f"{base}/v2/repo/blobs/{digest}", allow_redirects=False) as r:
        assert r.status == 307
        location = r.headers["Location"]
    assert location == f"{base}/_blobstore/{digest}"
    async with http.get(location) as r:
        assert r.status == 200 and await r.read() == b"stored elsewhere"
    # aiohttp keeps a header set by hand on a same-origin redirect: the record shows it
    async with http.get(f"{base}/v2/repo/blobs/{digest}", headers={"Authorization": "Bearer x"}) as r:
        assert await r.read() == b"stored elsewhere"
    assert registry.blobstore_authorization == [None, "Bearer x"]
    registry.blobstore_rejects_authorization = True
    async with http.get(location, headers={"Authorization": "Bearer x"}) as r:
        assert r.status == 400


# --- manifests -------------------------------------------------------------------------------------


def image_manifest(registry: FakeRegistry, repo: str, push_blobs: bool = True) -> bytes:
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"layer bytes"
    if push_blobs:
        registry.put_blob(repo, config)
        registry.put_blob(repo, layer)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(config),
            "size": 37,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest_of(layer), "size": 11}
        ],
    }
    return json.dumps(doc, indent=3).encode()  # not compact: byte-exactness matters


async def test_manifest_push_and_fetch(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    body = image_manifest(registry, "team/app", push_blobs=False)
    put_headers = {"Content-Type": OCI_MANIFEST}
    async with http.put(f"{base}/v2/team/app/manifests/v1", data=body, headers=put_headers) as r:
        err = await expect_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
        assert err["detail"]["digest"].startswith("sha256:")
    body = image_manifest(registry, "team/app")
    digest = digest_of(body)
    async with http.put(f"{base}/v2/team/app/manifests/v1", data=body, headers=put_headers) as r:
        assert r.status == 201
        assert r.headers["Location"] == f"{base}/v2/team/app/manifests/{digest}"
        assert r.headers["Docker-Content-Digest"] == digest
        assert "OCI-Subject" not in r.headers
    for ref in ("v1", digest):
        async with http.get(f"{base}/v2/team/app/manifests/{ref}", headers=ACCEPT) as r:
            assert r.status == 200 and await r.read() == body
            assert r.headers["Content-Type"] == OCI_MANIFEST
            assert r.headers["Docker-Content-Digest"] == digest
            assert r.headers["Content-Length"] == str(len(body))
        async with http.head(f"{base}/v2/team/app/manifests/{ref}", headers=ACCEPT) as r:
            assert r.status == 200 and await r.read() == b""
            assert r.headers["Content-Length"] == str(len(body))
            assert (r.headers["Content-Type"], r.headers["Docker-Content-Digest"]) == (OCI_MANIFEST, digest)
    async with http.get(f"{base}/v2/team/app/tags/list") as r:
        assert await r.json() == {"name": "team/app", "tags": ["v1"]}


async def test_manifest_put_checks(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    body = image_manifest(registry, "repo")
    url = f"{base}/v2/repo/manifests"
    wrong = digest_of(b"something else")
    async with http.put(f"{url}/{wrong}", data=body, headers={"Content-Type": OCI_MANIFEST}) as r:
        await expect_error(r, 400, "DIGEST_INVALID")
    async with http.put(f"{url}/v1", data=body, skip_auto_headers=["Content-Type"]) as r:
        await expect_error(r, 400, "MANIFEST_INVALID")
    async with http.put(f"{url}/v1", data=body, headers={"Content-Type": OCI_INDEX}) as r:
        await expect_error(r, 400, "MANIFEST_INVALID")  # mediaType field disagrees
    async with http.put(f"{url}/v1", data=b"not json", headers={"Content-Type": OCI_MANIFEST}) as r:
        await expect_error(r, 400, "MANIFEST_INVALID")
    index = encode_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [registry_desc(wrong)]})
    async with http.put(f"{url}/multi", data=index, headers={"Content-Type": OCI_INDEX}) as r:
        err = await expect_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
        assert err["detail"] == {"digest": wrong}
    # ggcr: stored under the URL's digest; served later with a header naming the real one
    registry.verify_manifest_digest = False
    async with http.put(f"{url}/{wrong}", data=body, headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 201
    async with http.get(f"{url}/{wrong}", headers=ACCEPT) as r:
        assert await r.read() == body and digest_of(body) != wrong
        assert r.headers["Docker-Content-Digest"] == digest_of(body)


def registry_desc(digest: str) -> dict[str, Any]:
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": 10}


async def test_content_negotiation(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    amd = registry.put_image("repo", "amd")
    arm = registry.put_image("repo", platform="linux/arm64")
    registry.put_index("repo", [amd, arm], tag="multi")
    docker = registry.put_manifest("repo", b'{"schemaVersion":2}', DOCKER_MANIFEST, tag="docker")
    url = f"{base}/v2/repo/manifests"
    async with http.get(f"{url}/amd", skip_auto_headers=["Accept"]) as r:
        err = await expect_error(r, 404, "MANIFEST_UNKNOWN")
        assert "accept header does not support OCI manifests" in err["message"]
    async with http.get(f"{url}/multi", headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"}) as r:
        err = await expect_error(r, 404, "MANIFEST_UNKNOWN")
        assert "OCI index found" in err["message"]
    async with http.get(f"{url}/multi", headers=[("Accept", OCI_MANIFEST), ("Accept", OCI_INDEX)]) as r:
        assert r.status == 200 and r.headers["Content-Type"] == OCI_INDEX  # repeated headers count too
        index = await r.json(content_type=None)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    async with http.get(f"{url}/docker", skip_auto_headers=["Accept"]) as r:
        assert r.status == 200 and r.headers["Docker-Content-Digest"] == docker
    # a Docker manifest list fetched by tag without the list type: the linux/amd64 child instead
    amd_desc = {**registry.descriptor("repo", amd), "platform": {"architecture": "amd64", "os": "linux"}}
    doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": [amd_desc]}
    registry.put_json_manifest("repo", doc, tag="list")
    async with http.get(f"{url}/list", headers={"Accept": OCI_MANIFEST}) as r:
        assert r.status == 200 and r.headers["Docker-Content-Digest"] == amd
    registry.negotiate = False
    async with http.get(f"{url}/multi", skip_auto_headers=["Accept"]) as r:
        assert r.status == 200 and r.headers["Content-Type"] == OCI_INDEX


async def test_unknown_and_malformed_references(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    registry.put_image("repo", "v1")
    async with http.get(f"{base}/v2/repo/manifests/sha256:xyz", headers=ACCEPT) as r:
        await expect_error(r, 400, "DIGEST_INVALID")
    registry.malformed_digest_status = 500
    async with http.get(f"{base}/v2/repo/manifests/sha256:xyz", headers=ACCEPT) as r:
        err = await expect_error(r, 500, "UNKNOWN")  # distribution 2.8
        assert "_manifests/tags/sha256:xyz" in err["detail"]
    registry.malformed_digest_status = 404
    async with http.head(f"{base}/v2/repo/manifests/sha256:xyz", headers=ACCEPT) as r:
        assert r.status == 404
    for ref in ("v2", digest_of(b"nothing")):
        async with http.get(f"{base}/v2/repo/manifests/{ref}", headers=ACCEPT) as r:
            await expect_error(r, 404, "MANIFEST_UNKNOWN")
    async with http.get(f"{base}/v2/nobody/manifests/v1", headers=ACCEPT) as r:
        await expect_error(r, 404, "MANIFEST_UNKNOWN")
    registry.name_unknown = True
    async with http.get(f"{base}/v2/nobody/manifests/v1", headers=ACCEPT) as r:
        await expect_error(r, 404, "NAME_UNKNOWN")


async def test_delete_manifest(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    digest = registry.put_image("repo", "v1")
    async with http.delete(f"{base}/v2/repo/manifests/v1") as r:
        await expect_error(r, 405, "UNSUPPORTED")
    async with http.delete(f"{base}/v2/repo/manifests/{digest}") as r:
        assert r.status == 202
    assert registry.repositories["repo"].tags == {}
    async with http.delete(f"{base}/v2/repo/manifests/{digest}") as r:
        await expect_error(r, 404, "MANIFEST_UNKNOWN")


# --- subject and referrers -------------------------------------------------------------------


async def test_push_with_subject_answers_oci_subject(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    image = registry.put_image("repo", "v1")
    artifact = registry.put_artifact("repo", image)
    body = registry.repositories["repo"].manifests[artifact].data
    headers = {"Content-Type": OCI_MANIFEST}
    async with http.put(f"{base}/v2/repo/manifests/{artifact}", data=body, headers=headers) as r:
        assert r.status == 201 and r.headers["OCI-Subject"] == image
    for switch in ("oci_subject_header", "referrers_api"):
        setattr(registry, switch, False)
        async with http.put(f"{base}/v2/repo/manifests/{artifact}", data=body, headers=headers) as r:
            assert r.status == 201 and "OCI-Subject" not in r.headers


async def test_referrers_list(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    image = registry.put_image("repo", "v1")
    nfd = registry.put_artifact("repo", image, annotations={"x": "y"})
    sbom = registry.put_artifact(
        "repo", image, created=None, artifact_type=None, config_media_type=OTHER_TYPE
    )
    registry.put_artifact("repo", registry.put_image("repo", platform="linux/arm64"))  # another subject
    async with http.get(f"{base}/v2/repo/referrers/{image}") as r:
        assert r.status == 200 and r.headers["Content-Type"] == OCI_INDEX
        assert "OCI-Filters-Applied" not in r.headers and "Link" not in r.headers
        index = await r.json(content_type=None)
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {nfd, sbom}
    stored = registry.repositories["repo"].manifests[nfd].data
    assert by_digest[nfd] == {
        "mediaType": OCI_MANIFEST,
        "digest": nfd,
        "size": len(stored),
        "artifactType": NFD_ARTIFACT_TYPE,
        "annotations": {"x": "y", ANNOTATION_CREATED: "2024-01-01T00:00:00Z"},
    }
    assert by_digest[sbom]["artifactType"] == OTHER_TYPE and "annotations" not in by_digest[sbom]
    async with http.get(f"{base}/v2/repo/referrers/{digest_of(b'unknown')}") as r:
        assert r.status == 200 and (await r.json(content_type=None))["manifests"] == []
    async with http.get(f"{base}/v2/nobody/referrers/{image}") as r:
        assert r.status == 200 and (await r.json(content_type=None))["manifests"] == []
    for bad in ("sha256:xyz", "v1"):
        async with http.get(f"{base}/v2/repo/referrers/{bad}") as r:
            await expect_error(r, 400, "DIGEST_INVALID")
    registry.name_unknown = True
    async with http.get(f"{base}/v2/nobody/referrers/{image}") as r:
        await expect_error(r, 404, "NAME_UNKNOWN")


async def test_referrers_filter_and_ggcr_descriptors(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    image = registry.put_image("repo", "v1")
    nfd = registry.put_artifact("repo", image)
    registry.put_artifact("repo", image, artifact_type=OTHER_TYPE)
    url = f"{base}/v2/repo/referrers/{image}?artifactType=application%2Fvnd.nfd.image-compatibility.v1alpha1"
    async with http.get(URL(url, encoded=True)) as r:
        assert r.headers["OCI-Filters-Applied"] == "artifactType"
        assert [d["digest"] for d in (await r.json(content_type=None))["manifests"]] == [nfd]
    registry.filter_artifact_type = False
    async with http.get(URL(url, encoded=True)) as r:
        assert "OCI-Filters-Applied" not in r.headers
        assert len((await r.json(content_type=None))["manifests"]) == 2
    registry.wrong_artifact_type = True
    async with http.get(URL(url, encoded=True)) as r:
        descriptors = (await r.json(content_type=None))["manifests"]
    assert {d["artifactType"] for d in descriptors} == {OCI_EMPTY}
    assert not any("annotations" in d for d in descriptors)


async def test_referrers_pagination(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    image = registry.put_image("repo", "v1")
    made = {registry.put_artifact("repo", image, created=f"2024-01-0{i}T00:00:00Z") for i in range(1, 6)}
    registry.put_artifact("repo", image, artifact_type=OTHER_TYPE)
    registry.page_size = 2
    url: str | None = (
        f"/v2/repo/referrers/{image}?artifactType=application%2Fvnd.nfd.image-compatibility.v1alpha1"
    )
    seen: list[str] = []
    links: list[str] = []
    while url is not None:
        async with http.get(URL(base + url, encoded=True)) as r:
            assert r.status == 200
            page = (await r.json(content_type=None))["manifests"]
            assert 0 < len(page) <= 2
            seen += [d["digest"] for d in page]
            link = r.headers.get("Link")
        url = None
        if link is not None:
            target, rel = link.split(";", 1)
            assert rel.strip() == 'rel="next"' and target.startswith("</v2/repo/referrers/")
            url = target.strip("<>")
            links.append(url)
    assert seen == sorted(made) and len(links) == 2
    assert all("artifactType=application%2Fvnd.nfd.image-compatibility.v1alpha1" in u for u in links)
    async with http.get(f"{base}/v2/repo/referrers/{image}", params={"n": "1"}) as r:
        assert len((await r.json(content_type=None))["manifests"]) == 1 and "n=1" in r.headers["Link"]


async def test_no_referrers_api_and_tag_schema(http: aiohttp.ClientSession) -> None:
    registry = FakeRegistry.distribution_2_8(auth="bearer", anonymous_pull={"repo"})
    image = registry.put_image("repo", "v1")
    artifact = registry.put_artifact("repo", image)
    async with serve_registry(registry) as base:
        async with http.get(f"{base}/v2/repo/referrers/{image}") as r:
            assert r.status == 404 and await r.read() == NOT_FOUND_PAGE
            assert r.headers["Content-Type"].startswith("text/plain")
            assert "WWW-Authenticate" not in r.headers  # the route does not exist: no auth check
        tag_url = f"{base}/v2/repo/manifests/{referrers_tag(image)}"
        async with http.get(tag_url, headers=ACCEPT) as r:
            assert r.status == 401  # the tag schema read does challenge
            token = await token_for(http, r.headers["WWW-Authenticate"])
        async with http.get(tag_url, headers=bearer(token, **ACCEPT)) as r:
            await expect_error(r, 404, "MANIFEST_UNKNOWN")
        registry.write_referrers_tag("repo", image)
        async with http.get(tag_url, headers=bearer(token, **ACCEPT)) as r:
            assert r.status == 200 and r.headers["Content-Type"] == OCI_INDEX
            index = await r.json(content_type=None)
        assert [d["digest"] for d in index["manifests"]] == [artifact]
        assert index["manifests"][0]["artifactType"] == NFD_ARTIFACT_TYPE


async def test_referrers_content_type_override(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    image = registry.put_image("repo", "v1")
    registry.referrers_content_type = "application/json"
    async with http.get(f"{base}/v2/repo/referrers/{image}") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/json"


# --- auth --------------------------------------------------------------------------------------


async def test_basic_auth(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    registry.auth = "basic"
    registry.users = {"alice": "secret"}
    registry.put_image("repo", "v1")
    url = f"{base}/v2/repo/manifests/v1"
    async with http.get(url, headers=ACCEPT) as r:
        err = await expect_error(r, 401, "UNAUTHORIZED")
        assert r.headers["WWW-Authenticate"] == 'Basic realm="fake registry"'
        assert err["detail"] == [{"Type": "repository", "Class": "", "Name": "repo", "Action": "pull"}]
    async with http.get(url, headers={**ACCEPT, **basic("alice", "secret")}) as r:
        assert r.status == 200
    async with http.get(url, headers={**ACCEPT, **basic("alice", "wrong")}) as r:
        await expect_error(r, 401, "UNAUTHORIZED")
    async with http.get(f"{base}/v2/", headers=basic("alice", "wrong")) as r:
        assert r.status == 401
    assert [(q.route, q.auth_scheme) for q in registry.requests] == [
        ("manifests", None),
        ("manifests", "Basic"),
        ("manifests", "Basic"),
        ("ping", "Basic"),
    ]


async def test_bearer_anonymous_pull(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    registry.auth = "bearer"
    registry.anonymous_pull = {"public/app"}
    registry.put_image("public/app", "v1")
    url = f"{base}/v2/public/app/manifests/v1"
    async with http.get(url, headers=ACCEPT) as r:
        await expect_error(r, 401, "UNAUTHORIZED")
        challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert challenge_params(challenge) == {
        "realm": f"{base}/token",
        "service": "fake registry",
        "scope": "repository:public/app:pull",
    }
    async with http.get(
        f"{base}/token", params={"service": "fake registry", "scope": "repository:public/app:pull"}
    ) as r:
        doc = await r.json()
    assert set(doc) == {"token", "expires_in", "issued_at"} and doc["expires_in"] == 300
    assert doc["issued_at"].endswith("Z")
    async with http.get(url, headers=bearer(doc["token"], **ACCEPT)) as r:
        assert r.status == 200
    async with http.get(f"{base}/v2/", headers=bearer(doc["token"])) as r:
        assert r.status == 200  # any valid token will do for the ping
    assert registry.token_request_count == 1
    (req,) = registry.token_requests
    assert (req.user, req.scopes, req.granted) == (None, ("repository:public/app:pull",), req.scopes)
    async with http.get(f"{base}/v2/") as r:
        assert r.status == 401
        assert "scope=" not in r.headers["WWW-Authenticate"]


async def test_bearer_token_without_scope_is_challenged_again(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    registry.auth = "bearer"
    registry.put_image("private", "v1")
    url = f"{base}/v2/private/manifests/v1"
    async with http.get(url, headers=ACCEPT) as r:
        token = await token_for(http, r.headers["WWW-Authenticate"])  # issued, but grants nothing
    async with http.get(url, headers=bearer(token, **ACCEPT)) as r:
        await expect_error(r, 401, "UNAUTHORIZED")
        params = challenge_params(r.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_scope" and params["scope"] == "repository:private:pull"
    assert registry.token_requests[0].granted == ()


async def test_bearer_with_credentials_and_push_scope(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    registry.auth = "bearer"
    registry.users = {"bob": "pw"}
    registry.anonymous_pull = {"*"}
    upload = f"{base}/v2/repo/blobs/uploads/"
    async with http.post(upload) as r:
        assert r.status == 401
        challenge = r.headers["WWW-Authenticate"]
    assert challenge_params(challenge)["scope"] == "repository:repo:pull,push"
    anonymous = await token_for(http, challenge)
    async with http.post(upload, headers=bearer(anonymous)) as r:
        assert r.status == 401  # anonymous: pull only
        assert challenge_params(r.headers["WWW-Authenticate"])["error"] == "insufficient_scope"
    token = await token_for(http, challenge, basic("bob", "pw"))
    async with http.post(upload, headers=bearer(token)) as r:
        assert r.status == 202
    assert registry.tokens[token].user == "bob"
    # several scope parameters in one token request
    scopes = [("scope", "repository:a:pull"), ("scope", "repository:b:pull,push registry:catalog:*")]
    async with http.get(f"{base}/token", params=scopes, headers=basic("bob", "pw")) as r:
        assert r.status == 200
    assert registry.token_requests[-1].granted == ("repository:a:pull", "repository:b:pull,push")
    async with http.get(f"{base}/token", params=scopes, headers=basic("bob", "nope")) as r:
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
    registry.token_bad_credentials_status = 403
    async with http.get(f"{base}/token", params=scopes, headers=basic("bob", "nope")) as r:
        assert r.status == 403
    registry.token_requires_credentials = True
    async with http.get(f"{base}/token", params=scopes) as r:
        assert r.status == 401
    assert [q.status for q in registry.token_requests] == [200, 200, 200, 401, 403, 401]
    registry.denied = {"repo"}
    async with http.post(upload, headers=bearer(token)) as r:
        await expect_error(r, 403, "DENIED")


async def test_token_expiry_and_response_shape(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    now = [1000.0]
    registry.clock = lambda: now[0]
    registry.auth = "bearer"
    registry.anonymous_pull = {"repo"}
    registry.token_expires_in = 60
    registry.put_image("repo", "v1")
    url = f"{base}/v2/repo/manifests/v1"
    async with http.get(url, headers=ACCEPT) as r:
        challenge = r.headers["WWW-Authenticate"]
    token = await token_for(http, challenge)
    now[0] += 59
    async with http.get(url, headers=bearer(token, **ACCEPT)) as r:
        assert r.status == 200
    now[0] += 1
    async with http.get(url, headers=bearer(token, **ACCEPT)) as r:
        assert r.status == 401
        assert challenge_params(r.headers["WWW-Authenticate"])["error"] == "invalid_token"
    token = await token_for(http, challenge)
    registry.expire_tokens()
    async with http.get(url, headers=bearer(token, **ACCEPT)) as r:
        assert r.status == 401
    registry.token_field = "access_token"
    registry.token_expires_in = None
    params = challenge_params(challenge)
    async with http.get(params["realm"], params={"scope": params["scope"]}) as r:
        doc = await r.json()
    assert set(doc) == {"access_token", "issued_at"}
    async with http.get(params["realm"], params={"service": "other"}) as r:
        assert r.status == 400
    assert registry.token_request_count == 4


# --- faults --------------------------------------------------------------------------------------


async def test_fail_next(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    registry.fail_next(2)
    registry.fail_next(1, 429, retry_after=2, route="blobs")
    registry.fail_next(1, 503, retry_after="1", route="token")
    for _ in range(2):
        async with http.get(f"{base}/v2/") as r:
            await expect_error(r, 500, "UNKNOWN")
    async with http.get(f"{base}/v2/") as r:
        assert r.status == 200
    async with http.get(f"{base}/v2/repo/blobs/{digest_of(b'x')}") as r:
        await expect_error(r, 429, "TOOMANYREQUESTS")
        assert r.headers["Retry-After"] == "2"
    async with http.get(f"{base}/token") as r:
        await expect_error(r, 503, "UNAVAILABLE")
        assert r.headers["Retry-After"] == "1"
    assert registry.faults == []
    with pytest.raises(ValueError):
        registry.fail_next(route="nowhere")  # type: ignore[arg-type]


async def test_faults_wait_for_authentication(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    registry.auth = "bearer"
    registry.anonymous_pull = {"repo"}
    registry.put_image("repo", "v1")
    registry.fail_next()
    url = f"{base}/v2/repo/manifests/v1"
    async with http.get(url, headers=ACCEPT) as r:
        assert r.status == 401  # the challenge does not use up the fault...
        token = await token_for(http, r.headers["WWW-Authenticate"])  # ...nor does the token endpoint
    async with http.get(url, headers=bearer(token, **ACCEPT)) as r:
        await expect_error(r, 500, "UNKNOWN")


async def test_delay_next_makes_a_client_time_out(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    registry.delay_next(HELD)
    timeouts: list[asyncio.Timeout] = []

    async def get_with_timeout() -> None:
        async with asyncio.timeout(None) as timeout:  # the client's timeout, made to fire below
            timeouts.append(timeout)
            async with http.get(f"{base}/v2/") as r:
                await r.read()

    held = asyncio.create_task(get_with_timeout())
    await until(lambda: not registry.faults, "the request reaches the handler and takes the delay")
    assert not held.done()  # no answer while the delay lasts
    timeouts[0].reschedule(asyncio.get_running_loop().time())
    with pytest.raises(TimeoutError):
        await held
    async with http.get(f"{base}/v2/") as r:  # the delay was for one request: the next is answered
        assert r.status == 200


async def test_delayed_request_does_not_hold_up_teardown(http: aiohttp.ClientSession) -> None:
    registry = FakeRegistry()
    registry.delay_next(HELD)

    async def status(url: str) -> int:
        async with http.get(url) as r:
            await r.read()
            return r.status

    async with serve_registry(registry) as base:
        task = asyncio.create_task(status(f"{base}/v2/"))
        await until(lambda: not registry.faults, "the request reaches the handler and takes the delay")
    # the server stopping ends the delay: the request is answered (it would be cut by the shutdown
    # timeout if the delay went on, and the teardown would wait for that timeout)
    assert await finishes(task, "the delayed request ends") == 200


async def test_corrupt_next(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    image = registry.put_image("repo", "v1")
    blob = registry.put_blob("repo", b"version: v1alpha1\ncompatibilities: []\n")
    plain = registry.put_blob("repo", b"xyz")  # no hex digit to change: a byte flips
    registry.corrupt_next(3)
    async with http.get(f"{base}/v2/repo/manifests/{image}", headers=ACCEPT) as r:
        body = await r.read()
        assert r.headers["Docker-Content-Digest"] == image  # honest about the original
    assert digest_of(body) != image and len(body) == len(registry.repositories["repo"].manifests[image].data)
    json.loads(body)  # still JSON: only a verifying client notices
    async with http.get(f"{base}/v2/repo/blobs/{blob}") as r:
        assert digest_of(await r.read()) != blob and r.headers["Docker-Content-Digest"] == blob
    async with http.get(f"{base}/v2/repo/blobs/{plain}") as r:
        assert await r.read() == b"xxz"
    async with http.get(f"{base}/v2/repo/blobs/{blob}") as r:
        assert digest_of(await r.read()) == blob


async def test_truncate_next(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    blob = registry.put_blob("repo", bytes(range(256)) * 40)
    registry.truncate_next()
    async with http.get(f"{base}/v2/repo/blobs/{blob}") as r:
        assert r.status == 200 and r.headers["Content-Length"] == "10240"
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    async with http.get(f"{base}/v2/repo/blobs/{blob}") as r:
        assert digest_of(await r.read()) == blob


@pytest.mark.parametrize("declare_length", [True, False])
async def test_oversize_next(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession, declare_length: bool
) -> None:
    image = registry.put_image("repo", "v1")
    registry.oversize_next(64 * 1024 * 1024, route="manifests", declare_length=declare_length)
    limit = 4 * 1024 * 1024
    async with http.get(f"{base}/v2/repo/manifests/v1", headers=ACCEPT) as r:
        assert r.status == 200 and r.headers["Docker-Content-Digest"] == image
        assert r.headers.get("Content-Length") == (str(64 * 1024 * 1024) if declare_length else None)
        read = 0
        async for chunk in r.content.iter_chunked(64 * 1024):
            read += len(chunk)
            if read > limit:
                break  # what a client with a read limit does; the server must not mind
    assert read > limit
    async with http.get(f"{base}/v2/repo/manifests/v1", headers=ACCEPT) as r:
        assert digest_of(await r.read()) == image


async def test_lie_digest_next(registry: FakeRegistry, base: str, http: aiohttp.ClientSession) -> None:
    image = registry.put_image("repo", "v1")
    registry.lie_digest_next()
    registry.lie_digest_next(digest="sha256:" + "0" * 64, route="manifests")
    async with http.head(f"{base}/v2/repo/manifests/v1", headers=ACCEPT) as r:
        lied = r.headers["Docker-Content-Digest"]
    assert lied != image and lied.startswith("sha256:") and len(lied) == 71
    async with http.get(f"{base}/v2/repo/manifests/v1", headers=ACCEPT) as r:
        assert r.headers["Docker-Content-Digest"] == "sha256:" + "0" * 64
        assert digest_of(await r.read()) == image
    async with http.get(f"{base}/v2/repo/manifests/v1", headers=ACCEPT) as r:
        assert r.headers["Docker-Content-Digest"] == image


async def test_request_log_counts_round_trips(
    registry: FakeRegistry, base: str, http: aiohttp.ClientSession
) -> None:
    image = registry.put_image("repo", "v1")
    async with http.head(f"{base}/v2/repo/manifests/v1", headers=ACCEPT):
        pass
    async with http.get(f"{base}/v2/repo/referrers/{image}", params={"artifactType": "a/b+json"}):
        pass
    assert [(q.method, q.route) for q in registry.requests] == [("HEAD", "manifests"), ("GET", "referrers")]
    (referrers,) = registry.requests_to("referrers")
    assert referrers.path == f"/v2/repo/referrers/{image}"
    assert referrers.query == "artifactType=a/b%2Bjson"  # as aiohttp encodes it
    assert registry.requests[0].headers["Accept"] == MANIFEST_ACCEPT
    assert registry.requests_to(method="HEAD") == registry.requests[:1]
