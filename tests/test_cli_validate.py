"""``compat-extender validate-node`` end to end: spec from a file or from a real registry (distribution
2.8 on loopback), features from a NodeFeature file, a bare features map, or a fake host root;
table and JSON output; exit codes 0 compatible, 1 incompatible, 2 error."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml

from extender.cli.main import main
from extender.features.nodefeature import parse_nodefeature
from tests.distribution import Distribution
from tests.fake_host import FakeHost, intel_host
from tests.oci_images import push_image_sync

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NODEFEATURES = EXAMPLES / "nodefeatures"
DPDK_SPEC = EXAMPLES / "specs" / "dpdk-app.yaml"
_names = itertools.count()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["validate-node", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_nodefeature_file_compatible_and_not(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "--spec", str(DPDK_SPEC), "--features", str(NODEFEATURES / "dpdk-e810-01.yaml")
    )
    assert code == 0, out
    assert "NODE dpdk-e810-01: COMPATIBLE" in out and "RULE: hugepages - OK" in out

    code, out, _ = _run(
        capsys, "--spec", str(DPDK_SPEC), "--features", str(NODEFEATURES / "gpu-h100-01.yaml")
    )
    assert code == 1
    assert "NODE gpu-h100-01: INCOMPATIBLE" in out and "RULE: hugepages - FAIL" in out


def test_json_lists_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "--spec", str(DPDK_SPEC), "--features", str(NODEFEATURES / "gpu-h100-01.yaml"), "--json"
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["compatible"] is False and doc["node"] == "gpu-h100-01"
    assert doc["specFile"] == str(DPDK_SPEC) and doc["features"] == {
        "file": str(NODEFEATURES / "gpu-h100-01.yaml")
    }
    (s,) = doc["sets"]
    assert s["status"] == "not matched"
    assert {r["name"]: r["status"] for r in s["rules"]} == {
        "cpu": "matched",
        "hugepages": "not matched",
        "nic": "matched",
    }
    # grouped per block: the hugepages rule's matchFeatures; nic matched, so none of its blocks
    assert [(g["rule"], g["block"], g["status"]) for g in s["failures"]] == [
        ("hugepages", "matchFeatures", "not matched")
    ]
    missing = {(f["feature"], f["key"]): f["found"] for g in s["failures"] for f in g["failed"]}
    assert missing == {
        ("memory.hugepages", "enabled"): "value 'false'",
        ("memory.hugepages", "hugepages-1Gi"): "value '0'",
    }


def test_bare_features_map_and_tags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `nfd export features` prints {flags, attributes, instances}, no NodeFeature wrapper
    obj = yaml.safe_load((NODEFEATURES / "dpdk-e810-01.yaml").read_text())
    bare = tmp_path / "features.json"
    bare.write_text(json.dumps(obj["spec"]["features"]))
    code, out, _ = _run(capsys, "--spec", str(DPDK_SPEC), "--features", str(bare), "--json")
    assert code == 0 and json.loads(out)["compatible"] is True

    spec = tmp_path / "tagged.yaml"
    spec.write_text("""
version: v1alpha1
compatibilities:
- tag: big
  rules:
  - name: lots
    matchFeatures:
    - feature: memory.numa
      matchExpressions:
        node_count: {op: Gt, value: ["64"]}
- tag: any
  rules:
  - name: kernel
    matchFeatures:
    - feature: kernel.version
      matchExpressions:
        major: {op: Exists}
