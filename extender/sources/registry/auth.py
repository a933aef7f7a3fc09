"""Registry authentication, the pure parts: no I/O, no clock (callers pass ``now``).

* ``WWW-Authenticate`` challenges (RFC 7235 syntax): :func:`parse_challenges`, :func:`choose_challenge`.
* Basic: :func:`basic_authorization`.
* Bearer (the distribution token protocol): :func:`token_request_url`, :func:`repository_scope`,
  :func:`parse_token_response`, :class:`TokenCache`.
* Static credentials from a Docker ``config.json`` / Kubernetes ``.dockerconfigjson`` / legacy
  ``.dockercfg`` document: :func:`docker_config_credentials`.

Secrets (passwords, tokens) are kept out of ``repr`` so they do not end up in logs.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, urlsplit

from extender.errors import RegistryAuthError
from extender.images import DOCKER_HUB, DOCKER_HUB_API
from extender.sources.registry.manifests import parse_rfc3339

#: A header value longer than this is refused rather than parsed.
MAX_HEADER = 8192
#: The distribution token spec: ``expires_in`` defaults to 60 s, and no token lives less than that.
DEFAULT_TOKEN_LIFETIME = 60.0
MIN_TOKEN_LIFETIME = 60.0
#: A server-announced lifetime above this is clamped (a revoked token is re-challenged anyway).
MAX_TOKEN_LIFETIME = 24 * 3600.0
#: The legacy key ``docker login`` writes for Docker Hub.
DOCKER_HUB_LEGACY_KEY = "https://index.docker.io/v1/"
_HUB_HOSTS = frozenset({DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"})


# ---------------------------------------------------------------------------------------------------
# WWW-Authenticate


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge. ``scheme`` and parameter names are lower-cased (both are case-insensitive);
    values are kept as sent, unquoted. ``token68`` is the rare non-parameter form (``Negotiate x==``)."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    token68: str = ""

    def get(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.params if k == name), None)

    @property
    def realm(self) -> str | None:
        return self.get("realm")

    @property
    def service(self) -> str | None:
        return self.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The ``scope`` parameter split on spaces (a token server may ask for several)."""
        return tuple((self.get("scope") or "").split())


_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN = re.compile(rf"{_TCHARS}+")
_PARAM_NAME = re.compile(rf"({_TCHARS}+)[ \t]*=[ \t]*")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|\Z))")


def _skip(s: str, i: int, chars: str) -> int:
    while i < len(s) and s[i] in chars:
        i += 1
    return i


def _quoted(s: str, i: int) -> tuple[str, int]:
    """The quoted-string starting at ``s[i] == '"'``: its unescaped value and the index after it."""
    out: list[str] = []
    i += 1
    while i < len(s):
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= len(s):
                break
            c = s[i + 1]
            i += 1
        out.append(c)
        i += 1
    raise RegistryAuthError("WWW-Authenticate: unterminated quoted string")


def parse_challenges(value: str) -> tuple[Challenge, ...]:
    """Parse a ``WWW-Authenticate`` value, which may hold several comma-separated challenges:
    ``Bearer realm="https://a/token",service="a b",scope="repository:x:pull", Basic realm="r"``.

    Parameter values are tokens or quoted strings (backslash escapes a character; commas and spaces
    inside quotes are data). Anything that does not follow the syntax raises
    :class:`RegistryAuthError` naming the position; nothing else is ever raised. A parameter given
    twice in one challenge is an error (RFC 7235 says each name occurs once)."""
    if not isinstance(value, str):
        raise RegistryAuthError(f"WWW-Authenticate: expected text, got {type(value).__name__}")
    if len(value) > MAX_HEADER:
        raise RegistryAuthError(f"WWW-Authenticate: {len(value)} characters, over the {MAX_HEADER} limit")
    s, n, i = value, len(value), 0
    out: list[Challenge] = []
    while True:
        i = _skip(s, i, " \t,")
        if i >= n:
            return tuple(out)
        m = _TOKEN.match(s, i)
        if m is None:
            raise RegistryAuthError(
                f"WWW-Authenticate: expected an auth scheme at offset {i}: {s[i : i + 20]!r}"
            )
        scheme, i = m.group().lower(), m.end()
        j = _skip(s, i, " \t")
        if j == i and j < n and s[j] != ",":
            raise RegistryAuthError(f"WWW-Authenticate: unexpected {s[j]!r} after scheme at offset {j}")
        i = j
        params: dict[str, str] = {}
        token68 = ""
        if i < n and s[i] != "," and _PARAM_NAME.match(s, i) is None:
            m68 = _TOKEN68.match(s, i)
            if m68 is None:
                raise RegistryAuthError(f"WWW-Authenticate: bad parameter at offset {i}: {s[i : i + 20]!r}")
            token68, i = m68.group(), m68.end()
        else:
            while (pm := _PARAM_NAME.match(s, i)) is not None:
                name, i = pm.group(1).lower(), pm.end()
                if i < n and s[i] == '"':
                    val, i = _quoted(s, i)
                else:
                    tm = _TOKEN.match(s, i)
                    if tm is None:
                        raise RegistryAuthError(f"WWW-Authenticate: parameter {name!r} has no value")
                    val, i = tm.group(), tm.end()
                if name in params:
                    raise RegistryAuthError(f"WWW-Authenticate: parameter {name!r} given twice")
                params[name] = val
                i = _skip(s, i, " \t")
                if i >= n:
                    break
                if s[i] != ",":
                    raise RegistryAuthError(
                        f"WWW-Authenticate: expected ',' at offset {i}: {s[i : i + 20]!r}"
                    )
                # after the comma(s): another parameter of this challenge, or the next challenge
                i = _skip(s, i, " \t,")
        out.append(Challenge(scheme, tuple(params.items()), token68))


