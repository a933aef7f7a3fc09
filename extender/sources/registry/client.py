"""An OCI distribution client for what the extender needs: manifests, referrers, blobs, and the few
pushes ``attach`` makes. Protocol logic only; bytes move through a :class:`Transport`.

Auth follows the registry's ``WWW-Authenticate`` challenge (Basic, or the Bearer token flow,
anonymous or with credentials), then stays pre-emptive: once a host has challenged, later requests
carry the answer up front (a cached token per scope, or the Basic header), so a warm client makes
one round trip per request. A request that is still refused after answering the challenge raises
:class:`~extender.sources.registry.auth.RegistryAuthError`; it is never retried in a loop.

Nothing here maps a failure to "no spec": 401/403/5xx, timeouts and unexpected statuses are
errors. Only a referrers answer listing nothing (or a tag-schema index that does not exist) means
"no referrers". Every manifest and blob fetched by digest is checked against that digest (and blobs
against their descriptor's size) on the exact bytes received.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urljoin, urlsplit

from extender.errors import (
    DigestMismatchError,
    ManifestError,
    RegistryAuthError,
    RegistryError,
    RegistryNotAllowedError,
    RegistryStatusError,
)
from extender.images import ImageRef
from extender.sources.registry.auth import (
    BearerToken,
    Challenge,
    Credentials,
    TokenCache,
    TokenKey,
    basic_authorization,
    choose_challenge,
    parse_challenges,
    parse_token_response,
    repository_scope,
    token_request_url,
)
from extender.sources.registry.manifests import (
    MANIFEST_ACCEPT_HEADER,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    Descriptor,
    ImageIndex,
    ImageManifest,
    decode_json,
    digest_of,
    filters_applied,
    parse_digest,
    parse_image_index,
    parse_manifest,
    referrers_tag,
    verify_descriptor,
    verify_digest,
)
from extender.sources.registry.transport import Response, Transport
from extender.spec.model import ARTIFACT_TYPE

log = logging.getLogger(__name__)

MAX_BLOB_BYTES = 1 << 20
MAX_REFERRER_PAGES = 64
MAX_REFERRERS = 10_000
MAX_REDIRECTS = 3
MAX_ERROR_BODY = 64 * 1024
API_SUPPORT_SECONDS = 3600.0  # how long "this repository has no referrers API" is remembered


def error_codes(response: Response) -> tuple[tuple[str, ...], str]:
    """The distribution-spec ``errors[].code`` values and a short message from an error body."""
    try:
        doc = json.loads(response.body[:MAX_ERROR_BODY].decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        text = response.body[:120].decode("utf-8", "replace").strip()
        return (), f" ({text})" if text else ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return (), ""
    codes = tuple(str(e.get("code")) for e in errors[:8] if isinstance(e, dict) and e.get("code"))
    messages = [str(e.get("message")) for e in errors[:3] if isinstance(e, dict) and e.get("message")]
    return codes, f" ({'; '.join(messages)[:200]})" if messages else ""


def status_error(response: Response, what: str) -> RegistryStatusError:
    codes, detail = error_codes(response)
    if response.status == 403:
        detail = f"{detail} (access denied)"
    return RegistryStatusError(
        what=what,
        method=response.method,
        url=response.url,
        status=response.status,
        codes=codes,
        detail=detail,
    )


_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")


def next_link(header: str | None) -> str | None:
    """The target of the ``rel="next"`` entry of a ``Link`` header (RFC 8288), or ``None``."""
    if not header:
        return None
    for m in _LINK.finditer(header):
        for param in m.group(2).split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                return m.group(1).strip()
    return None


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1`` (with or without a port)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Fetched:
    """A manifest or index as received: the exact bytes, their digest, and the parsed document."""

    digest: str
    media_type: str
    data: bytes
    document: ImageManifest | ImageIndex

    @property
    def is_index(self) -> bool:
        return isinstance(self.document, ImageIndex)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


@dataclass(frozen=True, slots=True)
class Referrers:
    """What a referrers listing gave: the descriptors (unfiltered unless ``filtered``), and how."""

    descriptors: tuple[Descriptor, ...]
    via: Literal["api", "tag-schema"]
    filtered: bool  # the registry applied the artifactType filter (OCI-Filters-Applied)
    pages: int


CredentialLookup = Callable[[str], Credentials | None]


def no_credentials(registry: str) -> Credentials | None:
    return None


class RegistryClient:
    """One client for every registry. Keeps per-host auth state, a token cache and, per repository,
    whether the referrers API exists (404 from it switches to the tag schema for an hour)."""

    def __init__(
        self,
        transport: Transport,
        *,
        credentials: CredentialLookup = no_credentials,
        allow: frozenset[str] | None = None,
        plain_http: frozenset[str] = frozenset(),
        tls_hosts: frozenset[str] = frozenset(),
        max_manifest_bytes: int = MAX_MANIFEST_BYTES,
        max_blob_bytes: int = MAX_BLOB_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.credentials = credentials
        self.allow = frozenset(h.lower() for h in allow) if allow else None
        self.plain_http = frozenset(h.lower() for h in plain_http)
        self.tls_hosts = frozenset(h.lower() for h in tls_hosts)
        self.max_manifest_bytes = max_manifest_bytes
        self.max_blob_bytes = max_blob_bytes
        self.clock = clock
        self.tokens = TokenCache()
        self._challenges: dict[str, Challenge] = {}  # api host -> the last challenge it sent
        self._token_fetches: dict[TokenKey, asyncio.Future[BearerToken]] = {}
        self._no_referrers_api: dict[tuple[str, str], float] = {}  # (host, repo) -> until

    # -- addressing ------------------------------------------------------------------------------

    def check_allowed(self, ref: ImageRef) -> None:
        hosts = {ref.registry.lower(), ref.api_host.lower()}
        if self.allow is not None and not hosts & self.allow:
            raise RegistryNotAllowedError(
                f"registry {ref.registry} is not in registry.allow ({', '.join(sorted(self.allow))})"
            )

    def base_url(self, ref: ImageRef) -> str:
        host = ref.api_host.lower()
        # loopback registries are plain HTTP unless a CA was configured for them (registry.caFiles)
        plain = host in self.plain_http or (is_loopback(host) and host not in self.tls_hosts)
        return f"{'http' if plain else 'https'}://{host}"

    def _repo_path(self, ref: ImageRef, kind: str, reference: str) -> str:
        return f"/v2/{ref.repository}/{kind}/{reference}"

    # -- auth ------------------------------------------------------------------------------------

    def _scope(self, ref: ImageRef, push: bool) -> str:
        return repository_scope(ref.repository, push)

    async def _token(self, ref: ImageRef, challenge: Challenge, scopes: tuple[str, ...]) -> BearerToken:
        realm = challenge.realm or ""
        key = TokenCache.key(realm, challenge.service, scopes)
        cached = self.tokens.get(key, self.clock())
        if cached is not None:
            return cached
        running = self._token_fetches.get(key)
        if running is None:
            running = asyncio.ensure_future(self._fetch_token(ref, challenge, scopes, key))
            self._token_fetches[key] = running
            running.add_done_callback(lambda _: self._token_fetches.pop(key, None))
        return await asyncio.shield(running)

    async def _fetch_token(
        self, ref: ImageRef, challenge: Challenge, scopes: tuple[str, ...], key: TokenKey
    ) -> BearerToken:
        url = token_request_url(challenge, scopes)
        headers = {"Accept": "application/json"}
        creds = self.credentials(ref.registry)
        if creds is not None and creds.username and not creds.identity_token:
            headers["Authorization"] = basic_authorization(creds.username, creds.password)
        resp = await self.transport.request("GET", url, headers=headers, limit=MAX_ERROR_BODY)
        if resp.status in (401, 403):
            who = f"as {creds.username!r}" if "Authorization" in headers and creds else "anonymously"
            raise RegistryAuthError(
                f"token endpoint {url.split('?', 1)[0]} refused a token {who} for {' '.join(scopes)}: "
                f"{resp.status}"
            )
        if resp.status != 200:
            raise status_error(resp, "token request")
        token = parse_token_response(resp.body, now=self.clock())
        self.tokens.put(key, token, self.clock())
        return token

    async def _authorization(self, ref: ImageRef, push: bool) -> str | None:
        """The header to send up front, when this host has challenged before."""
        challenge = self._challenges.get(ref.api_host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self.credentials(ref.registry)
            return basic_authorization(creds.username, creds.password) if creds else None
        token = await self._token(ref, challenge, (self._scope(ref, push),))
        return f"Bearer {token.token}"

    async def _answer(self, ref: ImageRef, response: Response, push: bool, sent: str | None) -> str:
        """The ``Authorization`` value answering a 401, or RegistryAuthError."""
        header = ", ".join(response.headers.getall("WWW-Authenticate", []))
        challenge = choose_challenge(parse_challenges(header)) if header else None
        if challenge is None:
            raise RegistryAuthError(
                f"{response.method} {response.url}: 401 without a Basic or Bearer challenge"
            )
        self._challenges[ref.api_host] = challenge
        if challenge.scheme == "basic":
            creds = self.credentials(ref.registry)
            if creds is None or not creds.username:
                raise RegistryAuthError(
                    f"{ref.registry}: authentication required (Basic) and no credentials for it "
                    "(registry.dockerConfig)"
                )
            value = basic_authorization(creds.username, creds.password)
            if value == sent:
                raise RegistryAuthError(f"{ref.registry}: credentials for {creds.username!r} rejected (401)")
            return value
        scopes = challenge.scopes or (self._scope(ref, push),)
        key = TokenCache.key(challenge.realm or "", challenge.service, scopes)
        cached = self.tokens.get(key, self.clock())
        if cached is not None and sent == f"Bearer {cached.token}":
            self.tokens.invalidate(key)  # refused although fresh: get a new one once
        token = await self._token(ref, challenge, scopes)
        return f"Bearer {token.token}"

    # -- requests --------------------------------------------------------------------------------

    async def send(
        self,
        ref: ImageRef,
        method: str,
        path: str,
        *,
        accept: str | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        limit: int = MAX_ERROR_BODY,
        push: bool = False,
        follow_redirects: bool = False,
    ) -> Response:
        """One request to ``ref``'s registry with auth handled: a 401 is answered once from its
        challenge and the request resent; a second 401 is RegistryAuthError. ``path`` may be a
        full URL on the same host (pagination links, upload locations)."""
        self.check_allowed(ref)
        base = self.base_url(ref)
        url = urljoin(base + "/", path)
        if urlsplit(url).netloc.lower() != urlsplit(base).netloc.lower():
            raise RegistryError(f"{method} {path}: refusing to send credentials to another host than {base}")
        headers: dict[str, str] = {}
        if accept:
            headers["Accept"] = accept
        if content_type:
            headers["Content-Type"] = content_type
        sent = await self._authorization(ref, push)
        for attempt in (1, 2):
            if sent:
                headers["Authorization"] = sent
            resp = await self.transport.request(method, url, headers=headers, body=body, limit=limit)
            if resp.status != 401:
                break
            if attempt == 2:
                challenge = self._challenges.get(ref.api_host)
                if challenge is not None and challenge.scheme == "basic":
                    raise RegistryAuthError(f"{method} {url}: 401: the registry rejected the credentials")
                raise RegistryAuthError(
                    f"{method} {url}: still 401 after authenticating: the credentials or token do not "
                    f"grant {self._scope(ref, push).rsplit(':', 1)[1]} on {ref.repository}"
                )
            sent = await self._answer(ref, resp, push, sent)
        if follow_redirects:
            hops = 0
            while resp.status in (301, 302, 303, 307, 308) and hops < MAX_REDIRECTS:
                location = resp.header("Location")
                if not location:
                    break
                hops += 1
                # blob storage (S3, a CDN) gets no registry credentials
                target = urljoin(resp.url, location)
                plain = {k: v for k, v in headers.items() if k != "Authorization"}
                resp = await self.transport.request("GET", target, headers=plain, limit=limit)
        return resp

    # -- manifests -------------------------------------------------------------------------------

    async def manifest(
        self, ref: ImageRef, reference: str | None = None, *, what: str = "manifest"
    ) -> Fetched:
        """GET a manifest or index by tag or digest (``ref.reference`` by default) with the full
        Accept list. By digest, the bytes must hash to it; by tag, the bytes' digest is the truth
        and a ``Docker-Content-Digest`` that disagrees is an error."""
        fetched = await self._get_manifest(ref, reference or ref.reference, what=what)
        assert fetched is not None  # only missing_ok answers None
        return fetched

    async def optional_manifest(self, ref: ImageRef, reference: str) -> Fetched | None:
        """A manifest, or ``None`` on 404 (for read-modify-write of the tag-schema index)."""
        return await self._get_manifest(ref, reference, what="manifest", push=True, missing_ok=True)

    async def _get_manifest(
        self, ref: ImageRef, reference: str, *, what: str, push: bool = False, missing_ok: bool = False
    ) -> Fetched | None:
        by_digest = ":" in reference
        if by_digest:
            parse_digest(reference, "reference")
        resp = await self.send(
            ref,
            "GET",
            self._repo_path(ref, "manifests", reference),
            accept=MANIFEST_ACCEPT_HEADER,
            limit=self.max_manifest_bytes,
            push=push,
        )
        if resp.status == 404 and missing_ok:
            return None
        if resp.status != 200:
            raise status_error(resp, f"{what} {ref.name}:{reference}")
        return self._fetched(resp, reference if by_digest else None)

    def _fetched(self, resp: Response, expected: str | None) -> Fetched:
        header_digest = resp.header("Docker-Content-Digest")
        if expected is not None:
            verify_digest(resp.body, expected)
            digest = expected
        else:
            algorithm = header_digest.split(":", 1)[0] if header_digest and ":" in header_digest else "sha256"
            digest = digest_of(resp.body, algorithm if algorithm in ("sha256", "sha512") else "sha256")
            if header_digest and header_digest != digest:
                raise DigestMismatchError(
                    "Docker-Content-Digest",
                    f"{resp.url}: header says {header_digest}, the bytes received are {digest}",
                )
        document = parse_manifest(resp.body, resp.media_type or None)
        media_type = document.media_type or resp.media_type
        return Fetched(digest, media_type, resp.body, document)

    # -- referrers -------------------------------------------------------------------------------

    def referrers_api_known_missing(self, ref: ImageRef) -> bool:
        until = self._no_referrers_api.get((ref.api_host, ref.repository))
        return until is not None and until > self.clock()

    async def referrers(self, ref: ImageRef, digest: str, artifact_type: str = ARTIFACT_TYPE) -> Referrers:
        """Referrers of ``digest``: the referrers API (``artifactType`` filter asked for, ``Link``
        pages followed), or the ``<alg>-<hex>`` tag-schema index where the API is missing (404
        that is not ``NAME_UNKNOWN``, or an answer that is not an OCI index)."""
        parse_digest(digest, "subject digest")
        if self.referrers_api_known_missing(ref):
            return await self._tag_schema(ref, digest)
        path: str | None = (
            f"{self._repo_path(ref, 'referrers', digest)}?artifactType={quote(artifact_type, safe='')}"
        )
        found: list[Descriptor] = []
        filtered = True
        pages = 0
        while path is not None:
            resp = await self.send(ref, "GET", path, accept=OCI_INDEX, limit=self.max_manifest_bytes)
            unsupported = (resp.status == 404 and "NAME_UNKNOWN" not in error_codes(resp)[0]) or (
                resp.status == 200 and resp.media_type != OCI_INDEX
            )
            if unsupported and pages == 0:
                self._no_referrers_api[(ref.api_host, ref.repository)] = self.clock() + API_SUPPORT_SECONDS
                log.debug("%s: no referrers API (%s), using the tag schema", ref.name, resp.status)
                return await self._tag_schema(ref, digest)
            if resp.status != 200 or unsupported:
                raise status_error(resp, f"referrers of {ref.name}@{digest}")
            try:
                index = parse_image_index(decode_json(resp.body, "referrers", self.max_manifest_bytes))
            except ManifestError as exc:
                raise ManifestError(exc.path, f"referrers of {ref.name}@{digest}: {exc.message}") from None
            pages += 1
            filtered = filtered and "artifactType" in filters_applied(resp.header("OCI-Filters-Applied"))
            found.extend(index.manifests)
            if len(found) > MAX_REFERRERS or pages > MAX_REFERRER_PAGES:
                raise RegistryError(
                    f"referrers of {ref.name}@{digest}: over {MAX_REFERRERS} referrers or "
                    f"{MAX_REFERRER_PAGES} pages"
                )
            link = next_link(resp.header("Link"))
            path = urljoin(resp.url, link) if link else None
        return Referrers(tuple(found), "api", filtered, pages)

    async def _tag_schema(self, ref: ImageRef, digest: str) -> Referrers:
        tag = referrers_tag(digest)
        fetched = await self._get_manifest(ref, tag, what="referrers index", missing_ok=True)
        if fetched is None or not isinstance(fetched.document, ImageIndex):
            return Referrers((), "tag-schema", False, 1)  # none, or a tag of that name that is no index
        return Referrers(fetched.document.manifests, "tag-schema", False, 1)

    # -- blobs -----------------------------------------------------------------------------------

    async def blob(self, ref: ImageRef, descriptor: Descriptor, *, limit: int | None = None) -> bytes:
        """GET a blob (redirects followed without credentials), checked against the descriptor's
        size and digest. A descriptor over ``limit`` is refused before any request."""
        limit = self.max_blob_bytes if limit is None else limit
        if descriptor.size > limit:
            raise RegistryError(
                f"blob {descriptor.digest} of {ref.name}: {descriptor.size} bytes, "
                f"over the {limit}-byte limit"
            )
        parse_digest(descriptor.digest, "blob digest")
        resp = await self.send(
            ref,
            "GET",
            self._repo_path(ref, "blobs", descriptor.digest),
            limit=limit,
            follow_redirects=True,
        )
        if resp.status != 200:
            raise status_error(resp, f"blob {descriptor.digest} of {ref.name}")
        verify_descriptor(resp.body, descriptor)
        return resp.body

    # -- pushing (attach) ------------------------------------------------------------------------

    async def blob_exists(self, ref: ImageRef, digest: str, *, push: bool = False) -> bool:
        resp = await self.send(ref, "HEAD", self._repo_path(ref, "blobs", digest), push=push)
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise status_error(resp, f"blob {digest} of {ref.name}")

    async def push_blob(self, ref: ImageRef, data: bytes, media_type: str) -> Descriptor:
        """Upload ``data`` (POST a session, then PUT it whole with its digest) unless it is there."""
        descriptor = Descriptor(media_type, digest_of(data), len(data))
        if await self.blob_exists(ref, descriptor.digest, push=True):
            return descriptor
        resp = await self.send(ref, "POST", f"/v2/{ref.repository}/blobs/uploads/", push=True, body=b"")
        if resp.status not in (201, 202):
            raise status_error(resp, f"blob upload to {ref.name}")
        if resp.status == 201:  # a registry that took the (empty) POST as the whole upload
            raise RegistryError(f"blob upload to {ref.name}: 201 to an empty POST")
        location = resp.header("Location")
        if not location:
            raise RegistryError(f"blob upload to {ref.name}: 202 without a Location")
        target = urljoin(resp.url, location)
        target += ("&" if urlsplit(target).query else "?") + f"digest={quote(descriptor.digest, safe='')}"
        resp = await self.send(
            ref, "PUT", target, push=True, body=data, content_type="application/octet-stream"
        )
        if resp.status != 201:
            raise status_error(resp, f"blob upload to {ref.name}")
        return descriptor

    async def push_manifest(self, ref: ImageRef, data: bytes, media_type: str, reference: str) -> Response:
        """PUT a manifest (or index) under a tag or its digest; returns the 201 response (its
        ``OCI-Subject`` header says whether the registry indexed the subject itself)."""
        resp = await self.send(
            ref,
            "PUT",
            self._repo_path(ref, "manifests", reference),
            push=True,
            body=data,
            content_type=media_type,
        )
        if resp.status != 201:
            raise status_error(resp, f"manifest push to {ref.name}:{reference}")
        return resp