""")
    assert _run(capsys, "--spec", str(spec), "--features", str(bare))[0] == 0  # set "any" matches
    assert _run(capsys, "--spec", str(spec), "--features", str(bare), "--tags", "big")[0] == 1
    code, out, _ = _run(capsys, "--spec", str(spec), "--features", str(bare), "--tags", "big,any", "--json")
    assert code == 0 and [s["tag"] for s in json.loads(out)["sets"]] == ["big", "any"]
    code, out, _ = _run(capsys, "--spec", str(spec), "--features", str(bare), "--tags", "none")
    assert code == 1 and "no compatibility set selected" in out


def test_several_nodes_in_one_file_need_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    both = tmp_path / "both.yaml"
    both.write_text(
        (NODEFEATURES / "dpdk-e810-01.yaml").read_text()
        + "\n---\n"
        + (NODEFEATURES / "gpu-h100-01.yaml").read_text()
    )
    code, _, err = _run(capsys, "--spec", str(DPDK_SPEC), "--features", str(both))
    assert code == 2 and "choose one with --node" in err
    assert _run(capsys, "--spec", str(DPDK_SPEC), "--features", str(both), "--node", "dpdk-e810-01")[0] == 0
    assert _run(capsys, "--spec", str(DPDK_SPEC), "--features", str(both), "--node", "gpu-h100-01")[0] == 1
    code, _, err = _run(capsys, "--spec", str(DPDK_SPEC), "--features", str(both), "--node", "nope")
    assert code == 2 and "no NodeFeature for node 'nope'" in err


def test_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    features = str(NODEFEATURES / "dpdk-e810-01.yaml")
    code, _, err = _run(capsys, "--spec", str(tmp_path / "missing.yaml"), "--features", features)
    assert code == 2 and "cannot read" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v9\ncompatibilities: []\n")
    code, _, err = _run(capsys, "--spec", str(bad), "--features", features)
    assert code == 2 and "invalid spec" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: nfd.k8s-sigs.io/v1alpha1\nkind: NodeFeature\n"
        "metadata: {name: x, labels: {nfd.node.kubernetes.io/node-name: x}}\nspec: 7\n"
    )
    code, _, err = _run(capsys, "--spec", str(DPDK_SPEC), "--features", str(broken))
    assert code == 2 and "broken.yaml" in err and "spec" in err
    code, _, err = _run(capsys, "--spec", str(DPDK_SPEC), "--features", str(tmp_path / "none.yaml"))
    assert code == 2 and "none.yaml: No such file" in err
    with pytest.raises(SystemExit) as exc:  # --image and --spec together: argparse's usage error
        main(["validate-node", "--image", "a/b:1", "--spec", str(DPDK_SPEC)])
    assert exc.value.code == 2


def test_image_from_real_registry(
    distribution: Distribution, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = push_image_sync(f"{distribution.host}/validate/app{next(_names)}")
    features = str(NODEFEATURES / "dpdk-e810-01.yaml")
    code, out, _ = _run(capsys, "--image", image, "--features", features)
    assert code == 0 and "has no compatibility spec" in out  # imposes nothing, as in the filter

    assert main(["attach", "--image", image, "--spec", str(DPDK_SPEC)]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "--image", image, "--features", features, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["image"] == image and doc["compatible"] is True
    assert doc["spec"]["digest"].startswith("sha256:")
    code, out, _ = _run(capsys, "--image", image, "--features", str(NODEFEATURES / "gpu-h100-01.yaml"))
    assert code == 1 and "RULE: hugepages - FAIL" in out

    code, _, err = _run(capsys, "--image", f"{distribution.host}/validate/missing:1", "--features", features)
    assert code == 2 and "spec lookup failed" in err


HOST_SPEC = """
version: v1alpha1
compatibilities:
- description: GPU passthrough host
  rules:
  - name: vfio
    matchFeatures:
    - feature: kernel.loadedmodule
      matchExpressions:
        vfio_pci: {op: Exists}
    - feature: pci.device
      matchExpressions:
        vendor: {op: In, value: ["10de"]}
  - name: kernel
    matchFeatures:
    - feature: kernel.version
      matchExpressions:
        major: {op: Ge, value: ["6"]}