def choose_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge to answer: Bearer with a realm first (it covers anonymous access too), then
    Basic; ``None`` when the registry offers neither."""
    found = list(challenges)
    bearer = next((c for c in found if c.scheme == "bearer" and c.realm), None)
    return bearer or next((c for c in found if c.scheme == "basic"), None)


# ---------------------------------------------------------------------------------------------------
# Basic


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` value ``Basic base64(user:pass)`` (UTF-8). A user name cannot hold ``:``
    (RFC 7617), a password can."""
    if ":" in username:
        raise RegistryAuthError("basic auth: the user name must not contain ':'")
    if any(c in "\r\n\0" for c in username + password):
        raise RegistryAuthError("basic auth: credentials must not contain CR, LF or NUL")
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


# ---------------------------------------------------------------------------------------------------
# Bearer tokens


def repository_scope(repository: str, push: bool = False) -> str:
    """``repository:<name>:pull`` (or ``:pull,push``), the scope a token for ``repository`` needs."""
    if not repository or any(c.isspace() for c in repository):
        raise RegistryAuthError(f"token scope: bad repository name {repository!r}")
    return f"repository:{repository}:{'pull,push' if push else 'pull'}"


def token_request_url(challenge: Challenge, scopes: Sequence[str] | None = None) -> str:
    """The GET URL for a token: ``<realm>?service=<service>&scope=<s1>&scope=<s2>``.

    ``scopes`` default to the challenge's own (echoed as given: registries use non-standard scopes
    such as ``registry::pull``). Values are percent-encoded; a query already in the realm is kept.
    The realm must be an absolute ``http``/``https`` URL without credentials or a fragment."""
    if challenge.scheme != "bearer":
        raise RegistryAuthError(f"token request: a {challenge.scheme!r} challenge has no token endpoint")
    realm = challenge.realm
    if not realm:
        raise RegistryAuthError("token request: the Bearer challenge has no realm")
    try:
        parts = urlsplit(realm)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as e:
        raise RegistryAuthError(f"token request: realm {realm!r} is not a URL: {e}") from None
    del port
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise RegistryAuthError(f"token request: realm {realm!r} is not an absolute http(s) URL")
    if parts.username is not None or parts.fragment or any(c.isspace() for c in realm):
        raise RegistryAuthError(f"token request: realm {realm!r} has credentials, a fragment or spaces")
    query: list[tuple[str, str]] = []
    if challenge.service is not None:
        query.append(("service", challenge.service))
    query.extend(("scope", s) for s in (challenge.scopes if scopes is None else scopes))
    encoded = "&".join(f"{k}={quote(v, safe='')}" for k, v in query)
    if not encoded:
        return realm
    return f"{realm}{'&' if parts.query else '?'}{encoded}"


