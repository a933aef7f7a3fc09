"""``compat-extender explain`` against a real ``serve`` on the bundled examples, and the table it
prints (extender/match/report.py)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from extender.cli.main import main
from extender.features.nodefeature import features_from_dict
from extender.match.explain import explain
from extender.match.report import WIDTH, failures, render, render_expression
from extender.spec.parse import parse_spec
from tests.serving import serving

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DPDK = "registry.example.com/telco/dpdk-app:23.11"


def _config(debug: bool = True) -> dict[str, object]:
    return {
        "listen": {"host": "127.0.0.1", "port": 0},
        "debug": {"enabled": debug},
        "features": {"path": str(EXAMPLES / "nodefeatures"), "reloadSeconds": 0},
        "specs": {"images": str(EXAMPLES / "images.yaml"), "reloadSeconds": 0},
    }


async def _explain(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


async def test_explain_one_node_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(_config(), tmp_path) as url:
        code, out, _ = await _explain(capsys, "--url", url, "--image", DPDK, "--node", "dpdk-e810-01")
        assert code == 0, out
        assert "=== dpdk-e810-01: COMPATIBLE" in out
        assert "RULE: nic - OK" in out and "matchAny[0]: OK (one of the 3 blocks must match)" in out
        assert "| cpu.cpuid.AVX2" in out
        assert "1 of 1 node(s) shown can run the image; 0 cannot" in out

        code, out, _ = await _explain(capsys, "--url", url, "--image", DPDK, "--node", "gpu-h100-01")
        assert code == 1
        assert "=== gpu-h100-01: INCOMPATIBLE" in out
        assert "FAIL" in out
        assert "set #0: first mismatch: rule hugepages, matchFeatures: memory.hugepages.enabled" in out
        assert max(len(line) for line in out.splitlines()) <= WIDTH


async def test_explain_every_node_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(_config(), tmp_path) as url:
        code, out, _ = await _explain(capsys, "--url", url, "--image", DPDK, "--json")
    doc = json.loads(out)
    verdicts = {row["node"]: row["verdict"] for row in doc["nodes"]}
    assert len(verdicts) == len(list((EXAMPLES / "nodefeatures").glob("*.yaml")))
    assert verdicts["dpdk-e810-01"] == "compatible" and verdicts["gpu-h100-01"] == "incompatible"
    assert code == 1  # some nodes cannot run it


async def test_explain_errors_and_no_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(_config(), tmp_path) as url:
        code, out, _ = await _explain(capsys, "--url", url, "--image", "docker.io/library/busybox:1")
        assert code == 0 and "has no compatibility spec" in out
    async with serving(_config(debug=False), tmp_path) as url:
        code, _, err = await _explain(capsys, "--url", url, "--image", DPDK)
        assert code == 2 and "debug endpoints" in err
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = await _explain(
        capsys, "--url", f"http://127.0.0.1:{port}", "--image", DPDK, "--timeout", "5"
    )
    assert code == 2 and "cannot reach the extender" in err


SPEC = b"""
version: v1alpha1
compatibilities:
- description: gpu box
  tag: gpu
  weight: 5
  rules:
  - name: kernel
    matchFeatures:
    - feature: kernel.version
      matchExpressions:
        major: {op: Gt, value: ["5"]}
  - name: nic
    matchAny:
    - matchFeatures:
      - feature: pci.device
        matchExpressions:
          vendor: {op: In, value: ["8086"]}
    - matchFeatures:
      - feature: kernel.loadedmodule
        matchName: {op: In, value: ["mlx5_core"]}
