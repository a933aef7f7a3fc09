"""The bundled examples (examples/): well-formed NodeFeature objects in NFD's own value formats, an
image mapping whose every entry resolves, specs that parse cleanly, and the verdict table, computed with
both matchers and checked against examples/README.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from extender.decide import decide
from extender.features.nodefeature import (
    API_VERSION,
    DEFAULT_NFD_NAMESPACE,
    NODE_NAME_LABEL,
    NodeFeatures,
    node_features_from_objects,
    parse_nodefeature,
)
from extender.match.evaluate import evaluate
from extender.match.result import SpecEvaluation, Status
from extender.match.table import FeatureTable
from extender.sources.files import FileFeatures, FileSpecs
from extender.spec.model import Spec
from extender.spec.parse import parse_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NODEFEATURES = EXAMPLES / "nodefeatures"
IMAGES = EXAMPLES / "images.yaml"
README = EXAMPLES / "README.md"

CUDA = "registry.example.com/ml/cuda-train:12.4"
ROCM = "registry.example.com/ml/rocm-pytorch:6.2"
DPDK = "registry.example.com/telco/dpdk-app:23.11"
HPC = "registry.example.com/hpc/cfd-solver:2024.2"
SEED_ARTICLE = "registry.example.com/seeds/article-a100-vfio:v1"
SEED_DOCS = "registry.example.com/seeds/nfd-docs-example:v1"
GENOMICS = "registry.example.com/hpc/genomics-align:3.1"

NODES = frozenset(
    {
        "gpu-a100-01",
        "gpu-a100-nodriver-01",
        "gpu-a100-rhel-01",
        "gpu-h100-01",
        "gpu-h100-vfio-01",
        "gpu-mi300-01",
        "dpdk-e810-01",
        "dpdk-cx7-01",
        "cpu-epyc-rome-01",
        "cpu-spr-01",
        "edge-old-01",
        "arm-ampere-01",
    }
)

#: image -> {node where at least one set MATCHES: the highest weight among the matching sets}
EXPECTED: dict[str, dict[str, int]] = {
    CUDA: {"gpu-h100-01": 10, "gpu-a100-01": 5, "gpu-a100-rhel-01": 1, "edge-old-01": 1},
    ROCM: {"gpu-mi300-01": 10},
    DPDK: {"dpdk-e810-01": 0, "dpdk-cx7-01": 0},
    HPC: {
        "cpu-spr-01": 10,
        "gpu-h100-01": 10,
        "gpu-h100-vfio-01": 10,
        "dpdk-cx7-01": 6,
        "dpdk-e810-01": 6,
        "gpu-a100-01": 6,
        "gpu-a100-nodriver-01": 6,
        "gpu-mi300-01": 6,
        "cpu-epyc-rome-01": 2,
        "edge-old-01": 2,
        "gpu-a100-rhel-01": 2,
    },
    SEED_ARTICLE: {},
    SEED_DOCS: {},
}

#: image -> {node: indexes of the sets that are evaluation ERRORs there}. The only one: cuda-train
#: compares kernel.version.full with `type: version`, and RHEL's kernel string is not semver.
EXPECTED_ERRORS: dict[str, dict[str, tuple[int, ...]]] = {CUDA: {"gpu-a100-rhel-01": (0, 1)}}

#: Spec warnings that are intended (image -> number of warnings). None: every bundled spec is clean.
INTENDED_WARNINGS: dict[str, int] = {}

HEX4 = re.compile(r"^[0-9a-f]{4}$")
# How NFD derives kernel.version.{major,minor,revision} and VERSION_ID.{major,minor} (source/kernel
# and source/system): leading numeric components, missing ones empty.
KERNEL_PARTS = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-.*)?$")
OS_VERSION_PARTS = re.compile(r"^(\d+)(?:\.(\d+))?(?:\..*)?$")


def nodefeature_files() -> list[Path]:
    return sorted(NODEFEATURES.glob("*.yaml"))


def load_object(path: Path) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert len(docs) == 1, f"{path.name}: expected exactly one YAML document"
    obj = docs[0]
    assert isinstance(obj, dict), f"{path.name}: not a mapping"
    return obj


def _images() -> dict[str, Any]:
    doc = yaml.safe_load(IMAGES.read_text(encoding="utf-8"))
    assert isinstance(doc, dict) and set(doc) == {"images"}
    images = doc["images"]
    assert isinstance(images, dict)
    return images


def image_map() -> dict[str, str]:
    """The images with one spec (for every platform)."""
    return {str(k): str(v) for k, v in _images().items() if not isinstance(v, dict)}


def multi_arch_map() -> dict[str, dict[str, str]]:
    """The multi-arch images: platform -> spec file."""
    return {
        str(k): {str(p): str(f) for p, f in v["platforms"].items()}
        for k, v in _images().items()
        if isinstance(v, dict)
    }


def load_spec(image: str) -> Spec:
    return parse_spec((EXAMPLES / image_map()[image]).read_bytes())


@pytest.fixture(scope="module")
def features() -> dict[str, NodeFeatures]:
    return node_features_from_objects(load_object(p) for p in nodefeature_files())


@pytest.fixture(scope="module")
def table(features: dict[str, NodeFeatures]) -> FeatureTable:
    return FeatureTable.from_features(features.values())


# ---------------------------------------------------------------------------------------------------
# NodeFeature files


def test_twelve_nodes_named_after_their_files() -> None:
    files = nodefeature_files()
    assert {p.stem for p in files} == NODES
    assert sorted(p.name for p in NODEFEATURES.iterdir()) == sorted(p.name for p in files)


@pytest.mark.parametrize("path", nodefeature_files(), ids=lambda p: p.stem)
def test_nodefeature_file_is_an_api_server_object(path: Path) -> None:
    size = path.stat().st_size
    assert 2_000 <= size <= 30_000, f"{path.name}: {size} bytes"
    obj = load_object(path)
    node = path.stem
    assert obj["apiVersion"] == API_VERSION
    assert obj["kind"] == "NodeFeature"
    assert obj["metadata"] == {
        "name": node,
        "namespace": DEFAULT_NFD_NAMESPACE,
        "labels": {NODE_NAME_LABEL: node},
    }
    parsed = parse_nodefeature(obj)  # also checks that every leaf value is a string
    assert (parsed.node, parsed.name, parsed.namespace) == (node, node, DEFAULT_NFD_NAMESPACE)


@pytest.mark.parametrize("path", nodefeature_files(), ids=lambda p: p.stem)
def test_nodefeature_values_use_nfd_formats(path: Path) -> None:
    f = parse_nodefeature(load_object(path)).features
    node = path.stem

    assert 15 <= len(f.flags["cpu.cpuid"]) <= 65
    modules = f.flags["kernel.loadedmodule"]
    assert 20 <= len(modules) <= 45
    # /proc/modules never shows '-' in a module name (the kernel turns it into '_')
    assert not [m for m in modules if "-" in m]

    model = f.attributes["cpu.model"]
    assert model["vendor_id"] in {"Intel", "AMD", "ARM"}
    assert model["family"].isdigit() and model["id"].isdigit()

    kv = f.attributes["kernel.version"]
    m = KERNEL_PARTS.match(kv["full"])
    assert m is not None
    assert (kv["major"], kv["minor"], kv["revision"]) == tuple(g or "" for g in m.groups())

    osr = f.attributes["system.osrelease"]
    m = OS_VERSION_PARTS.match(osr["VERSION_ID"])
    assert m is not None and osr["ID"]
    assert osr["VERSION_ID.major"] == m[1]
    assert osr.get("VERSION_ID.minor") == m[2]  # absent, not empty, when there is no minor

    assert f.attributes["system.name"] == {"nodename": node}
    numa = f.attributes["memory.numa"]
    assert numa["is_numa"] == ("true" if int(numa["node_count"]) > 1 else "false")
    assert f.attributes["memory.hugepages"]["enabled"] in {"true", "false"}
    assert f.attributes["kernel.config"]

    devices = f.instances["pci.device"]
    assert devices
    for dev in devices:
        for key in ("class", "vendor", "device", "subsystem_vendor", "subsystem_device"):
            assert HEX4.match(dev[key]), f"{node}: pci.device {key}={dev[key]!r}"
        if "sriov_totalvfs" in dev:
            assert dev["sriov_totalvfs"].isdigit()
    assert f.instances["network.device"]


# ---------------------------------------------------------------------------------------------------
# Image mapping and specs


def test_image_map_points_at_every_spec_once() -> None:
    images = image_map()
    assert set(images) == set(EXPECTED)
    assert set(multi_arch_map()) == set(EXPECTED_MULTI_ARCH)
    targets = list(images.values()) + [f for m in multi_arch_map().values() for f in m.values()]
    assert len(set(targets)) == len(targets), "one spec per image"
    for image, rel in images.items():
        assert not Path(rel).is_absolute()
        assert (EXAMPLES / rel).is_file(), f"{image}: {rel} does not exist"
    on_disk = {p.relative_to(EXAMPLES).as_posix() for p in (EXAMPLES / "specs").glob("*.yaml")}
    assert on_disk == set(targets), "every spec file is mapped"


@pytest.mark.parametrize("image", sorted(EXPECTED))
def test_spec_parses_without_warnings(image: str) -> None:
    spec = load_spec(image)
    assert spec.compatibilities
    assert len(spec.warnings) == INTENDED_WARNINGS.get(image, 0), [str(w) for w in spec.warnings]


# ---------------------------------------------------------------------------------------------------
# Verdicts


def best_weights(spec: Spec, ev: SpecEvaluation) -> dict[str, int]:
    out: dict[str, int] = {}
    for row, node in enumerate(ev.nodes):
        weights = [
            spec.compatibilities[idx].weight
            for col, idx in enumerate(ev.set_indexes)
            if ev.status[row, col] == Status.MATCHED
        ]
        if weights:
            out[node] = max(weights)
    return out


def error_cells(ev: SpecEvaluation) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for row, node in enumerate(ev.nodes):
        cols = tuple(idx for col, idx in enumerate(ev.set_indexes) if ev.status[row, col] == Status.ERROR)
        if cols:
            out[node] = cols
    return out


@pytest.mark.parametrize("image", sorted(EXPECTED))
def test_verdicts(image: str, table: FeatureTable) -> None:
    spec = load_spec(image)
    vec = evaluate(spec, table, use_cache=False)
    ref = evaluate(spec, table, implementation="reference")
    assert set(vec.nodes) == NODES and bool(vec.known.all())
    assert vec.nodes == ref.nodes
    assert np.array_equal(vec.status, ref.status), "the vectorized matcher disagrees with the reference"
    assert best_weights(spec, vec) == EXPECTED[image]
    assert error_cells(vec) == EXPECTED_ERRORS.get(image, {})
    assert error_cells(ref) == EXPECTED_ERRORS.get(image, {})
    # the per-node answer the decision layer uses agrees with the per-set matrix
    assert {n for n, hit in zip(vec.nodes, vec.any_matched().tolist(), strict=True) if hit} == set(
        EXPECTED[image]
    )


def test_rhel_kernel_is_not_a_version(table: FeatureTable) -> None:
    ev = evaluate(load_spec(CUDA), table, ["gpu-a100-rhel-01"], implementation="reference")
    errors = [r.error for r in ev.node_results("gpu-a100-rhel-01") if r.status == Status.ERROR]
    assert len(errors) == 2
    assert all("5.14.0-427.13.1.el9_4.x86_64" in e for e in errors)


def test_tags_select_sets(table: FeatureTable) -> None:
    spec = load_spec(CUDA)
    ev = evaluate(spec, table, tags=["a100"])
    assert best_weights(spec, ev) == {"gpu-a100-01": 5}
    ev = evaluate(spec, table, tags=["h100", "a100"])
    assert best_weights(spec, ev) == {"gpu-h100-01": 10, "gpu-a100-01": 5}


def test_article_seed_fails_only_because_of_its_mistakes(table: FeatureTable) -> None:
    text = (EXAMPLES / image_map()[SEED_ARTICLE]).read_text(encoding="utf-8")
    # dropping "0x" alone is not enough: the module name and the GPU class are wrong too
    no_prefix = parse_spec(text.replace('"0x10de"', '"10de"').replace('"0x0300"', '"0300"').encode())
    assert best_weights(no_prefix, evaluate(no_prefix, table)) == {}
    fixed_text = (
        text.replace("vfio-pci: {op: Exists}", "vfio_pci: {op: Exists}")
        .replace('"0x10de"', '"10de"')
        .replace('"0x0300"', '"0302"')
    )
    fixed = parse_spec(fixed_text.encode())
    assert fixed.warnings == ()
    for impl in ("vectorized", "reference"):
        ev = evaluate(fixed, table, implementation=impl)
        assert best_weights(fixed, ev) == {"gpu-h100-vfio-01": 0}


# ---------------------------------------------------------------------------------------------------
# examples/README.md agrees


def readme_verdicts() -> dict[str, dict[str, int]]:
    rows: dict[str, dict[str, int]] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| `(registry\.example\.com/[^`]+)` \|", line)
        if m is None or m[1] in multi_arch_map():
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, line
        runs_on = cells[2]
        found = dict(re.findall(r"([a-z0-9-]+) \((\d+)\)", runs_on))
        if runs_on == "none":
            assert not found
        else:
            assert ", ".join(f"{n} ({w})" for n, w in found.items()) == runs_on, runs_on
        assert m[1] not in rows, f"{m[1]} listed twice"
        rows[m[1]] = {n: int(w) for n, w in found.items()}
        assert f"(specs/{Path(image_map()[m[1]]).name})" in cells[1], cells[1]
    return rows


def test_readme_verdict_table_matches() -> None:
    assert readme_verdicts() == EXPECTED


#: multi-arch image -> {node that runs it: its score}, each node judged by its platform's variant
EXPECTED_MULTI_ARCH: dict[str, dict[str, int]] = {
    GENOMICS: {
        "arm-ampere-01": 5,  # the arm64 build's NEON set; the amd64 build's AVX-512 would fail it
        "cpu-spr-01": 10,
        "dpdk-cx7-01": 10,
        "dpdk-e810-01": 10,
        "gpu-a100-01": 10,
        "gpu-a100-nodriver-01": 10,
        "gpu-h100-01": 10,
        "gpu-h100-vfio-01": 10,
        "gpu-mi300-01": 10,
    }
}


@pytest.mark.parametrize("image", sorted(EXPECTED_MULTI_ARCH))
async def test_multi_arch_example(image: str) -> None:
    """Through the file sources as `make run` serves them: the arm64 node is judged by the arm64
    build's spec, the amd64 nodes by the amd64 build's; the README's row says the same."""
    features = FileFeatures(NODEFEATURES)
    await features.refresh()
    specs = FileSpecs(IMAGES)
    await specs.refresh()
    table = features.table
    assert table.platforms() == ("linux/amd64/v1", "linux/arm64/v8")
    assert table.platform_of("arm-ampere-01") == "linux/arm64/v8"
    item = await specs.lookup_variants(image, table.platforms())
    assert item is not None and item.multi_arch
    arm, amd = item.variant("linux/arm64/v8"), item.variant("linux/amd64/v1")
    assert arm is not None and amd is not None and arm.spec != amd.spec  # the builds differ
    names = sorted(table.node_names())
    got = decide([item], table, names)
    assert {n: s for n, s in zip(got.names, got.score_list, strict=True) if n in got.passed} == (
        EXPECTED_MULTI_ARCH[image]
    )
    row = next(
        line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith(f"| `{image}`")
    )
    runs_on = [c.strip() for c in row.strip().strip("|").split("|")][2]
    assert dict(re.findall(r"([a-z0-9-]+) \((\d+)\)", runs_on)) == {
        n: str(w) for n, w in EXPECTED_MULTI_ARCH[image].items()
    }


def test_readme_lists_every_node() -> None:
    text = README.read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \| [^|]*\| [^|]*\|$", text, flags=re.M))
    assert listed == NODES