@dataclass(frozen=True, slots=True)
class BearerToken:
    """A token and when it stops being usable (``expires_at``, same clock as the ``now`` passed in)."""

    token: str = field(repr=False)
    expires_at: float
    lifetime: float
    issued_at: datetime | None = None  # as the token server reported it; informative only

    def valid_at(self, now: float, margin: float = 0.0) -> bool:
        return now + margin < self.expires_at


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_token_response(doc: bytes | str | Mapping[str, object], *, now: float) -> BearerToken:
    """Read a token server's JSON answer (raw bytes/text or the decoded object).

    The token is ``token``, or ``access_token`` when ``token`` is absent (OAuth2 spelling; when both
    are present ``token`` wins). ``expires_in`` defaults to 60 s and is raised to at least 60 s and
    clamped to a day. The expiry is measured from ``now``, the caller's clock when the answer
    arrived, not from ``issued_at``: the token server's clock may disagree with ours, and the answer
    is fresh, so ``now + expires_in`` errs late by the network latency only (the cache's refresh
    margin absorbs that). ``issued_at`` is parsed if present and kept for information."""
    if isinstance(doc, (bytes, str)):
        try:
            doc = json.loads(doc, parse_constant=_no_constant)
        except (ValueError, RecursionError) as e:
            raise RegistryAuthError(f"token response: not JSON: {e}") from None
    if not isinstance(doc, Mapping):
        raise RegistryAuthError(f"token response: expected a JSON object, got {type(doc).__name__}")
    key = "token" if "token" in doc else "access_token"
    token = doc.get(key)
    if not isinstance(token, str) or not token:
        raise RegistryAuthError(
            f"token response: {key!r} must be a non-empty string (neither 'token' "
            "nor 'access_token' is usable)"
        )
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in token):
        raise RegistryAuthError(f"token response: {key!r} contains characters not allowed in a header")
    expires_in = doc.get("expires_in")
    if expires_in is None:
        lifetime = DEFAULT_TOKEN_LIFETIME
    elif isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
        if not math.isfinite(expires_in):
            raise RegistryAuthError(f"token response: 'expires_in' is {expires_in!r}")
        lifetime = min(max(float(expires_in), MIN_TOKEN_LIFETIME), MAX_TOKEN_LIFETIME)
    else:
        raise RegistryAuthError(f"token response: 'expires_in' must be a number, got {expires_in!r:.40}")
    return BearerToken(token, now + lifetime, lifetime, parse_rfc3339(doc.get("issued_at")))


TokenKey = tuple[str, str, str]  # (realm, service, scope) -- several scopes joined by one space


class TokenCache:
    """Bearer tokens by ``(realm, service, scope)``. Pure: every call takes ``now``.

    :meth:`get` returns a token until ``margin`` seconds before it expires (at most half its
    lifetime, so a 60 s token is reused for at least 30 s). Holds at most ``max_entries`` tokens:
    expired ones are dropped first, then the least recently used. Call :meth:`invalidate` when a
    request with a cached token still gets 401, then re-challenge."""

    def __init__(self, max_entries: int = 256, margin: float = 10.0) -> None:
        if max_entries < 1 or margin < 0:
            raise ValueError("TokenCache: max_entries >= 1 and margin >= 0")
        self.max_entries = max_entries
        self.margin = margin
        self._tokens: OrderedDict[TokenKey, BearerToken] = OrderedDict()

    @staticmethod
    def key(realm: str, service: str | None, scopes: Iterable[str]) -> TokenKey:
        return (realm, service or "", " ".join(scopes))

    def __len__(self) -> int:
        return len(self._tokens)

    def get(self, key: TokenKey, now: float) -> BearerToken | None:
        tok = self._tokens.get(key)
        if tok is None:
            return None
        if not tok.valid_at(now, min(self.margin, tok.lifetime / 2)):
            del self._tokens[key]
            return None
        self._tokens.move_to_end(key)
        return tok

    def put(self, key: TokenKey, token: BearerToken, now: float) -> None:
        self._tokens[key] = token
        self._tokens.move_to_end(key)
        if len(self._tokens) > self.max_entries:
            for k in [k for k, t in self._tokens.items() if not t.valid_at(now)]:
                del self._tokens[k]
        while len(self._tokens) > self.max_entries:
            self._tokens.popitem(last=False)

    def invalidate(self, key: TokenKey) -> None:
        self._tokens.pop(key, None)


# ---------------------------------------------------------------------------------------------------
# Docker config.json


@dataclass(frozen=True, slots=True)
class Credentials:
    """Static credentials for one registry. ``identity_token`` is set when ``docker login`` stored an
    OAuth2 refresh token (``identitytoken``) instead of a password: it is exchanged with a POST to
    the token endpoint (``grant_type=refresh_token``), which the GET token flow does not do, so a
    caller that cannot use it should treat the entry as anonymous."""

    username: str
    password: str = field(repr=False)
    identity_token: str = field(default="", repr=False)


def _hostname(key: str) -> str:
    """A config key reduced to ``host[:port]``, lower-cased: ``https://host/v1/`` -> ``host``."""
    key = key.strip()
    for prefix in ("https://", "http://"):
        if key.lower().startswith(prefix):
            key = key[len(prefix) :]
            break
    return key.split("/", 1)[0].lower()


