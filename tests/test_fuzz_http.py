"""Fuzzing every HTTP endpoint with hypothesis: arbitrary JSON and non-JSON bodies, ExtenderArgs and
Pods with a wrong type at every field, huge and deeply nested values, odd query strings. Whatever
arrives, the answer is a deliberate status (never a 5xx here: the specs are local files, so no lookup
can fail), the verbs answer JSON, and the server keeps serving (a well-formed request still gets its
right answer afterwards).

Bounded in ``make test``; ``COMPAT_FUZZ=long`` runs 100x the examples (see tests/fuzz.py)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.http.app import AppSettings, build_app
from extender.sources.files import FileFeatures, FileSpecs
from tests.fuzz import examples

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GOOD = (EXAMPLES / "requests" / "filter-dpdk.json").read_bytes()
GOOD_ANSWER = json.loads((EXAMPLES / "requests" / "filter-dpdk.answer.json").read_text())
IMAGES = [
    "registry.example.com/telco/dpdk-app:23.11",
    "registry.example.com/ml/cuda-train:12.4",
    "docker.io/library/busybox:1",
    "",
    "::not a reference::",
]
NODES = ["dpdk-e810-01", "gpu-h100-01", "ghost", ""]
MAX_BODY = 1 << 20

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(IMAGES + NODES),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=40,
)


@st.composite
def pods(draw: st.DrawFn) -> Any:
    """A v1.Pod, with any field possibly replaced by a value of the wrong type."""

    def maybe(value: Any) -> Any:
        return draw(json_value) if draw(st.integers(0, 5)) == 0 else value

    containers = [
        maybe({"name": "c", "image": maybe(draw(st.sampled_from(IMAGES)))})
        for _ in range(draw(st.integers(0, 3)))
    ]
    annotations = maybe(
        {
            "compat-extender.nfd.io/tags": maybe(draw(st.sampled_from(["gpu", "a,b", "", ",,"]))),
            "compat-extender.nfd.io/failure-policy": maybe(
                draw(st.sampled_from(["Fail", "Ignore", "fail", ""]))
            ),
        }
    )
    return maybe(
        {
            "metadata": maybe({"name": maybe("p"), "namespace": maybe("ns"), "annotations": annotations}),
            "spec": maybe({"containers": maybe(containers), "initContainers": maybe(containers[:1])}),
        }
    )


@st.composite
def extender_args(draw: st.DrawFn) -> Any:
    def maybe(value: Any) -> Any:
        return draw(json_value) if draw(st.integers(0, 4)) == 0 else value

    doc: dict[str, Any] = {"Pod": draw(pods())}
    form = draw(st.sampled_from(["names", "nodes", "both", "neither"]))
    names = [draw(st.sampled_from(NODES)) for _ in range(draw(st.integers(0, 5)))]
    if form in ("names", "both"):
        doc["NodeNames"] = maybe([maybe(n) for n in names])
    if form in ("nodes", "both"):
        doc["Nodes"] = maybe(
            {
                "metadata": maybe({}),
                "items": maybe([maybe({"metadata": maybe({"name": maybe(n)})}) for n in names]),
            }
        )
    if draw(st.booleans()):  # Go decodes keys case-insensitively; so does the extender
        doc = {(k.lower() if draw(st.booleans()) else k): v for k, v in doc.items()}
    return maybe(doc)


def _nested(depth: int) -> bytes:
    return b'{"Pod":' + b"[" * depth + b"]" * depth + b"}"


bodies = st.one_of(
    extender_args().map(orjson.dumps),
    json_value.map(orjson.dumps),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(1, 5000).map(_nested),
    st.sampled_from([b"", b" ", b"null", b"{}", b"[]", b'{"Pod": {}}', b"\xff\xfe", GOOD[: len(GOOD) // 2]]),
    st.integers(1, 40).map(lambda k: b'{"Pod": {}, "NodeNames": ["' + b"n" * (k * 25_000) + b'"]}'),
)

VERBS = ["/filter", "/prioritize", "/debug/explain", "/debug/whatif"]


class _Harness:
    """One server for the whole module, driven from synchronous hypothesis tests. A plain client
    session (aiohttp's TestClient keeps every response until it closes: a long run would grow)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server, self.session = self.loop.run_until_complete(self._start())

    @staticmethod
    async def _start() -> tuple[TestServer, aiohttp.ClientSession]:
        features = FileFeatures(EXAMPLES / "nodefeatures")
        specs = FileSpecs(EXAMPLES / "images.yaml")
        await features.refresh()
        await specs.refresh()
        server = TestServer(build_app(features, specs, AppSettings(max_body_bytes=MAX_BODY)))
        await server.start_server()
        return server, aiohttp.ClientSession()

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, str]:
        async def go() -> tuple[int, bytes, str]:
            data = io.BytesIO(body) if body is not None and len(body) > 1 << 16 else body
            async with self.session.request(method, self.server.make_url(path), data=data) as r:
                return r.status, await r.read(), r.content_type

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.run_until_complete(self.server.close())
        self.loop.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[_Harness]:
    h = _Harness()
    yield h
    h.close()


def _check(status: int, payload: bytes, content_type: str, path: str) -> None:
    assert status < 500, (path, status, payload[:300])
    assert status in (200, 400, 404, 413), (path, status, payload[:300])
    if path in ("/filter", "/prioritize"):
        assert content_type == "application/json", (path, status, content_type)
        doc = orjson.loads(payload)
        if status == 200:
            assert isinstance(doc, dict if path == "/filter" else list)


FUZZ = settings(
    max_examples=examples(1000),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@FUZZ
@given(path=st.sampled_from(VERBS), body=bodies)
def test_any_body_gets_a_deliberate_answer(harness: _Harness, path: str, body: bytes) -> None:
    _check(*harness.request("POST", path, body), path)


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(["image", "node", "tags", "format", "x"]),
        st.one_of(st.sampled_from(IMAGES + NODES + ["text", "json", "yaml"]), st.text(max_size=30)),
        max_size=4,
    )
)
def test_any_query_gets_a_deliberate_answer(harness: _Harness, query: dict[str, str]) -> None:
    path = "/debug/explain?" + urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
    status, payload, _ = harness.request("GET", path)
    assert status in (200, 400, 404), (query, status, payload[:300])


def test_oversized_and_still_serving(harness: _Harness) -> None:
    status, payload, _ = harness.request("POST", "/filter", b"[" + b" " * (MAX_BODY + 10) + b"]")
    assert status == 413 and b"maxBodyBytes" in payload
    status, payload, _ = harness.request("POST", "/filter", GOOD)
    assert status == 200 and orjson.loads(payload) == GOOD_ANSWER


def test_whatif_with_hostile_nodefeature(harness: _Harness) -> None:
    body = {
        "nodeFeature": {"features": {"flags": {"f": {"elements": {str(i): {} for i in range(20000)}}}}},
        "images": IMAGES,
    }
    status, _, _ = harness.request("POST", "/debug/whatif", orjson.dumps(body))
    assert status in (200, 400)
    status, payload, _ = harness.request("POST", "/filter", GOOD)
    assert status == 200 and orjson.loads(payload) == GOOD_ANSWER


def test_server_survives_a_fuzz_run(harness: _Harness) -> None:
    # runs after the fuzz tests in this module: the server still gives the stored answer
    status, payload, _ = harness.request("POST", "/filter", GOOD)
    assert status == 200 and orjson.loads(payload) == GOOD_ANSWER
