"""Registry auth building blocks: challenges, Basic, Bearer token URL/response/cache, docker config."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extender.errors import ExtenderError, RegistryAuthError, RegistryError
from extender.sources.registry.auth import (
    BearerToken,
    Challenge,
    Credentials,
    TokenCache,
    basic_authorization,
    choose_challenge,
    credential_helper,
    docker_config_credentials,
    parse_challenges,
    parse_token_response,
    repository_scope,
    token_request_url,
)

# --- WWW-Authenticate ----------------------------------------------------------------------------


def test_docker_hub_bearer_challenge() -> None:
    value = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"'
    )
    (c,) = parse_challenges(value)
    assert c.scheme == "bearer"
    assert c.realm == "https://auth.docker.io/token"
    assert c.service == "registry.docker.io"
    assert c.scopes == ("repository:library/nginx:pull",)
    assert c.token68 == ""


def test_basic_challenge_htpasswd() -> None:
    assert parse_challenges('Basic realm="Registry Realm"') == (
        Challenge("basic", (("realm", "Registry Realm"),)),
    )


def test_olareg_service_with_space_and_nonstandard_scope() -> None:
    (c,) = parse_challenges(
        'Bearer realm="http://127.0.0.1:5000/token", service="olareg registry", scope="registry::pull"'
    )
    assert c.service == "olareg registry"
    assert c.scopes == ("registry::pull",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("basic", (Challenge("basic"),)),
        ("BASIC Realm=x", (Challenge("basic", (("realm", "x"),)),)),
        ("Bearer realm=tok , service = svc", (Challenge("bearer", (("realm", "tok"), ("service", "svc"))),)),
        ('Bearer realm="a,b", scope="x y"', (Challenge("bearer", (("realm", "a,b"), ("scope", "x y"))),)),
        (r'Basic realm="say \"hi\" \\ bye"', (Challenge("basic", (("realm", 'say "hi" \\ bye'),)),)),
        ('Basic realm=""', (Challenge("basic", (("realm", ""),)),)),
        (
            'Bearer realm="https://r/t",service="s", Basic realm="b"',
            (
                Challenge("bearer", (("realm", "https://r/t"), ("service", "s"))),
                Challenge("basic", (("realm", "b"),)),
            ),
        ),
        ("Negotiate, Basic realm=x", (Challenge("negotiate"), Challenge("basic", (("realm", "x"),)))),
        ("Negotiate abc+/==, Basic", (Challenge("negotiate", token68="abc+/=="), Challenge("basic"))),
        (" ,, Basic realm=x,, ", (Challenge("basic", (("realm", "x"),)),)),
        ("", ()),
        ("  ", ()),
    ],
)
def test_challenge_forms(value: str, expected: tuple[Challenge, ...]) -> None:
    assert parse_challenges(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('Basic realm="unterminated', "unterminated"),
        ("Basic realm=", "no value"),
        ('Basic realm="a" service="b"', "expected ','"),
        ("Basic realm=a, realm=b", "twice"),
        ('"Basic" realm=x', "auth scheme"),
        ("Basic\trealm=x\n", "expected ','"),
        ("Basic realm=x y", "expected ','"),
        ("Bearer @@@", "bad parameter"),
        ("Basic realm=a\\", "expected ','"),
        ("x" * 9000, "limit"),
    ],
)
def test_challenge_errors(value: str, fragment: str) -> None:
    with pytest.raises(RegistryAuthError, match=fragment):
        parse_challenges(value)


def test_challenge_not_a_string() -> None:
    with pytest.raises(RegistryAuthError, match="expected text"):
        parse_challenges(b"Basic realm=x")  # type: ignore[arg-type]


def test_challenge_param_lookup_is_case_insensitive() -> None:
    (c,) = parse_challenges('Bearer REALM="https://a/t",Service=s')
    assert c.get("Realm") == "https://a/t"
    assert c.get("realm") == "https://a/t"
    assert c.get("missing") is None
    assert c.scopes == ()


def test_errors_are_in_the_tree() -> None:
    assert issubclass(RegistryAuthError, RegistryError)
    assert issubclass(RegistryError, ExtenderError)


_HEADERISH = st.text(
    alphabet=st.sampled_from([*list("Basic Bearer realm=\"\\,= \t;:/x'"), "é", "\n"]), max_size=80
)


@given(st.one_of(st.text(max_size=200), _HEADERISH))
def test_challenge_parser_never_crashes(value: str) -> None:
    try:
        challenges = parse_challenges(value)
    except RegistryAuthError:
        return
    for c in challenges:
        assert c.scheme == c.scheme.lower() and c.scheme
        assert all(k == k.lower() for k, _ in c.params)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Basic", "bearer", "X-Custom"]),
            st.dictionaries(
                st.sampled_from(["realm", "service", "scope", "error"]),
                st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=20),
                max_size=4,
            ),
        ),
        max_size=4,
    )
)
def test_challenge_round_trip(items: list[tuple[str, dict[str, str]]]) -> None:
    def quote(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    value = ", ".join(
        f"{scheme} " + ", ".join(f"{k}={quote(v)}" for k, v in params.items()) for scheme, params in items
    )
    expected = tuple(Challenge(s.lower(), tuple(p.items())) for s, p in items)
    assert parse_challenges(value) == expected


def test_choose_challenge() -> None:
    basic, bearer = Challenge("basic", (("realm", "r"),)), Challenge("bearer", (("realm", "https://t"),))
    assert choose_challenge([basic, bearer]) == bearer
    assert choose_challenge([basic]) == basic
    assert choose_challenge([Challenge("bearer"), basic]) == basic  # a Bearer without a realm is useless
    assert choose_challenge([Challenge("negotiate")]) is None
    assert choose_challenge([]) is None


# --- Basic -----------------------------------------------------------------------------------------


def test_basic_authorization() -> None:
    assert basic_authorization("user", "pa:ss") == "Basic " + base64.b64encode(b"user:pa:ss").decode()
    assert basic_authorization("", "") == "Basic Og=="
    assert basic_authorization("ü", "p") == "Basic " + base64.b64encode("ü:p".encode()).decode()
    with pytest.raises(RegistryAuthError, match="':'"):
        basic_authorization("a:b", "p")
    with pytest.raises(RegistryAuthError, match="CR, LF"):
        basic_authorization("a", "p\r\nX-Evil: 1")


# --- Bearer ----------------------------------------------------------------------------------------


def test_repository_scope() -> None:
    assert repository_scope("library/nginx") == "repository:library/nginx:pull"
    assert repository_scope("org/app", push=True) == "repository:org/app:pull,push"
    with pytest.raises(RegistryAuthError):
        repository_scope("")
    with pytest.raises(RegistryAuthError):
        repository_scope("a b")


def test_token_url_docker_hub() -> None:
    (c,) = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"'
    )
    assert token_request_url(c) == (
        "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fnginx%3Apull"
    )


def test_token_url_explicit_scopes_space_and_existing_query() -> None:
    c = Challenge("bearer", (("realm", "http://127.0.0.1:5000/token?x=1"), ("service", "olareg registry")))
    url = token_request_url(c, [repository_scope("a/b", push=True), "registry::pull"])
    assert url == (
        "http://127.0.0.1:5000/token?x=1&service=olareg%20registry"
        "&scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=registry%3A%3Apull"
    )


def test_token_url_without_service_or_scope() -> None:
    assert token_request_url(Challenge("bearer", (("realm", "https://t/x"),))) == "https://t/x"
    several = Challenge("bearer", (("realm", "https://t"), ("scope", "a:b:pull c:d:pull")))
    assert token_request_url(several) == "https://t?scope=a%3Ab%3Apull&scope=c%3Ad%3Apull"


@pytest.mark.parametrize(
    ("challenge", "fragment"),
    [
        (Challenge("basic", (("realm", "https://t"),)), "no token endpoint"),
        (Challenge("bearer"), "no realm"),
        (Challenge("bearer", (("realm", "/token"),)), "absolute"),
        (Challenge("bearer", (("realm", "ftp://h/token"),)), "absolute"),
        (Challenge("bearer", (("realm", "https://u:p@h/token"),)), "credentials"),
        (Challenge("bearer", (("realm", "https://h/t#frag"),)), "fragment"),
        (Challenge("bearer", (("realm", "https://h:notaport/t"),)), "not a URL"),
        (Challenge("bearer", (("realm", "https://[::1/t"),)), "not a URL"),
    ],
)
def test_token_url_errors(challenge: Challenge, fragment: str) -> None:
    with pytest.raises(RegistryAuthError, match=fragment):
        token_request_url(challenge)


def test_token_response_shapes() -> None:
    tok = parse_token_response(
        b'{"token": "abc", "expires_in": 300, "issued_at": "2024-05-01T10:00:00Z"}', now=1000
    )
    assert tok == BearerToken("abc", 1300.0, 300.0, datetime(2024, 5, 1, 10, tzinfo=UTC))
    assert "abc" not in repr(tok)
    assert parse_token_response({"access_token": "xyz"}, now=0).token == "xyz"
    both = parse_token_response({"token": "t", "access_token": "a", "refresh_token": "r"}, now=0)
    assert both.token == "t"
    assert parse_token_response('{"token": "t"}', now=5).expires_at == 65.0  # default 60 s
    assert parse_token_response({"token": "t", "expires_in": 10}, now=0).expires_at == 60.0  # minimum
    assert parse_token_response({"token": "t", "expires_in": 1e12}, now=0).lifetime == 86400.0
    assert parse_token_response({"token": "t", "expires_in": 90.5}, now=0).lifetime == 90.5
    assert parse_token_response({"token": "t", "issued_at": "yesterday"}, now=0).issued_at is None
    assert parse_token_response({"token": "t", "issued_at": "2024-05-01T10:00:00"}, now=0).issued_at is None


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b"\xff", "not JSON"),
        ({}, "non-empty string"),
        ({"token": ""}, "non-empty string"),
        ({"token": 5}, "non-empty string"),
        ({"token": None, "access_token": "a"}, "non-empty string"),
        ({"token": "a b"}, "not allowed in a header"),
        ({"token": "a\nb"}, "not allowed in a header"),
        ({"token": "t", "expires_in": "300"}, "number"),
        ({"token": "t", "expires_in": True}, "number"),
        (b'{"token": "t", "expires_in": NaN}', "NaN"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_token_response_errors(doc: Any, fragment: str) -> None:
    with pytest.raises(RegistryAuthError, match=fragment):
        parse_token_response(doc, now=0)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=10,
)


@given(
    st.one_of(
        _JSON,
        st.dictionaries(
            st.sampled_from(["token", "access_token", "expires_in", "issued_at"]), _JSON, max_size=4
        ),
    )
)
def test_token_response_never_crashes(doc: object) -> None:
    try:
        tok = parse_token_response(doc if isinstance(doc, dict) else json.dumps(doc), now=100.0)
    except RegistryAuthError:
        return
    assert tok.token and 160.0 <= tok.expires_at <= 100.0 + 86400.0


def test_token_cache_expiry_margin_and_invalidate() -> None:
    cache = TokenCache(margin=10)
    key = TokenCache.key("https://auth/token", "svc", ["repository:a:pull"])
    assert key == ("https://auth/token", "svc", "repository:a:pull")
    assert cache.get(key, 0) is None
    tok = parse_token_response({"token": "t", "expires_in": 300}, now=0)
    cache.put(key, tok, now=0)
    assert cache.get(key, 289.9) is tok
    assert cache.get(key, 290) is None  # 10 s before expiry: refresh
    assert len(cache) == 0  # and the stale entry is gone
    cache.put(key, tok, now=0)
    cache.invalidate(key)
    cache.invalidate(key)
    assert cache.get(key, 1) is None


def test_token_cache_margin_at_most_half_the_lifetime() -> None:
    cache = TokenCache(margin=45)
    key = TokenCache.key("r", None, [])
    cache.put(key, parse_token_response({"token": "t"}, now=0), now=0)  # 60 s token
    assert cache.get(key, 29) is not None
    assert cache.get(key, 30) is None


def test_token_cache_is_keyed_by_realm_service_scope() -> None:
    cache = TokenCache()
    a = TokenCache.key("r", "s", ["repository:a:pull"])
    b = TokenCache.key("r", "s", ["repository:a:pull,push"])
    cache.put(a, parse_token_response({"token": "ta"}, now=0), now=0)
    assert cache.get(b, 1) is None
    assert cache.get(TokenCache.key("r2", "s", ["repository:a:pull"]), 1) is None
    assert cache.get(a, 1) is not None


def test_token_cache_is_bounded_dropping_expired_then_lru() -> None:
    cache = TokenCache(max_entries=3, margin=0)
    short = parse_token_response({"token": "s"}, now=0)  # expires at 60
    long = parse_token_response({"token": "l", "expires_in": 3600}, now=0)
    cache.put(("r", "", "expired"), short, now=0)
    cache.put(("r", "", "a"), long, now=0)
    cache.put(("r", "", "b"), long, now=0)
    cache.put(("r", "", "c"), long, now=100)  # over the bound: the expired one goes, not 'a'
    assert len(cache) == 3
    assert cache.get(("r", "", "a"), 100) is long
    cache.put(("r", "", "d"), long, now=100)  # now the least recently used ('b') goes
    assert cache.get(("r", "", "b"), 100) is None
    assert all(cache.get(("r", "", k), 100) is long for k in "acd")
    with pytest.raises(ValueError):
        TokenCache(max_entries=0)


# --- docker config.json ----------------------------------------------------------------------------


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_docker_config_auth_and_username_password() -> None:
    config = {
        "auths": {
            "ghcr.io": {"auth": _auth("octo", "ghp_x:y")},
            "https://quay.io": {"username": "q", "password": "p"},
            "localhost:5000": {"auth": _auth("l", "p"), "email": "x@example.com"},
        }
    }
    assert docker_config_credentials(config, "ghcr.io") == Credentials("octo", "ghp_x:y")
    assert docker_config_credentials(config, "GHCR.IO") == Credentials("octo", "ghp_x:y")
    assert docker_config_credentials(config, "quay.io") == Credentials("q", "p")
    assert docker_config_credentials(config, "localhost:5000") == Credentials("l", "p")
    assert docker_config_credentials(config, "localhost") is None
    assert docker_config_credentials(config, "example.com") is None
    assert "ghp_x" not in repr(docker_config_credentials(config, "ghcr.io"))


@pytest.mark.parametrize("registry", ["docker.io", "registry-1.docker.io", "index.docker.io"])
def test_docker_hub_legacy_key(registry: str) -> None:
    config = {"auths": {"https://index.docker.io/v1/": {"auth": _auth("hub", "pw")}}}
    assert docker_config_credentials(config, registry) == Credentials("hub", "pw")


def test_key_preference_exact_then_https_then_legacy() -> None:
    config = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": _auth("legacy", "1")},
            "https://docker.io": {"auth": _auth("https", "2")},
            "http://docker.io/v2/": {"auth": _auth("other", "4")},
        }
    }
    assert docker_config_credentials(config, "docker.io") == Credentials("https", "2")
    assert docker_config_credentials(config, "registry-1.docker.io") == Credentials("legacy", "1")
    config["auths"]["docker.io"] = {"auth": _auth("exact", "3")}
    assert docker_config_credentials(config, "docker.io") == Credentials("exact", "3")
    path_key = {"auths": {"https://reg.example.com/v2/": {"username": "u", "password": "p"}}}
    assert docker_config_credentials(path_key, "reg.example.com") == Credentials("u", "p")


def test_identity_token_and_empty_entries() -> None:
    config = {
        "auths": {
            "a.io": {"auth": _auth("<token>", ""), "identitytoken": "refresh-xyz"},
            "b.io": {"identitytoken": "only"},
            "c.io": {},
            "d.io": {"auth": ""},
        },
        "credsStore": "desktop",
        "credHelpers": {"gcr.io": "gcloud", "c.io": "ecr-login"},
    }
    a = docker_config_credentials(config, "a.io")
    assert a == Credentials("<token>", "", "refresh-xyz")
    assert "refresh-xyz" not in repr(a)
    assert docker_config_credentials(config, "b.io") == Credentials("", "", "only")
    assert docker_config_credentials(config, "c.io") is None  # kept by a helper: unusable here
    assert docker_config_credentials(config, "d.io") is None
    assert docker_config_credentials(config, "gcr.io") is None
    assert credential_helper(config, "gcr.io") == "gcloud"
    assert credential_helper(config, "c.io") == "ecr-login"
    assert credential_helper(config, "a.io") == "desktop"
    assert credential_helper({}, "a.io") is None
    assert credential_helper([], "a.io") is None


def test_kubernetes_dockerconfigjson_and_legacy_dockercfg() -> None:
    secret_payload = json.loads(
        json.dumps({"auths": {"registry.example.com:5000": {"auth": _auth("k", "s")}}})
    )
    assert docker_config_credentials(secret_payload, "registry.example.com:5000") == Credentials("k", "s")
    dockercfg = {"https://index.docker.io/v1/": {"auth": _auth("old", "pw"), "email": "e"}}
    assert docker_config_credentials(dockercfg, "docker.io") == Credentials("old", "pw")
    assert docker_config_credentials({}, "docker.io") is None


def test_auth_without_padding_or_with_whitespace() -> None:
    unpadded = _auth("ab", "c").rstrip("=")
    assert docker_config_credentials({"auths": {"h": {"auth": unpadded}}}, "h") == Credentials("ab", "c")
    spaced = " " + _auth("ab", "cd") + "\n"
    assert docker_config_credentials({"auths": {"h": {"auth": spaced}}}, "h") == Credentials("ab", "cd")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"auths": {"h": {"auth": "!!!not base64"}}}, r"auths\['h'\]\.auth: not base64"),
        ({"auths": {"h": {"auth": base64.b64encode(b"\xff\xfe").decode()}}}, "not base64"),
        ({"auths": {"h": {"auth": _auth("nocolon", "")[:-4] + "bm9jb2xvbg=="}}}, "not base64|without ':'"),
        ({"auths": {"h": {"auth": base64.b64encode(b"nocolon").decode()}}}, "without ':'"),
        ({"auths": {"h": {"auth": 5}}}, "must be a string"),
        ({"auths": {"h": {"username": ["u"]}}}, "username must be a string"),
        ({"auths": {"h": "user:pass"}}, "must be an object"),
        ({"auths": ["h"]}, "'auths' must be an object"),
    ],
)
def test_docker_config_errors(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RegistryAuthError, match=fragment):
        docker_config_credentials(config, "h")


def test_docker_config_other_entries_are_not_checked() -> None:
    config = {"auths": {"broken.io": {"auth": "%%%"}, "good.io": {"auth": _auth("u", "p")}}}
    assert docker_config_credentials(config, "good.io") == Credentials("u", "p")


def test_docker_config_bad_arguments() -> None:
    with pytest.raises(RegistryAuthError, match="JSON object"):
        docker_config_credentials([], "h")
    with pytest.raises(RegistryAuthError, match="registry name"):
        docker_config_credentials({}, "https:///")


@given(
    _JSON
    | st.dictionaries(
        st.sampled_from(["auths", "credsStore", "credHelpers", "h", "https://h"]),
        _JSON
        | st.dictionaries(
            st.sampled_from(["h", "https://h/v1/", "other"]),
            _JSON
            | st.dictionaries(st.sampled_from(["auth", "username", "password", "identitytoken"]), _JSON),
        ),
    )
)
def test_docker_config_never_crashes(config: object) -> None:
    try:
        creds = docker_config_credentials(config, "h")
    except RegistryAuthError:
        pass
    else:
        assert creds is None or isinstance(creds, Credentials)
    helper = credential_helper(config, "h")
    assert helper is None or isinstance(helper, str)