def _same_registry(a: str, b: str) -> bool:
    return a == b or (a in _HUB_HOSTS and b in _HUB_HOSTS)


def _decode_auth(value: str, where: str) -> tuple[str, str]:
    text = "".join(value.split())
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise RegistryAuthError(f"{where}.auth: not base64 of UTF-8 'user:password'") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise RegistryAuthError(f"{where}.auth: decodes to text without ':' (expected 'user:password')")
    return user, password


def _entries(config: Mapping[str, object]) -> tuple[Mapping[str, object], str]:
    auths = config.get("auths")
    if auths is not None:
        if not isinstance(auths, Mapping):
            raise RegistryAuthError(f"docker config: 'auths' must be an object, got {type(auths).__name__}")
        return auths, "auths"
    # the legacy ~/.dockercfg shape: host keys at the top level, each an object with 'auth'
    legacy = {k: v for k, v in config.items() if isinstance(v, Mapping) and ("auth" in v or "username" in v)}
    return legacy, ""


def credential_helper(config: object, registry: str) -> str | None:
    """The credential helper ``docker`` would run for ``registry`` (``credHelpers`` entry, else
    ``credsStore``), or ``None``. Informative: running helpers is out of scope here."""
    if not isinstance(config, Mapping):
        return None
    host = _hostname(registry)
    helpers = config.get("credHelpers")
    if isinstance(helpers, Mapping):
        for k, v in helpers.items():
            if isinstance(k, str) and isinstance(v, str) and v and _same_registry(_hostname(k), host):
                return v
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def docker_config_credentials(config: object, registry: str) -> Credentials | None:
    """Credentials for ``registry`` (``host[:port]``; ``docker.io``, ``index.docker.io`` and
    ``registry-1.docker.io`` are one registry) from a decoded ``config.json``, a Kubernetes
    ``kubernetes.io/dockerconfigjson`` secret's payload (same ``auths`` shape) or a legacy
    ``.dockercfg`` (host keys at the top level).

    Keys match as ``host``, ``https://host``, ``http://host`` or with a path (``https://host/v1/``);
    the exact key ``host`` is preferred, then ``https://host``, then Docker Hub's legacy
    ``https://index.docker.io/v1/``, then any other matching key in document order. An entry gives
    ``auth`` (base64 ``user:password``, which wins) or ``username``/``password``, and possibly
    ``identitytoken`` (see :class:`Credentials`).

    Returns ``None`` when no entry matches or the matching entry is empty. Credentials kept by
    ``credHelpers``/``credsStore`` (docker's entry is then ``{}``) cannot be read without running
    an external program, which this pure function does not do: it returns ``None`` for them too
    (:func:`credential_helper` tells which helper it would have been). Kubernetes' glob keys
    (``*.example.com``) are not matched. A malformed matching entry raises
    :class:`RegistryAuthError`; malformed entries for other registries are ignored."""
    if not isinstance(config, Mapping):
        raise RegistryAuthError(f"docker config: expected a JSON object, got {type(config).__name__}")
    entries, section = _entries(config)
    host = _hostname(registry)
    if not host:
        raise RegistryAuthError(f"docker config: bad registry name {registry!r}")
    preferred = [host, f"https://{host}", f"http://{host}"]
    if host in _HUB_HOSTS:
        preferred += [DOCKER_HUB_LEGACY_KEY, DOCKER_HUB]
    keys = [k for k in entries if isinstance(k, str) and _same_registry(_hostname(k), host)]
    keys.sort(key=lambda k: preferred.index(k) if k in preferred else len(preferred))
    for key in keys:
        where = f"{section}[{key!r}]" if section else f"[{key!r}]"
        entry = entries[key]
        if not isinstance(entry, Mapping):
            raise RegistryAuthError(f"docker config: {where} must be an object")
        creds = _entry_credentials(entry, where)
        if creds is not None:
            return creds
    return None


def _entry_credentials(entry: Mapping[str, object], where: str) -> Credentials | None:
    def text(name: str) -> str:
        v = entry.get(name)
        if v is None:
            return ""
        if not isinstance(v, str):
            raise RegistryAuthError(f"docker config: {where}.{name} must be a string")
        return v

    auth, user, password, identity = text("auth"), text("username"), text("password"), text("identitytoken")
    if auth:
        user, password = _decode_auth(auth, f"docker config: {where}")
    if not (user or password or identity):
        return None
    return Credentials(user, password, identity)
