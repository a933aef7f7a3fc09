"""The command line on multi-arch images: ``discover`` shows every platform of an index and which
artifact judges it, ``attach --platform`` puts an artifact on one platform's manifest, and
``validate-node --image`` judges a host by the variant for its platform. Against the registry
stand-in (referrers API, tests/oci_registry.py) and Debian's registry (distribution 2.8: the
tag-schema fallback): an index with per-platform artifacts, with an index-level one, with both
(the platform's own wins), and a platform the index lacks. The rule: docs/multi-arch.md."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from extender.cli.main import main
from extender.cli.validate import host_platform
from extender.features.nodefeature import NodeFeatures
from extender.sources.registry.client import RegistryClient
from extender.sources.registry.transport import AiohttpTransport
from extender.spec.parse import parse_spec
from tests.distribution import Distribution
from tests.fake_host import FakeHost, intel_host
from tests.oci_images import push_index
from tests.oci_registry import FakeRegistry, serve_registry

AMD64, ARM64, S390X = "linux/amd64/v1", "linux/arm64/v8", "linux/s390x"


def _needs(flag: str) -> bytes:
    return (
        f"version: v1alpha1\ncompatibilities:\n- description: needs {flag}\n  rules:\n"
        f"  - name: {flag.lower()}\n    matchFeatures:\n    - feature: cpu.cpuid\n"
        f"      matchExpressions: {{{flag}: {{op: Exists}}}}\n"
    ).encode()


AVX512 = _needs("AVX512F")  # the amd64 build's own
SVE = _needs("SVE")  # the arm64 build's own
COMMON = _needs("SSE2")  # on the index: an x86 baseline, so an arm64 node judged by it fails

#: scenario -> (the index's artifact, the children's by architecture, what each platform is judged by)
CASES: dict[str, tuple[bytes | None, dict[str, bytes], dict[str, tuple[str, bytes]]]] = {
    "per-platform": (
        None,
        {"amd64": AVX512, "arm64": SVE},
        {AMD64: ("platform", AVX512), ARM64: ("platform", SVE)},
    ),
    "index": (COMMON, {}, {AMD64: ("index", COMMON), ARM64: ("index", COMMON)}),
    "both": (COMMON, {"arm64": SVE}, {AMD64: ("index", COMMON), ARM64: ("platform", SVE)}),
    "every-platform-its-own": (
        COMMON,
        {"amd64": AVX512, "arm64": SVE},
        {AMD64: ("platform", AVX512), ARM64: ("platform", SVE)},
    ),
}


def features_file(directory: Path, name: str, *flags: str) -> str:
    """A bare features map (``nfd export features``) with these cpu.cpuid flags."""
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"flags": {"cpu.cpuid": {"elements": {f: {} for f in flags}}}}))
    return str(path)


@dataclass
class Images:
    """A multi-arch image as pushed: its reference, the index's digest, the children's by
    architecture, and the artifacts by the digest of what they refer to."""

    image: str
    index: str
    children: dict[str, str]
    artifacts: dict[str, str]

    def manifest(self, platform: str) -> str:
        return self.children[platform.split("/")[1]]


# -- the registry stand-in (referrers API) ----------------------------------------------------------


@dataclass
class Standin:
    registry: FakeRegistry
    host: str

    def push(self, repo: str, on_index: bytes | None, on_children: dict[str, bytes]) -> Images:
        children = {
            arch: self.registry.put_image(repo, platform=f"linux/{arch}", layer=f"{repo} {arch}".encode())
            for arch in ("amd64", "arm64")
        }
        index = self.registry.put_index(repo, list(children.values()), "multi")
        artifacts = {}
        if on_index is not None:
            artifacts[index] = self.registry.put_artifact(repo, index, on_index)
        for arch, spec in on_children.items():
            artifacts[children[arch]] = self.registry.put_artifact(repo, children[arch], spec)
        return Images(f"{self.host}/{repo}:multi", index, children, artifacts)


@pytest.fixture
async def standin() -> AsyncIterator[Standin]:
    registry = FakeRegistry()
    async with serve_registry(registry) as base:
        yield Standin(registry, base.removeprefix("http://"))


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command in a thread (it runs an event loop of its own) while this loop serves."""
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def judged(doc: dict[str, Any], platform: str) -> tuple[str, str | None, str | None]:
    """(origin, artifact, spec digest) of one platform in discover's JSON."""
    v = doc["platforms"][platform]
    return v["origin"], v["artifact"], v["spec"]["digest"] if v["spec"] else None


