"""A protocol-level stand-in for an OCI distribution registry (distribution-spec v1.1), to test our
registry client through real HTTP: the real error bodies (``{"errors": [{"code", "message",
"detail"}]}``), status codes and headers, with the behaviours observed on real registries run on
loopback (Debian's docker-registry 2.8, olareg, go-containerregistry's ``pkg/registry``) behind
switches; the presets below say which server does what.

* ``GET /v2/`` (the ping), ``GET|HEAD|PUT|DELETE /v2/<name>/manifests/<tag|digest>`` with
  distribution 2.8's content negotiation on ``Accept``, ``GET|HEAD /v2/<name>/blobs/<digest>``
  (optionally a 307 to ``/_blobstore/<digest>``, which wants no ``Authorization``), the upload
  protocol (``POST``/``PATCH``/``PUT`` on ``/v2/<name>/blobs/uploads/``, with a 2.8-like
  ``_state`` query), ``GET /v2/<name>/tags/list`` and ``GET /v2/<name>/referrers/<digest>``;
* auth: none, Basic (an htpasswd-like ``users`` dict) or Bearer with a token endpoint at
  ``/token`` (anonymous pulls per repository, credentials, scopes, expiry);
* faults on demand (``fail_next``, ``delay_next``, ``corrupt_next``, ``truncate_next``,
  ``oversize_next``, ``lie_digest_next``), and a log of every request.

State is plain attributes: tests put content with the helpers (``put_blob``, ``put_manifest``,
``put_image``, ``put_artifact``...), flip switches at any time and read ``requests``,
``token_requests``, ``repositories`` afterwards. :func:`serve_registry` runs it on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
NFD_ARTIFACT_TYPE = "application/vnd.nfd.image-compatibility.v1alpha1"
NFD_SPEC_MEDIA_TYPE = "application/vnd.nfd.image-compatibility.spec.v1alpha1+yaml"
ANNOTATION_CREATED = "org.opencontainers.image.created"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
#: What a well-behaved client sends as ``Accept`` for manifests (for tests of the stand-in).
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))
API_VERSION_HEADER = "Docker-Distribution-API-Version"
ERROR_CONTENT_TYPE = "application/json; charset=utf-8"
#: Go's ``http.NotFound``: what distribution answers on a route it does not have.
NOT_FOUND_PAGE = b"404 page not found\n"

#: The kinds of request, as logged and as the ``route`` filter of the faults.
Route = Literal["ping", "manifests", "blobs", "uploads", "referrers", "tags", "token", "blobstore", "other"]
ROUTES: frozenset[str] = frozenset(get_args(Route))
AuthMode = Literal["none", "basic", "bearer"]
TokenField = Literal["token", "access_token", "both"]

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_PATHS: tuple[tuple[Route, re.Pattern[str]], ...] = (
    ("ping", re.compile(r"/v2/?")),
    ("referrers", re.compile(rf"/v2/(?P<name>{_NAME})/referrers/(?P<ref>[^/]+)")),
    ("manifests", re.compile(rf"/v2/(?P<name>{_NAME})/manifests/(?P<ref>[^/]+)")),
    ("uploads", re.compile(rf"/v2/(?P<name>{_NAME})/blobs/uploads/(?P<ref>[^/]*)")),
    ("blobs", re.compile(rf"/v2/(?P<name>{_NAME})/blobs/(?P<ref>[^/]+)")),
    ("tags", re.compile(rf"/v2/(?P<name>{_NAME})/tags/list")),
    ("token", re.compile(r"/token")),
    ("blobstore", re.compile(r"/_blobstore/(?P<ref>[^/]+)")),
)
_METHODS: dict[Route, frozenset[str]] = {
    "ping": frozenset({"GET", "HEAD"}),
    "referrers": frozenset({"GET"}),
    "manifests": frozenset({"GET", "HEAD", "PUT", "DELETE"}),
    "uploads": frozenset({"POST", "GET", "PATCH", "PUT", "DELETE"}),
    "blobs": frozenset({"GET", "HEAD"}),
    "tags": frozenset({"GET"}),
    "token": frozenset({"GET"}),
    "blobstore": frozenset({"GET", "HEAD"}),
}
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
_HEX = "0123456789abcdef"
_ERROR_MESSAGES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DENIED": "requested access to the resource is denied",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "MANIFEST_BLOB_UNKNOWN": "blob unknown to registry",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "NAME_UNKNOWN": "repository name not known to registry",
    "RANGE_INVALID": "invalid content range",
    "TOOMANYREQUESTS": "too many requests",
    "UNAUTHORIZED": "authentication required",
    "UNAVAILABLE": "service unavailable",
    "UNKNOWN": "unknown error",
    "UNSUPPORTED": "The operation is unsupported.",
}
_STATUS_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def is_digest(ref: str) -> bool:
    """A digest this registry can compute: ``sha256:<64 hex>`` or ``sha512:<128 hex>``."""
    return _DIGEST.fullmatch(ref) is not None


def referrers_tag(digest: str) -> str:
    """The tag-schema tag of a subject: ``<alg>-<hex>``, the hex part cut to 64 characters."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}-{encoded[:64]}"