"""


def test_table_and_failures_say_what_is_missing() -> None:
    spec = parse_spec(SPEC)
    nf = features_from_dict(
        "n1",
        {
            "attributes": {"kernel.version": {"elements": {"major": "4"}}},
            "flags": {"kernel.loadedmodule": {"elements": {"ice": {}}}},
            "instances": {"pci.device": {"elements": [{"attributes": {"vendor": "15b3"}}]}},
        },
    )
    account = explain(spec, nf, node="n1").to_dict()
    text = render(account)
    assert text.startswith("NODE n1: INCOMPATIBLE")
    assert "COMPATIBILITY SET #0 Weight: 5; Tag: gpu - FAIL" in text
    assert "RULE: kernel - FAIL" in text and "RULE: nic - FAIL" in text
    assert "kernel.version.major" in text and "value '4'" in text
    # each matchAny block with its own status and what failed in it
    assert "matchAny[0]: FAIL (one of the 2 blocks must match); failed: pci.device.vendor" in text
    assert "matchAny[1]: FAIL (one of the 2 blocks must match); failed: kernel.loadedmodule" in text
    # every table line of a rule has the same width
    block = text.split("RULE: kernel - FAIL\n", 1)[1].split("\nRULE", 1)[0].splitlines()
    assert len({len(line) for line in block}) == 1
    got = failures(account["sets"][0])
    assert account["sets"][0]["failures"] == got  # the JSON form carries them
    assert [(g["rule"], g["block"], g["status"]) for g in got] == [
        ("kernel", "matchFeatures", "not matched"),
        ("nic", "matchAny[0]", "not matched"),
        ("nic", "matchAny[1]", "not matched"),
    ]
    assert [[(f["feature"], f["key"]) for f in g["failed"]] for g in got] == [
        [("kernel.version", "major")],
        [("pci.device", "vendor")],
        [("kernel.loadedmodule", "")],
    ]
    assert got[0]["failed"][0]["expression"] == '{op: "Gt", value: ["5"]}'
    assert got[0]["failed"][0]["found"] == "value '4'"
    assert render_expression({"op": "Exists"}) == '{op: "Exists"}'

    ok = features_from_dict(
        "n2",
        {
            "attributes": {"kernel.version": {"elements": {"major": "6"}}},
            "flags": {"kernel.loadedmodule": {"elements": {"mlx5_core": {}}}},
        },
    )
    account = explain(spec, ok, node="n2").to_dict()
    assert render(account).startswith("NODE n2: COMPATIBLE")
    assert failures(account["sets"][0]) == []
    # no set selected: says so instead of printing nothing
    none = explain(spec, ok, node="n2", tags=frozenset({"cpu"})).to_dict()
    assert "no compatibility set selected" in render(none)


def test_long_values_are_cut() -> None:
    spec = parse_spec(b"""
version: v1alpha1
compatibilities:
- rules:
  - name: r
    matchFeatures:
    - feature: system.osrelease
      matchExpressions:
        PRETTY_NAME: {op: In, value: ["x"]}
""")
    nf = features_from_dict(
        "n", {"attributes": {"system.osrelease": {"elements": {"PRETTY_NAME": "y" * 500}}}}
    )
    text = render(explain(spec, nf, node="n").to_dict())
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "..." in text


def test_instance_term_that_fails_as_a_whole_gets_its_own_row() -> None:
    spec = parse_spec(b"""
version: v1alpha1
compatibilities:
- rules:
  - name: nic
    matchFeatures:
    - feature: pci.device
      matchExpressions:
        vendor: {op: In, value: ["8086"]}
        class: {op: In, value: ["0200"]}
""")
    nf = features_from_dict(
        "n",
        {
            "instances": {
                "pci.device": {
                    "elements": [
                        {"attributes": {"vendor": "8086", "class": "0300"}},
                        {"attributes": {"vendor": "15b3", "class": "0200"}},
                    ]
                }
            }
        },
    )
    account = explain(spec, nf, node="n").to_dict()
    text = render(account)
    assert "INCOMPATIBLE" in text
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if "(the rows above together)" in line)
    assert "| FAIL " in lines[at]  # the table is too wide for six columns: what was found comes below
    assert lines[at + 1].startswith("|   | found: no single instance satisfies every expression")
    assert [(g["block"], [f["found"] for f in g["failed"]]) for g in failures(account["sets"][0])] == [
        ("matchFeatures", ["no single instance satisfies every expression"])
    ]
