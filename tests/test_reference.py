"""Image reference parsing and Docker Hub normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extender.errors import ImageReferenceError
from extender.images import ImageRef, normalise, parse_reference

H = "a" * 64
D = f"sha256:{H}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", ImageRef("docker.io", "library/nginx", "")),
        ("nginx:1.25", ImageRef("docker.io", "library/nginx", "1.25")),
        ("library/nginx", ImageRef("docker.io", "library/nginx")),
        ("docker.io/nginx", ImageRef("docker.io", "library/nginx")),
        ("index.docker.io/nginx:1", ImageRef("docker.io", "library/nginx", "1")),
        ("bitnami/redis:7", ImageRef("docker.io", "bitnami/redis", "7")),
        ("localhost/app", ImageRef("localhost", "app")),
        ("localhost:5000/app:v1", ImageRef("localhost:5000", "app", "v1")),
        ("127.0.0.1:5000/a/b/c:t", ImageRef("127.0.0.1:5000", "a/b/c", "t")),
        ("Registry/app", ImageRef("Registry", "app")),  # upper case: a host name
        ("[::1]:5000/app", ImageRef("[::1]:5000", "app")),
        ("ghcr.io/org/app@" + D, ImageRef("ghcr.io", "org/app", "", D)),
        ("ghcr.io/org/app:1.2@" + D, ImageRef("ghcr.io", "org/app", "1.2", D)),
        ("quay.io/a/b__c-d.e:tag_1.x-y", ImageRef("quay.io", "a/b__c-d.e", "tag_1.x-y")),
    ],
)
def test_parse_and_normalise(text: str, expected: ImageRef) -> None:
    assert parse_reference(text) == expected


def test_string_forms() -> None:
    assert str(parse_reference("nginx")) == "docker.io/library/nginx:latest"
    assert str(parse_reference("ghcr.io/o/a@" + D)) == f"ghcr.io/o/a@{D}"
    assert str(parse_reference("ghcr.io/o/a:1@" + D)) == f"ghcr.io/o/a:1@{D}"
    assert parse_reference("nginx").api_host == "registry-1.docker.io"
    assert parse_reference("ghcr.io/o/a:1@" + D).reference == D
    assert parse_reference("ghcr.io/o/a").reference == "latest"
    assert normalise("nginx") == normalise("docker.io/library/nginx:latest")
    assert normalise("NOT VALID") == "NOT VALID"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        (" nginx", "whitespace"),
        (H, "bare 64-hex image ID"),
        ("nginx@sha256:abc", "invalid digest"),
        ("nginx@sha256:" + "A" * 64, "64 lower-case hex"),
        ("nginx:-bad", "invalid tag"),
        ("nginx:" + "t" * 129, "invalid tag"),
        ("docker.io/Nginx", "must be lower-case"),
        ("ghcr.io/org//app", "invalid path component ''"),
        ("ghcr.io/org/-app", "invalid path component"),
        ("ghcr.io/org/app_", "invalid path component"),
        ("-bad.io/app", "invalid registry"),
        ("ghcr.io/" + "a" * 250, "longer than 255"),
        ("a" * 5000, "over the 4096 limit"),
    ],
)
def test_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ImageReferenceError, match=fragment):
        parse_reference(text)


@given(st.text(max_size=300))
def test_never_crashes_and_round_trips(text: str) -> None:
    try:
        ref = parse_reference(text)
    except ImageReferenceError:
        return
    again = parse_reference(str(ref))
    assert again == (ref if ref.tag or ref.digest else ImageRef(ref.registry, ref.repository, "latest"))
    assert normalise(str(ref)) == str(ref)