def encode_json(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def error_body(code: str, message: str | None = None, detail: object = None) -> bytes:
    return encode_json(
        {"errors": [{"code": code, "message": message or _ERROR_MESSAGES.get(code, code), "detail": detail}]}
    )


def error_response(
    status: int,
    code: str,
    message: str | None = None,
    detail: object = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    all_headers = {"Content-Type": ERROR_CONTENT_TYPE, **(headers or {})}
    return web.Response(status=status, body=error_body(code, message, detail), headers=all_headers)


def not_found_page() -> web.Response:
    return web.Response(
        status=404,
        body=NOT_FOUND_PAGE,
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


def _accepted(request: web.Request) -> frozenset[str]:
    """The media types named by every ``Accept`` header, split on commas, parameters dropped."""
    out: set[str] = set()
    for header in request.headers.getall("Accept", ()):
        for item in header.split(","):
            media_type = item.split(";", 1)[0].strip().lower()
            if media_type:
                out.add(media_type)
    return frozenset(out)


def _basic_credentials(value: str) -> tuple[str, str] | None:
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _descriptor_digests(items: object) -> list[str] | None:
    """The ``digest`` of each descriptor in a list, or None when it is not a list of descriptors."""
    if not isinstance(items, list):
        return None
    out: list[str] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), str):
            return None
        out.append(item["digest"])
    return out


def _corrupt(data: bytes) -> bytes:
    """The bytes with one character changed. A hex digit becomes another one, so JSON stays JSON
    (a digest in it changes); without hex digits the middle byte flips. Empty data becomes one byte."""
    if not data:
        return b"\x00"
    out = bytearray(data)
    middle = len(out) // 2
    for i in [*range(middle, len(out)), *range(middle)]:
        if out[i] < 128 and chr(out[i]) in _HEX:
            out[i] = ord(_HEX[(_HEX.index(chr(out[i])) + 1) % 16])
            return bytes(out)
    out[middle] ^= 0x01
    return bytes(out)


@dataclass
class StoredManifest:
    data: bytes
    media_type: str


@dataclass
class Repository:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, StoredManifest] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Upload:
    name: str
    id: str
    data: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: str  # the query string as sent, still percent-encoded
    route: Route
    auth_scheme: str | None  # the scheme of the Authorization header as sent ("Basic"), None without one
    headers: CIMultiDictProxy[str]


@dataclass
class IssuedToken:
    value: str
    user: str | None  # None: anonymous
    access: frozenset[tuple[str, str]]  # (repository, action)
    expires_at: float  # on the registry's clock


@dataclass(frozen=True)
class TokenRequest:
    service: str | None
    scopes: tuple[str, ...]  # as asked for, each scope parameter split on spaces
    user: str | None  # None: anonymous (or credentials refused)
    status: int
    granted: tuple[str, ...] = ()  # "repository:<name>:<actions>" actually granted


@dataclass
class Fault:
    kind: Literal["fail", "delay", "corrupt", "truncate", "oversize", "lie"]
    remaining: int
    route: Route | None
    status: int = 500
    code: str | None = None
    retry_after: str | None = None
    seconds: float = 0.0
    size: int = 0
    declare_length: bool = True
    digest: str | None = None