@pytest.mark.parametrize("case", sorted(CASES))
async def test_discover_shows_every_platform_and_what_judges_it(
    standin: Standin, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    on_index, on_children, expected = CASES[case]
    pushed = standin.push(f"discover/{case}", on_index, on_children)
    code, out, _ = await cli(capsys, "discover", "--image", pushed.image, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["multiArch"] is True and doc["digest"] == pushed.index
    assert doc["indexPlatforms"] == [AMD64, ARM64] and list(doc["platforms"]) == [AMD64, ARM64]
    used: set[str] = set()
    for platform, (origin, spec) in expected.items():
        subject = pushed.manifest(platform) if origin == "platform" else pushed.index
        artifact = pushed.artifacts[subject]
        assert judged(doc, platform) == (origin, artifact, parse_spec(spec).digest), platform
        assert doc["platforms"][platform]["manifest"] == pushed.manifest(platform)
        assert doc["platforms"][platform]["subject"] == subject
        used.add(artifact)
    # the referrers of the index and of both children were read, once each; the used ones marked
    listings = {x["subject"]: x for x in doc["listings"]}
    assert list(listings) == [pushed.index, pushed.children["amd64"], pushed.children["arm64"]]
    assert (
        listings[pushed.children["arm64"]]["platform"] == ARM64 and listings[pushed.index]["platform"] is None
    )
    assert {r["digest"] for x in doc["listings"] for r in x["referrers"]} == set(pushed.artifacts.values())
    assert {r["digest"] for x in doc["listings"] for r in x["referrers"] if r["used"]} == used
    assert doc["used"] == (
        None if on_index is None else {"digest": pushed.artifacts[pushed.index], "subject": pushed.index}
    )

    code, text, _ = await cli(capsys, "discover", "--image", pushed.image)
    assert code == 0 and f"-> {pushed.index} (a multi-arch index of {AMD64}, {ARM64})" in text
    origin, spec = expected[ARM64]
    where = {
        "platform": "the platform manifest's own artifact",
        "index": "the index's artifact (the platform manifest has none)",
    }[origin]
    arm = pushed.children["arm64"]
    artifact = pushed.artifacts[arm if origin == "platform" else pushed.index]
    arm_line = (
        f"  {ARM64}: {where}, artifact {artifact}, manifest {arm}: "
        f"1 compatibility set(s), spec {parse_spec(spec).digest}"
    )
    assert arm_line in text.splitlines(), text
    unused = f"the index's own artifact {pushed.artifacts.get(pushed.index)} judges none of these platforms"
    assert (unused in text) == (case == "every-platform-its-own")


async def test_discover_platform_narrows_and_a_missing_platform_is_said(
    standin: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed = standin.push("discover/narrow", None, {"arm64": SVE})
    code, out, _ = await cli(
        capsys, "discover", "--image", pushed.image, "--platform", "linux/arm64", "--json"
    )
    doc = json.loads(out)
    assert code == 0 and list(doc["platforms"]) == [ARM64]
    assert [x["subject"] for x in doc["listings"]] == [pushed.index, pushed.children["arm64"]]
    # amd64's manifest has no artifact, nor has the index: nothing judges that platform
    code, out, _ = await cli(
        capsys, "discover", "--image", pushed.image, "--platform", "linux/amd64", "--json"
    )
    doc = json.loads(out)
    assert code == 1 and judged(doc, AMD64) == ("none", None, None)
    code, out, _ = await cli(capsys, "discover", "--image", pushed.image, "--platform", "linux/amd64")
    assert code == 1 and f"{AMD64}: no artifact on the index or the platform manifest: nothing to meet" in out
    # a platform the index lacks
    code, out, _ = await cli(
        capsys, "discover", "--image", pushed.image, "--platform", "linux/s390x", "--json"
    )
    doc = json.loads(out)
    assert code == 1 and doc["platforms"] == {S390X: None} and doc["indexPlatforms"] == [AMD64, ARM64]
    code, out, _ = await cli(capsys, "discover", "--image", pushed.image, "--platform", "linux/s390x")
    assert (
        code == 1
        and f"  {S390X}: the index has no manifest for it: a node of this platform cannot pull" in out
    )
    # an image that is not an index: its one artifact (none here) for every platform
    plain = f"{standin.host}/discover/narrow@{pushed.children['arm64']}"
    code, out, _ = await cli(capsys, "discover", "--image", plain, "--platform", "linux/s390x", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["multiArch"] is False and doc["platforms"] is None
    assert doc["used"] == {
        "digest": pushed.artifacts[pushed.children["arm64"]],
        "subject": pushed.children["arm64"],
    }
    # without --platform: an artifact somewhere (arm64's) is found
    assert (await cli(capsys, "discover", "--image", pushed.image))[0] == 0
    code, _, err = await cli(capsys, "discover", "--image", pushed.image, "--platform", "arm64")
    assert code == 2 and "os/arch" in err


async def test_discover_an_index_without_any_artifact(
    standin: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed = standin.push("discover/bare", None, {})
    code, out, _ = await cli(capsys, "discover", "--image", pushed.image)
    assert code == 1 and "no image compatibility artifact" in out
    amd = pushed.children["amd64"]
    assert (
        f"  {AMD64}: no artifact on the index or the platform manifest: nothing to meet, manifest {amd}"
        in (out.splitlines())
    )


async def test_attach_platform_puts_the_artifact_on_that_platforms_manifest(
    standin: Standin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed = standin.push("attach/multi", COMMON, {})
    spec = tmp_path / "sve.yaml"
    spec.write_bytes(SVE)
    arm = pushed.children["arm64"]
    code, out, _ = await cli(
        capsys, "attach", "--image", pushed.image, "--spec", str(spec), "--platform", "linux/arm64"
    )
    assert code == 0, out
    artifact = out.split()[1]
    assert out.startswith(
        f"attached {artifact} to {standin.host}/attach/multi@{arm} "
        f"({ARM64} manifest of the index {pushed.index}): the registry indexed it"
    )
    assert [d["digest"] for d in standin.registry.referrers("attach/multi", arm)] == [artifact]
    code, out, _ = await cli(capsys, "discover", "--image", pushed.image, "--json")
    doc = json.loads(out)
    assert judged(doc, ARM64) == ("platform", artifact, parse_spec(SVE).digest)  # its own wins now
    assert judged(doc, AMD64)[0] == "index"

    before = len(standin.registry.requests_to("manifests", "PUT"))
    code, _, err = await cli(
        capsys, "attach", "--image", pushed.image, "--spec", str(spec), "--platform", "linux/s390x"
    )
    assert code == 2 and f"has no {S390X} child (it has: {AMD64}, {ARM64})" in err
    plain = f"{standin.host}/attach/multi@{pushed.children['amd64']}"
    code, _, err = await cli(
        capsys, "attach", "--image", plain, "--spec", str(spec), "--platform", "linux/amd64"
    )
    assert code == 2 and "not a multi-arch image index" in err
    code, _, err = await cli(
        capsys, "attach", "--image", pushed.image, "--spec", str(spec), "--platform", "amd64"
    )
    assert code == 2 and "os/arch" in err
    assert len(standin.registry.requests_to("manifests", "PUT")) == before  # nothing pushed by those
    # without --platform: the index, as before
    code, out, _ = await cli(capsys, "attach", "--image", pushed.image, "--spec", str(spec))
    assert code == 0 and f"@{pushed.index}: " in out


#: node -> its cpu.cpuid flags (a bare features map each)
NODES = {
    "x-avx512": ("SSE2", "CMOV", "AVX512F"),
    "x-old": ("SSE2", "CMOV"),
    "a-sve": ("ASIMD", "FP", "SVE"),
    "a-old": ("ASIMD", "FP"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_validate_node_judges_the_node_by_its_platforms_variant(
    standin: Standin, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Each node's platform is told from its features (x86-64 or arm64 flags) and it is judged by
    that platform's variant: the same verdict the spec of that variant gives, nothing else's."""
    on_index, on_children, expected = CASES[case]
    pushed = standin.push(f"validate/{case}", on_index, on_children)
    for node, flags in NODES.items():
        platform = AMD64 if "SSE2" in flags else ARM64
        origin, spec = expected[platform]
        needed = spec.split(b"name: ")[1].split(b"\n")[0].decode().upper()  # avx512f, sve, sse2
        want = 0 if any(f.upper() == needed for f in flags) else 1
        features = features_file(tmp_path, node, *flags)
        code, out, _ = await cli(
            capsys, "validate-node", "--image", pushed.image, "--features", features, "--json"
        )
        doc = json.loads(out)
        assert code == want and doc["compatible"] is (want == 0), (node, doc)
        subject = pushed.manifest(platform) if origin == "platform" else pushed.index
        assert doc["platform"]["key"] == platform and doc["platform"]["from"].startswith(
            "told from the features"
        )
        assert doc["variant"] == {
            "origin": origin,
            "manifest": pushed.manifest(platform),
            "artifact": pushed.artifacts[subject],
            "spec": parse_spec(spec).digest,
        }
        assert doc["spec"]["digest"] == parse_spec(spec).digest
        code, out, _ = await cli(capsys, "validate-node", "--image", pushed.image, "--features", features)
        assert code == want
        assert f"judged by {platform}: " in out and f"artifact {pushed.artifacts[subject]}" in out


async def test_validate_node_platform_overrides_and_a_missing_platform_is_incompatible(
    standin: Standin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed = standin.push("validate/override", COMMON, {"arm64": SVE})
    x86 = features_file(tmp_path, "x-old", *NODES["x-old"])
    assert (await cli(capsys, "validate-node", "--image", pushed.image, "--features", x86))[
        0
    ] == 0  # by the index's
    # judged as an arm64 node would be: by arm64's own (SVE), which this x86 node lacks
    code, out, _ = await cli(
        capsys,
        "validate-node",
        "--image",
        pushed.image,
        "--features",
        x86,
        "--platform",
        "linux/arm64",
        "--json",
    )
    doc = json.loads(out)
    assert code == 1 and doc["platform"] == {"key": ARM64, "from": "--platform"}
    assert doc["variant"]["origin"] == "platform" and doc["spec"]["digest"] == parse_spec(SVE).digest
    # a platform the index lacks: this node cannot even pull the image
    code, out, _ = await cli(
        capsys,
        "validate-node",
        "--image",
        pushed.image,
        "--features",
        x86,
        "--platform",
        "linux/s390x",
        "--json",
    )
    doc = json.loads(out)
    assert code == 1 and doc["compatible"] is False and doc["variant"] is None and doc["spec"] is None
    assert doc["message"] == (
        f"image {pushed.image}: the image index has no {S390X} variant "
        "(the kubelet could not pull it on this node)"
    )
    code, out, _ = await cli(
        capsys, "validate-node", "--image", pushed.image, "--features", x86, "--platform", "linux/s390x"
    )
    assert (
        code == 1
        and f"has no {S390X} variant (the kubelet could not pull it on this node): INCOMPATIBLE" in out
    )
    # a platform whose manifest has no artifact, on an index without one: nothing to meet
    bare = standin.push("validate/arm-only", None, {"arm64": SVE})
    code, out, _ = await cli(capsys, "validate-node", "--image", bare.image, "--features", x86, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["compatible"] is True and doc["variant"]["origin"] == "none"
    assert (
        doc["message"]
        == f"image {bare.image} has no compatibility spec for {AMD64}: it imposes nothing on this node"
    )


async def test_validate_node_on_the_live_host_tells_its_platform_from_discovery(
    standin: Standin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The host's discovered cpu.cpuid flags (a fake Sapphire Rapids host here) tell amd64, whatever
    machine runs the test."""
    intel_host(FakeHost.at(tmp_path, "host-"))
    pushed = standin.push("validate/live", COMMON, {"arm64": SVE})
    code, out, _ = await cli(
        capsys, "validate-node", "--image", pushed.image, "--host-prefix", f"{tmp_path}/host-", "--json"
    )
    doc = json.loads(out)
    assert (
        code == 0
        and doc["platform"]["key"] == AMD64
        and doc["platform"]["from"].startswith("told from the features")
    )
    assert doc["variant"]["origin"] == "index" and doc["spec"]["digest"] == parse_spec(COMMON).digest


def test_host_platform_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """--platform, else the features, else (live) this machine's architecture, else registry.platform."""
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    nothing = NodeFeatures(node="n")
    x86 = NodeFeatures(node="n", flags={"cpu.cpuid": frozenset({"SSE2"})})
    assert host_platform("linux/arm64", x86, True, "linux/amd64") == (ARM64, "--platform")
    assert host_platform(None, x86, True, "linux/s390x")[0] == AMD64  # the features win over the machine
    assert host_platform(None, nothing, True, "linux/s390x") == (
        ARM64,
        "this machine's architecture (aarch64)",
    )
    assert host_platform(None, nothing, False, "linux/s390x")[0] == S390X  # a --features file: the default
    monkeypatch.setattr("platform.machine", lambda: "")
    assert host_platform(None, nothing, True, "linux/s390x")[0] == S390X


# -- Debian's registry (distribution 2.8: no referrers API, the tag-schema fallback) -----------------

_names = itertools.count()


def push_multi(d: Distribution) -> Images:
    """A linux/amd64 + linux/arm64 index, nothing attached yet."""

    async def push() -> Images:
        transport = AiohttpTransport()
        try:
            name = f"{d.host}/multi/app{next(_names)}"
            index, children = await push_index(RegistryClient(transport), name, "multi")
            return Images(f"{name}:multi", index.digest, {a: p.digest for a, p in children.items()}, {})
        finally:
            await transport.close()

    return asyncio.run(push())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def spec_file(directory: Path, name: str, spec: bytes) -> str:
    path = directory / f"{name}.yaml"
    path.write_bytes(spec)
    return str(path)


def test_attach_platform_and_discover_through_the_tag_schema(
    distribution: Distribution, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed = push_multi(distribution)
    arm, amd = pushed.children["arm64"], pushed.children["amd64"]
    sve, common = spec_file(tmp_path, "sve", SVE), spec_file(tmp_path, "common", COMMON)
    # per platform: arm64's manifest only
    code, out, _ = run(capsys, "attach", "--image", pushed.image, "--spec", sve, "--platform", "linux/arm64")
    assert (
        code == 0
        and f"@{arm} ({ARM64} manifest of the index {pushed.index}): added to the referrers tag-schema" in out
    )
    on_arm = out.split()[1]
    code, out, _ = run(capsys, "discover", "--image", pushed.image, "--json")
    doc = json.loads(out)
    assert code == 0 and judged(doc, ARM64) == ("platform", on_arm, parse_spec(SVE).digest)
    assert judged(doc, AMD64) == ("none", None, None)
    assert {x["subject"]: x["via"] for x in doc["listings"]} == {
        pushed.index: "tag-schema",
        amd: "tag-schema",
        arm: "tag-schema",
    }
    code, out, _ = run(capsys, "discover", "--image", pushed.image, "--platform", "linux/amd64")
    assert code == 1 and f"{AMD64}: no artifact on the index or the platform manifest: nothing to meet" in out

    # and one on the index: amd64 is judged by it, arm64 still by its own (the platform's wins)
    code, out, _ = run(capsys, "attach", "--image", pushed.image, "--spec", common)
    assert code == 0 and f"@{pushed.index}: added to the referrers tag-schema index" in out
    on_index = out.split()[1]
    code, out, _ = run(capsys, "discover", "--image", pushed.image, "--json")
    doc = json.loads(out)
    assert code == 0 and judged(doc, ARM64) == ("platform", on_arm, parse_spec(SVE).digest)
    assert judged(doc, AMD64) == ("index", on_index, parse_spec(COMMON).digest)
    assert doc["used"] == {"digest": on_index, "subject": pushed.index}

    # a platform the index lacks
    code, out, _ = run(capsys, "discover", "--image", pushed.image, "--platform", "linux/s390x", "--json")
    assert code == 1 and json.loads(out)["platforms"] == {S390X: None}
    code, _, err = run(capsys, "attach", "--image", pushed.image, "--spec", sve, "--platform", "linux/s390x")
    assert code == 2 and f"has no {S390X} child (it has: {AMD64}, {ARM64})" in err


def test_validate_node_through_the_tag_schema(
    distribution: Distribution, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed = push_multi(distribution)
    arm = pushed.children["arm64"]
    code, out, _ = run(
        capsys,
        "attach",
        "--image",
        pushed.image,
        "--spec",
        spec_file(tmp_path, "sve", SVE),
        "--platform",
        "linux/arm64",
    )
    assert code == 0
    on_arm = out.split()[1]
    code, out, _ = run(
        capsys, "attach", "--image", pushed.image, "--spec", spec_file(tmp_path, "common", COMMON)
    )
    assert code == 0
    on_index = out.split()[1]
    features = {node: features_file(tmp_path, node, *flags) for node, flags in NODES.items()}

    code, out, _ = run(capsys, "validate-node", "--image", pushed.image, "--features", features["a-sve"])
    assert (
        code == 0
        and f"judged by {ARM64}: the platform manifest's own artifact\n"
        f"  artifact {on_arm}\n  manifest {arm}\n"
        in out
    )
    code, out, _ = run(
        capsys, "validate-node", "--image", pushed.image, "--features", features["a-old"], "--json"
    )
    doc = json.loads(out)
    assert code == 1 and doc["variant"] == {
        "origin": "platform",
        "manifest": arm,
        "artifact": on_arm,
        "spec": parse_spec(SVE).digest,
    }
    code, out, _ = run(
        capsys, "validate-node", "--image", pushed.image, "--features", features["x-old"], "--json"
    )
    doc = json.loads(out)
    assert code == 0 and doc["variant"]["origin"] == "index" and doc["variant"]["artifact"] == on_index
    code, out, _ = run(
        capsys,
        "validate-node",
        "--image",
        pushed.image,
        "--features",
        features["x-old"],
        "--platform",
        "linux/s390x",
    )
    assert code == 1 and f"has no {S390X} variant" in out and "INCOMPATIBLE" in out
