"""A key written twice in a local file is an error wherever the file is read, not the last value
silently: ``validate-node --features`` (exit 2), the configuration (exit 2), a NodeFeature file of the
features directory and the image mapping (reported, the last good content kept)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from extender.cli.main import main
from extender.config import load_config
from extender.errors import ConfigError
from extender.sources.files import FileFeatures, FileSpecs
from tests.file_sources import SPEC_A, nf, put

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DPDK_SPEC = EXAMPLES / "specs" / "dpdk-app.yaml"
DPDK_NODE = EXAMPLES / "nodefeatures" / "dpdk-e810-01.yaml"


def _nodefeature_json_with_a_repeated_module() -> str:
    """The example node's NodeFeature as ``kubectl get -o json`` writes it, with one kernel module
    listed twice, the second time last (a merge gone wrong)."""
    (obj,) = [d for d in yaml.safe_load_all(DPDK_NODE.read_text()) if d is not None]
    modules = obj["spec"]["features"]["flags"]["kernel.loadedmodule"]["elements"]
    assert "vfio_pci" in modules
    modules["again"] = {}
    return json.dumps(obj, indent=4).replace('"again": {}', '"vfio_pci": {}')


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_validate_node_features_with_a_duplicate_key_exits_2(
    tmp_path: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate-node", "--spec", str(DPDK_SPEC), "--features", str(DPDK_NODE)]) == 0
    capsys.readouterr()
    if form == "json":
        text = _nodefeature_json_with_a_repeated_module()
        key = "vfio_pci"
    else:  # the bare features map, a nested mapping repeated
        text = (
            "flags:\n  kernel.loadedmodule:\n    elements: {vfio_pci: {}}\n"
            "attributes:\n  kernel.version:\n    elements: {major: '6'}\n"
            "  kernel.version:\n    elements: {major: '5'}\n"
        )
        key = "kernel.version"
    features = tmp_path / f"node.{form}"
    features.write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if f"{key}:" in t or f'"{key}":' in t)
    second = next(
        n for n, t in enumerate(text.splitlines(), 1) if n > line and (f"{key}:" in t or f'"{key}":' in t)
    )
    assert main(["validate-node", "--spec", str(DPDK_SPEC), "--features", str(features)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{features}: duplicate key '{key}' at line {second}, column " in err
    assert f"(first at line {line})" in err


def test_a_configuration_with_a_duplicate_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "extender.yaml"
    config.write_text("listen:\n  port: 8888\nfailurePolicy: Ignore\nlisten:\n  host: 0.0.0.0\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'listen' at line 4, column 1 \(first at line 1\)"):
        load_config(config)
    assert main(["serve", "--config", str(config), "--print-config"]) == 2
    assert "configuration error:" in capsys.readouterr().err


async def test_a_nodefeature_file_with_a_duplicate_key_is_reported_and_the_last_good_kept(
    tmp_path: Path,
) -> None:
    put(tmp_path / "a.json", json.dumps(nf("a", "node-a", ["vfio-pci"]), indent=2))
    src = FileFeatures(tmp_path)
    assert await src.refresh() == {"node-a"}
    repeated = json.dumps(nf("a", "node-a", ["nvidia"]), indent=2).replace(
        '"nvidia": {}', '"nvidia": {}, "nvidia": {}'
    )
    put(tmp_path / "a.json", repeated)
    assert await src.refresh() == set()
    kept = src.table.node_features("node-a")
    assert kept is not None and set(kept.flags["kernel.loadedmodule"]) == {"vfio-pci"}
    (where, why), *_ = src.errors.items()
    assert where == str(tmp_path / "a.json") and "duplicate key 'nvidia'" in why


async def test_an_image_mapping_with_a_duplicate_image_is_reported(tmp_path: Path) -> None:
    put(tmp_path / "a.yaml", SPEC_A)
    put(tmp_path / "images.yaml", "images:\n  reg/a:1: a.yaml\n")
    src = FileSpecs(tmp_path / "images.yaml")
    await src.refresh()
    put(tmp_path / "images.yaml", "images:\n  reg/a:1: a.yaml\n  reg/b:1: a.yaml\n  reg/a:1: b.yaml\n")
    await src.refresh()
    assert await src.lookup("reg/a:1") is not None  # the previous mapping still serves
    assert "duplicate key 'reg/a:1' at line 4" in src.errors[str(tmp_path / "images.yaml")]