"""


def _fake_intel(tmp_path: Path) -> str:
    intel_host(FakeHost.at(tmp_path, "host-"))
    return f"{tmp_path}/host-"


def test_live_host_discovery_through_host_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = _fake_intel(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(HOST_SPEC)
    code, out, _ = _run(capsys, "--spec", str(spec), "--host-prefix", prefix, "--json")
    doc = json.loads(out)
    assert code == 0, doc
    assert doc["compatible"] is True and doc["features"]["host"]["sys"] == f"{prefix}sys"
    code, out, _ = _run(capsys, "--spec", str(spec), "--host-prefix", prefix)
    assert code == 0 and "RULE: vfio - OK" in out

    spec.write_text(HOST_SPEC.replace("vfio_pci", "nouveau").replace('["6"]', '["99"]'))
    code, out, _ = _run(capsys, "--spec", str(spec), "--host-prefix", prefix, "--json")
    doc = json.loads(out)
    assert code == 1 and doc["compatible"] is False
    missing = {
        (g["rule"], f["feature"], f["key"]): f["found"]
        for g in doc["sets"][0]["failures"]
        for f in g["failed"]
    }
    assert missing[("vfio", "kernel.loadedmodule", "nouveau")] == "flag absent"
    assert ("kernel", "kernel.version", "major") in missing


def test_host_features_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = _fake_intel(tmp_path)
    assert main(["host-features", "--host-prefix", prefix, "--node-name", "gpu-spr-01"]) == 0
    obj = json.loads(capsys.readouterr().out)
    parsed = parse_nodefeature(obj)
    assert parsed.node == "gpu-spr-01" and "vfio_pci" in parsed.features.flags["kernel.loadedmodule"]
    saved = tmp_path / "nf.json"
    saved.write_text(json.dumps(obj))
    spec = tmp_path / "spec.yaml"
    spec.write_text(HOST_SPEC)
    live = _run(capsys, "--spec", str(spec), "--host-prefix", prefix, "--json")
    from_file = _run(capsys, "--spec", str(spec), "--features", str(saved), "--json")
    assert live[0] == from_file[0] == 0
    assert json.loads(live[1])["sets"] == json.loads(from_file[1])["sets"]


def test_this_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("""
version: v1alpha1
compatibilities:
- rules:
  - name: linux
    matchFeatures:
    - feature: kernel.version
      matchExpressions:
        major: {op: Gt, value: ["2"]}
    - feature: cpu.cpuid
      matchName: {op: Exists}
""")
    code, out, _ = _run(capsys, "--spec", str(spec), "--host-prefix", "/", "--json")
    assert code == 0, out
    assert json.loads(out)["compatible"] is True


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            '{"foo": 1}',
            "neither a NodeFeature object nor a features map (flags, attributes, instances): "
            "unknown key(s) foo",
        ),
        ("{}", "neither a NodeFeature object nor a features map"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "kind: expected NodeFeature, got 'Pod'"),
        ("[1, 2]", "expected an object"),
    ],
)
def test_features_that_are_not_features_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, fragment: str
) -> None:
    """Not "INCOMPATIBLE": a file that holds no features is an error, as in NFD's client."""
    path = tmp_path / "features.yaml"
    path.write_text(content)
    code, out, err = _run(capsys, "--spec", str(DPDK_SPEC), "--features", str(path))
    assert code == 2 and fragment in err and "INCOMPATIBLE" not in out


def test_an_evaluation_error_exits_2_naming_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """gpu-a100-rhel-01's kernel version is not semver: NFD's client stops with an error at the first
    set that compares it (the extender itself lets a later set match there, docs/nfd-semantics.md §7.2)."""
    cuda = str(EXAMPLES / "specs" / "cuda-train.yaml")
    rhel = str(NODEFEATURES / "gpu-a100-rhel-01.yaml")
    code, out, err = _run(capsys, "--spec", cuda, "--features", rhel)
    assert code == 2
    assert "evaluation error in compatibility set #0, rule kernel: not a version" in err
    assert f"features: from {rhel}" in out and "this host" not in out
    code, out, _ = _run(capsys, "--spec", cuda, "--features", rhel, "--json")
    doc = json.loads(out)
    assert code == 2 and doc["error"].startswith("evaluation error in compatibility set #0, rule kernel")
    # selecting only the set without version comparisons: no error, compatible
    code, out, _ = _run(capsys, "--spec", cuda, "--features", rhel, "--tags", "any-nvidia")
    assert code == 0, out


def test_a_features_map_is_reported_as_from_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"flags": {"kernel.loadedmodule": {"elements": {"vfio_pci": {}}}}}))
    code, out, _ = _run(capsys, "--spec", str(DPDK_SPEC), "--features", str(path))
    assert code == 1 and f"NODE (from {path}): INCOMPATIBLE" in out and "this host" not in out