@dataclass(eq=False)
class FakeRegistry:
    """An in-memory registry. Every switch is an attribute and can be flipped during a test."""

    # -- referrers ----------------------------------------------------------------------------
    #: False: distribution 2.8/3.x, ``/v2/<name>/referrers/...`` does not exist (plain-text 404,
    #: never auth-checked) and manifest PUTs send no ``OCI-Subject``.
    referrers_api: bool = True
    #: Honour ``?artifactType=`` and say so with ``OCI-Filters-Applied`` (olareg); False ignores it (ggcr).
    filter_artifact_type: bool = True
    #: ggcr: descriptors carry ``config.mediaType`` as ``artifactType`` even when the manifest has
    #: one, and no annotations.
    wrong_artifact_type: bool = False
    #: Descriptors per referrers page (a ``Link: <...>; rel="next"`` header for the rest); None: one page.
    page_size: int | None = None
    #: The Content-Type of referrers answers; anything but the index type means "not supported" to oras-go.
    referrers_content_type: str = OCI_INDEX
    #: Answer a manifest PUT with a subject with ``OCI-Subject`` (only when ``referrers_api``).
    oci_subject_header: bool = True

    # -- manifests and blobs ------------------------------------------------------------------
    #: distribution's content negotiation on GET/HEAD: an OCI manifest (index) is 404 unless
    #: ``Accept`` names its type; a Docker manifest list fetched by tag without the list type is
    #: replaced by its linux/amd64 child. False: the stored manifest whatever ``Accept`` says.
    negotiate: bool = True
    #: Manifest GET/HEAD/DELETE with a malformed digest (``sha256:xyz``): 400 ``DIGEST_INVALID``;
    #: 500 ``UNKNOWN`` as distribution 2.8/3.1 (storage path in the detail); 404 ``MANIFEST_UNKNOWN``
    #: as olareg and ggcr.
    malformed_digest_status: Literal[400, 404, 500] = 400
    #: An unknown repository is 404 ``NAME_UNKNOWN`` (ggcr; also on the referrers route) instead of
    #: ``MANIFEST_UNKNOWN``/``BLOB_UNKNOWN`` (and an empty referrers list).
    name_unknown: bool = False
    #: A manifest PUT by digest must match its body (400 ``DIGEST_INVALID``). False: ggcr, stored
    #: under the digest of the URL.
    verify_manifest_digest: bool = True
    #: A manifest PUT whose config/layers (index: child manifests) are missing is 400
    #: ``MANIFEST_BLOB_UNKNOWN``. False: ggcr, accepted.
    check_blobs: bool = True
    #: ``POST .../blobs/uploads/?digest=`` with the body completes the upload (201, olareg and
    #: ggcr). False: distribution 2.8, the digest and body are ignored and a session opens (202).
    monolithic_post: bool = False
    #: Upload ``Location`` is a path (olareg) instead of an absolute URL (distribution).
    relative_locations: bool = False
    #: The upload URL's ``_state`` must be the latest one handed out (distribution: 404
    #: ``BLOB_UPLOAD_INVALID`` otherwise, so a client that drops the query fails).
    check_upload_state: bool = True
    #: Blob GET answers 307 to ``<blobstore_base>/_blobstore/<digest>``, which serves without auth.
    blob_redirect: bool = False
    #: Where the redirect points; None: this server. Its requests land in ``blobstore_authorization``.
    blobstore_base: str | None = None
    #: The blob store answers 400 when an Authorization header comes along (as S3 does for presigned URLs).
    blobstore_rejects_authorization: bool = False

    # -- auth -----------------------------------------------------------------------------------
    auth: AuthMode = "none"
    #: htpasswd-like user -> password: Basic auth on the registry, credentials at the token endpoint.
    users: dict[str, str] = field(default_factory=dict)
    #: Repositories an anonymous token may pull ("*": all). Credentials give pull and push anywhere.
    anonymous_pull: set[str] = field(default_factory=set)
    #: Repositories where even a valid token or password gets 403 ``DENIED``.
    denied: set[str] = field(default_factory=set)
    basic_realm: str = "fake registry"
    service: str = "fake registry"
    #: The Bearer challenge's realm; None: ``<this server>/token``.
    token_realm: str | None = None
    #: The token endpoint refuses anonymous requests (401 with a Basic challenge).
    token_requires_credentials: bool = False
    #: What the token endpoint answers for wrong credentials: 401 (Docker Hub) or 403 (olareg).
    token_bad_credentials_status: Literal[401, 403] = 401
    #: The name of the token in the token response; "both" sends ``token`` and ``access_token``.
    token_field: TokenField = "token"
    #: ``expires_in`` in the token response and the server-side lifetime; None: the field is left
    #: out and the token lives 60 s (the token spec's default).
    token_expires_in: int | None = 300
    #: The registry's clock for token expiry (monotonic seconds); tests may substitute their own.
    clock: Callable[[], float] = time.monotonic

    # -- state (inspect and drive from tests) ---------------------------------------------------
    repositories: dict[str, Repository] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    requests: list[LoggedRequest] = field(default_factory=list)
    token_requests: list[TokenRequest] = field(default_factory=list)
    #: The Authorization header (None when absent) of every request to the blob store.
    blobstore_authorization: list[str | None] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    app: web.Application = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._released: asyncio.Event | None = None
        self.app = web.Application(client_max_size=256 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.app.on_response_prepare.append(self._api_version_header)

    # -- presets (real registries as observed on loopback, one switch per difference) -----------

    @classmethod
    def distribution_2_8(cls, **overrides: Any) -> FakeRegistry:
        """No referrers API, 500 on a malformed manifest digest, session-only uploads."""
        return cls(**{"referrers_api": False, "malformed_digest_status": 500, **overrides})

    @classmethod
    def olareg(cls, **overrides: Any) -> FakeRegistry:
        """Referrers with filtering, lenient Accept, monolithic POST, relative upload Location."""
        settings: dict[str, Any] = {
            "negotiate": False,
            "malformed_digest_status": 404,
            "monolithic_post": True,
            "relative_locations": True,
            "check_upload_state": False,
            "service": "olareg registry",
            "token_bad_credentials_status": 403,
        }
        return cls(**{**settings, **overrides})

    @classmethod
    def ggcr(cls, **overrides: Any) -> FakeRegistry:
        """Referrers without filtering, config.mediaType as artifactType, no annotations, no
        OCI-Subject, NAME_UNKNOWN, manifests accepted under any digest and without their blobs."""
        settings: dict[str, Any] = {
            "filter_artifact_type": False,
            "wrong_artifact_type": True,
            "oci_subject_header": False,
            "negotiate": False,
            "malformed_digest_status": 404,
            "name_unknown": True,
            "verify_manifest_digest": False,
            "check_blobs": False,
            "monolithic_post": True,
            "check_upload_state": False,
        }
        return cls(**{**settings, **overrides})

    # -- content helpers ------------------------------------------------------------------------

    def repository(self, name: str) -> Repository:
        return self.repositories.setdefault(name, Repository())

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = digest_of(data)
        self.repository(repo).blobs[digest] = bytes(data)
        return digest

    def put_manifest(
        self,
        repo: str,
        data: bytes,
        media_type: str = OCI_MANIFEST,
        tag: str | None = None,
        *,
        digest: str | None = None,
    ) -> str:
        """Store ``data`` byte for byte (no checks) and return the digest it is stored under: its
        sha256, or ``digest`` when given (a registry that stored content under a wrong digest)."""
        key = digest or digest_of(data)
        r = self.repository(repo)
        r.manifests[key] = StoredManifest(bytes(data), media_type)
        if tag is not None:
            r.tags[tag] = key
        return key

    def put_json_manifest(
        self, repo: str, doc: Mapping[str, Any], media_type: str | None = None, tag: str | None = None
    ) -> str:
        media_type = media_type or str(doc.get("mediaType") or OCI_MANIFEST)
        return self.put_manifest(repo, encode_json(doc), media_type, tag)

    def descriptor(self, repo: str, digest: str) -> dict[str, Any]:
        """``{mediaType, digest, size}`` of a stored manifest (KeyError if there is none)."""
        stored = self.repositories[repo].manifests[digest]
        return {"mediaType": stored.media_type, "digest": digest, "size": len(stored.data)}

    def blob_descriptor(self, repo: str, data: bytes, media_type: str) -> dict[str, Any]:
        """Store a blob and return its descriptor."""
        return {"mediaType": media_type, "digest": self.put_blob(repo, data), "size": len(data)}

    def put_image(
        self, repo: str, tag: str | None = None, *, platform: str = "linux/amd64", layer: bytes = b"layer"
    ) -> str:
        """A minimal OCI image (config blob with the platform, one layer); its manifest digest."""
        os_name, _, arch = platform.partition("/")
        config = encode_json({"architecture": arch, "os": os_name, "rootfs": {"type": "layers"}})
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob_descriptor(repo, config, OCI_CONFIG),
            "layers": [self.blob_descriptor(repo, layer + platform.encode(), OCI_LAYER)],
        }
        return self.put_json_manifest(repo, doc, OCI_MANIFEST, tag)

    def put_index(self, repo: str, children: Sequence[str], tag: str | None = None) -> str:
        """An OCI index of stored manifests, with the platform read from each child's config."""
        manifests = []
        for child in children:
            d = self.descriptor(repo, child)
            doc = _json_object(self.repositories[repo].manifests[child].data) or {}
            config = doc.get("config")
            blob = (
                self.repositories[repo].blobs.get(config.get("digest", ""))
                if isinstance(config, dict)
                else None
            )
            platform = _json_object(blob) if blob is not None else None
            if platform is not None:
                d["platform"] = {"architecture": platform.get("architecture"), "os": platform.get("os")}
            manifests.append(d)
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return self.put_json_manifest(repo, doc, OCI_INDEX, tag)

    def put_artifact(
        self,
        repo: str,
        subject: str | Mapping[str, Any],
        spec: bytes = b"version: v1alpha1\ncompatibilities: []\n",
        *,
        created: str | None = "2024-01-01T00:00:00Z",
        artifact_type: str | None = NFD_ARTIFACT_TYPE,
        config_media_type: str = OCI_EMPTY,
        layer_media_type: str = NFD_SPEC_MEDIA_TYPE,
        annotations: Mapping[str, str] | None = None,
    ) -> str:
        """An NFD compatibility artifact as ``oras attach`` pushes it (empty config, one spec layer,
        ``subject``, ``artifactType``, the created annotation), untagged; its digest. ``subject`` is
        the digest of a stored manifest or a whole descriptor (which need not exist)."""
        subject_descriptor = dict(subject) if isinstance(subject, Mapping) else self.descriptor(repo, subject)
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
        if artifact_type is not None:
            doc["artifactType"] = artifact_type
        doc["config"] = self.blob_descriptor(repo, b"{}", config_media_type)  # the empty blob
        doc["layers"] = [self.blob_descriptor(repo, spec, layer_media_type)]
        doc["subject"] = subject_descriptor
        notes = dict(annotations or {})
        if created is not None:
            notes[ANNOTATION_CREATED] = created
        if notes:
            doc["annotations"] = notes
        return self.put_json_manifest(repo, doc, OCI_MANIFEST)

    def referrers(
        self, repo: str, subject: str, *, wrong_artifact_type: bool = False
    ) -> list[dict[str, Any]]:
        """Descriptors of the stored manifests whose ``subject.digest`` is ``subject``, by digest."""
        out: list[dict[str, Any]] = []
        r = self.repositories.get(repo)
        if r is None:
            return out
        for digest in sorted(r.manifests):
            stored = r.manifests[digest]
            doc = _json_object(stored.data)
            if doc is None:
                continue
            sub = doc.get("subject")
            if not isinstance(sub, dict) or sub.get("digest") != subject:
                continue
            d: dict[str, Any] = {"mediaType": stored.media_type, "digest": digest, "size": len(stored.data)}
            config = doc.get("config")
            config_type = config.get("mediaType") if isinstance(config, dict) else None
            own_type = doc.get("artifactType")
            artifact_type = config_type if wrong_artifact_type else (own_type or config_type)
            if isinstance(artifact_type, str) and artifact_type:
                d["artifactType"] = artifact_type
            notes = doc.get("annotations")
            if not wrong_artifact_type and isinstance(notes, dict) and notes:
                d["annotations"] = notes
            out.append(d)
        return out

    def write_referrers_tag(self, repo: str, subject: str) -> str:
        """Maintain the tag-schema fallback as a pusher would: an index of the referrers of
        ``subject`` under the tag ``sha256-<hex>``; its digest."""
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.referrers(repo, subject)}
        return self.put_manifest(repo, encode_json(index), OCI_INDEX, referrers_tag(subject))

    # -- observation ----------------------------------------------------------------------------

    def requests_to(self, route: Route | None = None, method: str | None = None) -> list[LoggedRequest]:
        return [r for r in self.requests if route in (None, r.route) and method in (None, r.method)]

    @property
    def token_request_count(self) -> int:
        return len(self.token_requests)

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (the next use gets ``invalid_token``)."""
        for token in self.tokens.values():
            token.expires_at = float("-inf")

    # -- faults -----------------------------------------------------------------------------------
    # fail/delay hit requests that reach their handler: after the registry's auth check (401
    # challenges never use them up), at once on the token endpoint and the blob store. The body
    # faults (corrupt, truncate, oversize) hit GET answers that carry a stored manifest or blob;
    # lie also HEAD. ``route`` limits a fault to one kind of request; without it a fault hits any
    # request but the token endpoint's, which only ``route="token"`` faults hit (so that "the next
    # request fails" does not land on the token fetch of a Bearer client).

    def _add(self, fault: Fault) -> None:
        if fault.route is not None and fault.route not in ROUTES:
            raise ValueError(f"unknown route {fault.route!r}; one of {sorted(ROUTES)}")
        if fault.remaining > 0:
            self.faults.append(fault)

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        route: Route | None = None,
        retry_after: int | str | None = None,
        code: str | None = None,
    ) -> None:
        """The next ``n`` requests answer ``status`` with a JSON error (``UNKNOWN``; 401
        ``UNAUTHORIZED``, 403 ``DENIED``, 429 ``TOOMANYREQUESTS``, 503 ``UNAVAILABLE``, or ``code``),
        with ``Retry-After`` when given."""
        self._add(
            Fault(
                "fail",
                n,
                route,
                status=status,
                code=code,
                retry_after=None if retry_after is None else str(retry_after),
            )
        )

    def delay_next(self, seconds: float, n: int = 1, *, route: Route | None = None) -> None:
        """The next ``n`` requests wait ``seconds`` before being handled (ended early when the
        server stops, so a long delay does not hold up the test's teardown)."""
        self._add(Fault("delay", n, route, seconds=seconds))

    def corrupt_next(self, n: int = 1, *, route: Route | None = None) -> None:
        """The next ``n`` manifest/blob bodies have one character changed; ``Docker-Content-Digest``
        and Content-Length stay those of the original."""
        self._add(Fault("corrupt", n, route))

    def truncate_next(self, n: int = 1, *, route: Route | None = None) -> None:
        """The next ``n`` manifest/blob answers declare the full Content-Length, send half the
        body and close the connection."""
        self._add(Fault("truncate", n, route))

    def oversize_next(
        self, size: int, n: int = 1, *, route: Route | None = None, declare_length: bool = True
    ) -> None:
        """The next ``n`` manifest/blob answers stream ``size`` zero bytes instead of the content,
        with that Content-Length (or chunked, without one, when ``declare_length`` is False)."""
        self._add(Fault("oversize", n, route, size=size, declare_length=declare_length))

    def lie_digest_next(self, n: int = 1, *, route: Route | None = None, digest: str | None = None) -> None:
        """The next ``n`` manifest/blob answers (GET or HEAD) carry a ``Docker-Content-Digest``
        that is not the content's: ``digest``, or a well-formed digest of other bytes."""
        self._add(Fault("lie", n, route, digest=digest))

    def clear_faults(self) -> None:
        self.faults.clear()

    def _take(self, kind: str, route: Route) -> Fault | None:
        for fault in self.faults:
            if fault.kind == kind and (fault.route == route or (fault.route is None and route != "token")):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def release(self) -> None:
        """End every pending delay now (the server is going away)."""
        if self._released is not None:
            self._released.set()

    async def _sleep(self, seconds: float) -> None:
        if self._released is None:
            self._released = asyncio.Event()
        if self._released.is_set():
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), seconds)

    async def _entry_faults(self, route: Route) -> web.Response | None:
        delay = self._take("delay", route)
        if delay is not None:
            await self._sleep(delay.seconds)
        fail = self._take("fail", route)
        if fail is None:
            return None
        code = fail.code or _STATUS_CODES.get(fail.status, "UNKNOWN")
        headers = {"Retry-After": fail.retry_after} if fail.retry_after is not None else None
        return error_response(fail.status, code, headers=headers)

    # -- the HTTP side ----------------------------------------------------------------------------

    @staticmethod
    async def _api_version_header(request: web.Request, response: web.StreamResponse) -> None:
        if request.path.startswith("/v2"):
            response.headers[API_VERSION_HEADER] = "registry/2.0"

    @staticmethod
    def _origin(request: web.Request) -> str:
        return str(request.url.origin())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route: Route = "other"
        match: re.Match[str] | None = None
        for kind, pattern in _PATHS:
            match = pattern.fullmatch(request.path)
            if match is not None:
                route = kind
                break
        authorization = request.headers.get("Authorization")
        self.requests.append(
            LoggedRequest(
                method=request.method,
                path=request.path,
                query=request.rel_url.raw_query_string,
                route=route,
                auth_scheme=authorization.split(" ", 1)[0] if authorization else None,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            )
        )
        if match is None or route == "other" or (route == "referrers" and not self.referrers_api):
            return not_found_page()  # distribution's router: never auth-checked
        if request.method not in _METHODS[route]:
            return error_response(405, "UNSUPPORTED")
        groups = match.groupdict()
        name, ref = groups.get("name") or "", groups.get("ref") or ""
        if route == "token":
            return await self._token(request)
        if route == "blobstore":
            return await self._blobstore(request, ref)
        push = request.method not in ("GET", "HEAD")
        refusal = self._authorize(request, route, name, ("pull", "push") if push else ("pull",))
        if refusal is not None:
            return refusal
        failure = await self._entry_faults(route)
        if failure is not None:
            return failure
        if route == "ping":
            return web.Response(body=b"{}", headers={"Content-Type": "application/json"})
        if route == "manifests":
            return await self._manifests(request, name, ref)
        if route == "blobs":
            return await self._blob(request, name, ref)
        if route == "uploads":
            return await self._uploads(request, name, ref)
        if route == "tags":
            return self._tags(name)
        return self._referrers(request, name, ref)

    # -- auth -------------------------------------------------------------------------------------

    def _challenge(self, request: web.Request, name: str, actions: Sequence[str], error: str = "") -> str:
        if self.auth == "basic":
            return f'Basic realm="{self.basic_realm}"'
        realm = self.token_realm or f"{self._origin(request)}/token"
        value = f'Bearer realm="{realm}",service="{self.service}"'
        if name:
            value += f',scope="repository:{name}:{",".join(actions)}"'
        if error:
            value += f',error="{error}"'
        return value

    def _unauthorized(
        self, request: web.Request, route: Route, name: str, actions: Sequence[str], error: str = ""
    ) -> web.Response:
        detail = (
            [{"Type": "repository", "Class": "", "Name": name, "Action": a} for a in actions]
            if name
            else None
        )
        challenge = self._challenge(request, name if route != "ping" else "", actions, error)
        return error_response(401, "UNAUTHORIZED", detail=detail, headers={"WWW-Authenticate": challenge})

    def _authorize(
        self, request: web.Request, route: Route, name: str, actions: Sequence[str]
    ) -> web.Response | None:
        if self.auth == "none":
            return None
        header = request.headers.get("Authorization", "")
        if self.auth == "basic":
            creds = _basic_credentials(header)
            if creds is None or self.users.get(creds[0]) != creds[1]:
                return self._unauthorized(request, route, name, actions)
        else:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer":
                return self._unauthorized(request, route, name, actions)
            token = self.tokens.get(value.strip())
            if token is None or token.expires_at <= self.clock():
                return self._unauthorized(request, route, name, actions, "invalid_token")
            if route != "ping" and not {(name, a) for a in actions} <= token.access:
                return self._unauthorized(request, route, name, actions, "insufficient_scope")
        if name in self.denied:
            detail = [{"Type": "repository", "Class": "", "Name": name, "Action": a} for a in actions]
            return error_response(403, "DENIED", detail=detail)
        return None

    def _anonymous_may_pull(self, name: str) -> bool:
        return "*" in self.anonymous_pull or name in self.anonymous_pull

    async def _token(self, request: web.Request) -> web.Response:
        failure = await self._entry_faults("token")
        service = request.query.get("service")
        scopes = tuple(s for value in request.query.getall("scope", ()) for s in value.split())
        if failure is not None:
            self.token_requests.append(TokenRequest(service, scopes, None, failure.status))
            return failure
        header = request.headers.get("Authorization")
        user: str | None = None
        if header:
            creds = _basic_credentials(header)
            if creds is None or self.users.get(creds[0]) != creds[1]:
                status = self.token_bad_credentials_status
                self.token_requests.append(TokenRequest(service, scopes, None, status))
                headers = {"Content-Type": "application/json"}
                if status == 401:
                    headers["WWW-Authenticate"] = f'Basic realm="{self.basic_realm}"'
                body = encode_json({"details": "incorrect username or password"})
                return web.Response(status=status, body=body, headers=headers)
            user = creds[0]
        elif self.token_requires_credentials:
            self.token_requests.append(TokenRequest(service, scopes, None, 401))
            return web.Response(
                status=401,
                body=encode_json({"details": "authentication required"}),
                headers={
                    "Content-Type": "application/json",
                    "WWW-Authenticate": f'Basic realm="{self.basic_realm}"',
                },
            )
        if service is not None and service != self.service:
            self.token_requests.append(TokenRequest(service, scopes, user, 400))
            body = encode_json({"details": f"unknown service {service!r}"})
            return web.Response(status=400, body=body, headers={"Content-Type": "application/json"})
        access: set[tuple[str, str]] = set()
        granted: list[str] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            if kind != "repository" or not repo:
                continue  # registry:catalog:*, olareg's registry::pull: nothing to grant here
            if user is not None:
                allowed = {"pull", "push"}
            else:
                allowed = {"pull"} if self._anonymous_may_pull(repo) else set()
            ok = [a for a in actions.split(",") if a in allowed]
            if ok:
                access.update((repo, a) for a in ok)
                granted.append(f"repository:{repo}:{','.join(ok)}")
        lifetime = self.token_expires_in if self.token_expires_in is not None else 60
        value = "fake." + secrets.token_urlsafe(24)
        self.tokens[value] = IssuedToken(value, user, frozenset(access), self.clock() + lifetime)
        self.token_requests.append(TokenRequest(service, scopes, user, 200, tuple(granted)))
        doc: dict[str, Any] = {}
        if self.token_field in ("token", "both"):
            doc["token"] = value
        if self.token_field in ("access_token", "both"):
            doc["access_token"] = value
        if self.token_expires_in is not None:
            doc["expires_in"] = self.token_expires_in
        doc["issued_at"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return web.Response(body=encode_json(doc), headers={"Content-Type": "application/json"})

    # -- manifests --------------------------------------------------------------------------------

    def _malformed_manifest_digest(self, name: str, ref: str) -> web.Response:
        if self.malformed_digest_status == 500:
            path = f"/var/lib/docker-registry/docker/registry/v2/repositories/{name}/_manifests/tags/{ref}"
            return error_response(500, "UNKNOWN", detail=f"filesystem: Path not found: {path}/current/link")
        if self.malformed_digest_status == 404:
            return error_response(404, "MANIFEST_UNKNOWN", detail={"Tag": ref})
        return error_response(400, "DIGEST_INVALID", detail="invalid digest format")

    def _unknown_repository(self, name: str, code: str, detail: object) -> web.Response:
        if self.name_unknown:
            return error_response(404, "NAME_UNKNOWN", detail={"Name": name})
        return error_response(404, code, detail=detail)

    async def _manifests(self, request: web.Request, name: str, ref: str) -> web.StreamResponse:
        by_digest = ":" in ref
        if by_digest and not is_digest(ref):
            if request.method == "PUT":
                return error_response(400, "DIGEST_INVALID", detail="invalid digest format")
            return self._malformed_manifest_digest(name, ref)
        if not by_digest and _TAG.fullmatch(ref) is None:
            return not_found_page()
        if request.method == "PUT":
            return await self._put_manifest(request, name, ref, by_digest)
        if request.method == "DELETE":
            return self._delete_manifest(name, ref, by_digest)
        return await self._get_manifest(request, name, ref, by_digest)

    async def _get_manifest(
        self, request: web.Request, name: str, ref: str, by_digest: bool
    ) -> web.StreamResponse:
        unknown = {"Name": name, "Revision" if by_digest else "Tag": ref}
        repo = self.repositories.get(name)
        if repo is None:
            return self._unknown_repository(name, "MANIFEST_UNKNOWN", unknown)
        digest = ref if by_digest else repo.tags.get(ref)
        stored = repo.manifests.get(digest) if digest is not None else None
        if digest is None or stored is None:
            return error_response(404, "MANIFEST_UNKNOWN", detail=unknown)
        if self.negotiate:
            accepted = _accepted(request)
            if stored.media_type == OCI_MANIFEST and OCI_MANIFEST not in accepted:
                message = "OCI manifest found, but accept header does not support OCI manifests"
                return error_response(404, "MANIFEST_UNKNOWN", message)
            if stored.media_type == OCI_INDEX and OCI_INDEX not in accepted:
                message = "OCI index found, but accept header does not support OCI indexes"
                return error_response(404, "MANIFEST_UNKNOWN", message)
            if (
                stored.media_type == DOCKER_MANIFEST_LIST
                and not by_digest
                and DOCKER_MANIFEST_LIST not in accepted
            ):
                child = self._default_platform_child(repo, stored)
                if child is None:
                    detail = f"manifest list {digest} has no manifest for the platform linux/amd64"
                    return error_response(404, "MANIFEST_UNKNOWN", detail=detail)
                digest, stored = child
        headers = {
            "Content-Type": stored.media_type,
            "Docker-Content-Digest": digest_of(stored.data),
            "Etag": f'"{digest}"',
        }
        return await self._send(request, "manifests", stored.data, headers)

    @staticmethod
    def _default_platform_child(
        repo: Repository, stored: StoredManifest
    ) -> tuple[str, StoredManifest] | None:
        doc = _json_object(stored.data) or {}
        for item in doc.get("manifests") or ():
            if not isinstance(item, dict):
                continue
            platform = item.get("platform")
            if isinstance(platform, dict) and (platform.get("os"), platform.get("architecture")) == (
                "linux",
                "amd64",
            ):
                child = repo.manifests.get(str(item.get("digest")))
                return None if child is None else (str(item.get("digest")), child)
        return None

    async def _put_manifest(self, request: web.Request, name: str, ref: str, by_digest: bool) -> web.Response:
        data = await request.read()
        media_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
        doc = _json_object(data)
        if doc is None or media_type not in (*MANIFEST_TYPES, *INDEX_TYPES):
            return error_response(
                400, "MANIFEST_INVALID", detail=f"cannot take a {media_type or 'typeless'} body"
            )
        if doc.get("mediaType") not in (None, media_type):
            detail = (
                f"if present, mediaType in manifest should be '{media_type}' not '{doc.get('mediaType')}'"
            )
            return error_response(400, "MANIFEST_INVALID", detail=detail)
        actual = digest_of(data, ref.partition(":")[0] if by_digest else "sha256")
        if by_digest and ref != actual and self.verify_manifest_digest:
            return error_response(
                400, "DIGEST_INVALID", detail=f"digest {ref} does not match the body ({actual})"
            )
        key = ref if by_digest else actual
        repo = self.repositories.get(name) or Repository()
        if self.check_blobs:
            if media_type in MANIFEST_TYPES:
                layers = doc.get("layers", [])
                references = _descriptor_digests(
                    [doc.get("config"), *layers] if isinstance(layers, list) else None
                )
                present: Mapping[str, object] = repo.blobs
            else:
                references = _descriptor_digests(doc.get("manifests"))
                present = repo.manifests
            if references is None:
                return error_response(400, "MANIFEST_INVALID", detail="malformed descriptors")
            for digest in references:
                if digest not in present:
                    return error_response(400, "MANIFEST_BLOB_UNKNOWN", detail={"digest": digest})
        self.put_manifest(name, data, media_type, None if by_digest else ref, digest=key)
        path = f"/v2/{name}/manifests/{key}"
        headers = {"Location": self._origin(request) + path, "Docker-Content-Digest": actual}
        subject = doc.get("subject")
        subject_digest = subject.get("digest") if isinstance(subject, dict) else None
        if self.referrers_api and self.oci_subject_header and isinstance(subject_digest, str):
            headers["OCI-Subject"] = subject_digest
        return web.Response(status=201, headers=headers)

    def _delete_manifest(self, name: str, ref: str, by_digest: bool) -> web.Response:
        if not by_digest:
            return error_response(405, "UNSUPPORTED")
        repo = self.repositories.get(name)
        if repo is None or repo.manifests.pop(ref, None) is None:
            return error_response(404, "MANIFEST_UNKNOWN", detail={"Name": name, "Revision": ref})
        for tag in [t for t, d in repo.tags.items() if d == ref]:
            del repo.tags[tag]
        return web.Response(status=202)

    def _tags(self, name: str) -> web.Response:
        repo = self.repositories.get(name)
        if repo is None:
            return error_response(404, "NAME_UNKNOWN", detail={"Name": name})
        body = encode_json({"name": name, "tags": sorted(repo.tags)})
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    # -- bodies -----------------------------------------------------------------------------------

    async def _send(
        self, request: web.Request, route: Route, data: bytes, headers: dict[str, str]
    ) -> web.StreamResponse:
        """A stored manifest or blob, with whatever body fault is pending for ``route``."""
        lie = self._take("lie", route)
        if lie is not None:
            headers = {**headers, "Docker-Content-Digest": lie.digest or digest_of(b"not the content" + data)}
        if request.method == "HEAD":
            return web.Response(body=data, headers=headers)  # aiohttp sends the length, not the body
        oversize = self._take("oversize", route)
        if oversize is not None:
            return await self._stream_zeros(request, headers, oversize)
        if self._take("truncate", route) is not None:
            resp = web.StreamResponse(headers=headers)
            resp.content_length = len(data)
            resp.force_close()
            await resp.prepare(request)
            with suppress(ConnectionError):
                await resp.write(data[: len(data) // 2])
            if request.transport is not None:
                request.transport.close()
            return resp
        if self._take("corrupt", route) is not None:
            data = _corrupt(data)
        return web.Response(body=data, headers=headers)

    @staticmethod
    async def _stream_zeros(
        request: web.Request, headers: dict[str, str], fault: Fault
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers=headers)
        if fault.declare_length:
            resp.content_length = fault.size
        await resp.prepare(request)
        chunk = bytes(256 * 1024)
        left = fault.size
        try:
            while left > 0:
                await resp.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
            await resp.write_eof()
        except ConnectionError:
            pass  # the client stopped reading: what a read limit does
        return resp

    # -- blobs ------------------------------------------------------------------------------------

    async def _blob(self, request: web.Request, name: str, ref: str) -> web.StreamResponse:
        if not is_digest(ref):
            return error_response(400, "DIGEST_INVALID", detail="invalid digest format")
        repo = self.repositories.get(name)
        if repo is None:
            return self._unknown_repository(name, "BLOB_UNKNOWN", {"digest": ref})
        data = repo.blobs.get(ref)
        if data is None:
            return error_response(404, "BLOB_UNKNOWN", detail={"digest": ref})
        if self.blob_redirect and request.method == "GET":
            location = f"{self.blobstore_base or self._origin(request)}/_blobstore/{ref}"
            return web.Response(status=307, headers={"Location": location, "Docker-Content-Digest": ref})
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest_of(data)}
        return await self._send(request, "blobs", data, headers)

    async def _blobstore(self, request: web.Request, ref: str) -> web.StreamResponse:
        authorization = request.headers.get("Authorization")
        self.blobstore_authorization.append(authorization)
        failure = await self._entry_faults("blobstore")
        if failure is not None:
            return failure
        if authorization is not None and self.blobstore_rejects_authorization:
            body = b"Only one auth mechanism allowed: this URL is presigned, drop the Authorization header\n"
            return web.Response(status=400, body=body, headers={"Content-Type": "text/plain"})
        data = next((r.blobs[ref] for r in self.repositories.values() if ref in r.blobs), None)
        if data is None:
            return web.Response(status=404, body=b"NoSuchKey\n", headers={"Content-Type": "text/plain"})
        return await self._send(request, "blobstore", data, {"Content-Type": "application/octet-stream"})

    # -- uploads ----------------------------------------------------------------------------------

    def _upload_location(self, request: web.Request, upload: Upload) -> str:
        state = {"name": upload.name, "uuid": upload.id, "offset": len(upload.data)}
        token = base64.urlsafe_b64encode(encode_json(state)).decode()
        path = f"/v2/{upload.name}/blobs/uploads/{upload.id}?_state={quote(token, safe='')}"
        return path if self.relative_locations else self._origin(request) + path

    def _upload_headers(self, request: web.Request, upload: Upload) -> dict[str, str]:
        return {
            "Location": self._upload_location(request, upload),
            "Range": f"0-{max(len(upload.data) - 1, 0)}",
            "Docker-Upload-UUID": upload.id,
        }

    def _state_ok(self, request: web.Request, upload: Upload) -> bool:
        if not self.check_upload_state:
            return True
        try:
            state = json.loads(base64.urlsafe_b64decode(request.query.get("_state", "")))
        except (ValueError, binascii.Error):
            return False
        return bool(state == {"name": upload.name, "uuid": upload.id, "offset": len(upload.data)})

    def _complete(self, request: web.Request, name: str, data: bytes) -> web.Response:
        digest = request.query.get("digest", "")
        if not is_digest(digest):
            return error_response(400, "DIGEST_INVALID", detail="invalid or missing digest parameter")
        actual = digest_of(data, digest.partition(":")[0])
        if actual != digest:
            return error_response(400, "DIGEST_INVALID", detail={"digest": digest})
        self.repository(name).blobs[digest] = data
        location = f"/v2/{name}/blobs/{digest}"
        if not self.relative_locations:
            location = self._origin(request) + location
        return web.Response(status=201, headers={"Location": location, "Docker-Content-Digest": digest})

    async def _uploads(self, request: web.Request, name: str, ref: str) -> web.Response:
        body = await request.read()
        if request.method == "POST":
            if ref:
                return error_response(405, "UNSUPPORTED")
            if self.monolithic_post and "digest" in request.query:
                return self._complete(request, name, body)
            upload = Upload(name, str(uuid.uuid4()))
            self.uploads[upload.id] = upload
            return web.Response(status=202, headers=self._upload_headers(request, upload))
        found = self.uploads.get(ref)
        if found is None or found.name != name:
            return error_response(404, "BLOB_UPLOAD_UNKNOWN", detail={"uuid": ref})
        upload = found
        if not self._state_ok(request, upload):
            return error_response(404, "BLOB_UPLOAD_INVALID", detail="stale or missing _state")
        if request.method == "GET":
            return web.Response(status=204, headers=self._upload_headers(request, upload))
        if request.method == "DELETE":
            del self.uploads[upload.id]
            return web.Response(status=204)
        content_range = request.headers.get("Content-Range")
        if content_range is not None:
            start, _, _end = content_range.partition("-")
            if not start.isdigit() or int(start) != len(upload.data):
                return error_response(416, "RANGE_INVALID", detail=f"upload is at {len(upload.data)}")
        upload.data.extend(body)
        if request.method == "PATCH":
            return web.Response(status=202, headers=self._upload_headers(request, upload))
        del self.uploads[upload.id]  # PUT: done, whether the digest matches or not (as distribution)
        return self._complete(request, name, bytes(upload.data))

    # -- referrers --------------------------------------------------------------------------------

    def _referrers(self, request: web.Request, name: str, ref: str) -> web.Response:
        if not is_digest(ref):
            return error_response(400, "DIGEST_INVALID", detail=f"{ref!r} is not a digest")
        if name not in self.repositories and self.name_unknown:
            return error_response(404, "NAME_UNKNOWN", detail={"Name": name})
        descriptors = self.referrers(name, ref, wrong_artifact_type=self.wrong_artifact_type)
        artifact_type = request.query.get("artifactType")
        headers = {"Content-Type": self.referrers_content_type}
        if artifact_type is not None and self.filter_artifact_type:
            descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
        limit = self.page_size
        asked = request.query.get("n", "")
        if asked.isdigit() and int(asked) > 0:
            limit = min(limit, int(asked)) if limit else int(asked)
        last = request.query.get("last")
        start = 0
        if last is not None:
            start = next((i for i, d in enumerate(descriptors) if d["digest"] > last), len(descriptors))
        end = len(descriptors) if limit is None else start + limit
        page = descriptors[start:end]
        if end < len(descriptors):
            params = {"artifactType": artifact_type} if artifact_type is not None else {}
            params.update({"n": str(limit), "last": page[-1]["digest"]})
            headers["Link"] = f'</v2/{name}/referrers/{ref}?{urlencode(params, quote_via=quote)}>; rel="next"'
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": page}
        return web.Response(body=encode_json(index), headers=headers)


@asynccontextmanager
async def serve_registry(registry: FakeRegistry, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``registry`` on ``host`` (loopback) at an ephemeral port; yields ``http://host:port``."""
    runner = web.AppRunner(registry.app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://{host}:{port}"
    finally:
        registry.release()
        await runner.cleanup()


def challenge_params(challenge: str) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate`` challenge built by this stand-in (quoted values,
    no commas inside them), for tests of the stand-in itself."""
    _, _, params = challenge.partition(" ")
    return {k.strip(): v for k, v in re.findall(r'([A-Za-z_]+)="([^"]*)"', params)}
