"""The one report (extender/match/report.py): what the server's ``format=text``, ``validate-node`` and
``explain`` print, at most 120 columns wide on the bundled examples and on random wide input, with
each ``matchAny`` block's own status; and the failures grouped per block."""

from __future__ import annotations

import asyncio
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from extender.cli.main import main
from extender.cli.validate import features_from_file
from extender.features.nodefeature import NodeFeatures
from extender.match.explain import explain
from extender.match.report import WIDTH, block_status, fit, render, render_expression, word
from extender.spec.model import Spec
from extender.spec.parse import parse_spec
from extender.yamlfile import load_file
from tests.fuzz import examples
from tests.helpers import R, S, T, X, node
from tests.serving import serving
from tests.strategies import wide_cases

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPECS = sorted((EXAMPLES / "specs").glob("*.yaml"))
NODES = sorted((EXAMPLES / "nodefeatures").glob("*.yaml"))
LABEL = re.compile(r"^\| matchAny\[(\d+)\]: (OK|FAIL|ERROR) \(one of the (\d+) blocks must match\)")


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def block_labels(account: Mapping[str, Any]) -> list[tuple[int, str, int]]:
    """Every matchAny block of the account, in order: (index, status as shown, blocks in the rule)."""
    return [
        (i, word(block_status(el)), len(r["matchAny"]))
        for s in account["sets"]
        for r in s["rules"]
        for i, el in enumerate(r.get("matchAny") or [])
    ]


def shown_labels(text: str) -> list[tuple[int, str, int]]:
    return [
        (int(m[1]), m[2], int(m[3])) for line in text.splitlines() if (m := LABEL.match(line)) is not None
    ]


@pytest.mark.parametrize("spec_path", SPECS, ids=[p.stem for p in SPECS])
def test_every_bundled_spec_on_every_bundled_node_fits(spec_path: Path) -> None:
    spec = parse_spec(spec_path.read_bytes())
    for path in NODES:
        nf = features_from_file(path, None)
        account = explain(spec, nf, node=nf.node).to_dict()
        text = render(account)
        assert widest(text) <= WIDTH, (spec_path.name, path.name)
        assert shown_labels(text) == block_labels(account), (spec_path.name, path.name)


# the image with a matchAny (dpdk-app: three ways to drive the NIC) on a node where none of them is
# complete and on one where the first is
DPDK = parse_spec((EXAMPLES / "specs" / "dpdk-app.yaml").read_bytes())


def test_each_matchany_block_shows_its_status_and_what_failed() -> None:
    h100 = features_from_file(EXAMPLES / "nodefeatures" / "gpu-h100-01.yaml", None)
    text = render(explain(DPDK, h100, node=h100.node).to_dict())
    table = text.split("RULE: nic - OK\n", 1)[1].splitlines()
    assert len({len(line) for line in table}) == 1  # every line of the rule's table as wide as the table
    assert [line.split(" (")[0] for line in table if line.startswith("| matchAny[")] == [
        "| matchAny[0]: FAIL",
        "| matchAny[1]: FAIL",
        "| matchAny[2]: OK",
    ]
    # the labels, each on as many lines as it takes
    flat = " ".join(line.strip("|+- ") for line in table)
    for label in (
        "matchAny[0]: FAIL (one of the 3 blocks must match); failed: pci.device.device, "
        "kernel.loadedmodule.vfio_pci, kernel.loadedmodule.vfio_iommu_type1 ",
        "matchAny[1]: FAIL (one of the 3 blocks must match); failed: pci.device.device, "
        "kernel.loadedmodule.uio_pci_generic ",
        "matchAny[2]: OK (one of the 3 blocks must match) ",
    ):
        assert label in flat
    # the 6-value device list is cut with a count; what the node has comes on a line of its own
    assert '{op: "In", value: ["1592", ... 5 more]}' in text
    assert (
        "found: 0 of 27 instances match (values: '09a2', '101d', '1021', '1150', '1b81', '1bcd', '2000', "
        in text
    )


def test_failures_are_grouped_per_block() -> None:
    nic = [
        [T("pci.device", {"vendor": X("In", "8086")})],
        [T("kernel.loadedmodule", {"mlx5_core": X("Exists")}), T("cpu.cpuid", {"AVX2": X("Exists")})],
    ]
    spec = S([R(T("kernel.version", {"major": X("Gt", "5")}), any_of=nic, name="nic")])
    # no block matches: each failing block is listed, with what failed in it
    bare = node("bare", flags={"kernel.loadedmodule": ["ice"]}, attrs={"kernel.version": {"major": "6"}})
    account = explain(spec, bare).to_dict()
    assert [(g["rule"], g["block"], g["status"]) for g in account["sets"][0]["failures"]] == [
        ("nic", "matchAny[0]", "not matched"),
        ("nic", "matchAny[1]", "not matched"),
    ]
    assert [[(f["feature"], f["key"]) for f in g["failed"]] for g in account["sets"][0]["failures"]] == [
        [("pci.device", "vendor")],
        [("kernel.loadedmodule", "mlx5_core"), ("cpu.cpuid", "AVX2")],
    ]
    assert account["sets"][0]["failures"][1]["failed"][1]["found"] == "feature absent"
    # a block matches but matchFeatures fails: only matchFeatures is why
    mlx = node(
        "mlx",
        flags={"kernel.loadedmodule": ["mlx5_core"], "cpu.cpuid": ["AVX2"]},
        attrs={"kernel.version": {"major": "5"}},
    )
    account = explain(spec, mlx).to_dict()
    (group,) = account["sets"][0]["failures"]
    assert (group["block"], group["status"], [f["key"] for f in group["failed"]]) == (
        "matchFeatures",
        "not matched",
        ["major"],
    )
    text = render(account)
    assert "| matchFeatures: FAIL (every term must match)" in text
    assert "| matchAny[0]: FAIL (one of the 2 blocks must match); failed: pci.device.vendor" in text
    assert "| matchAny[1]: OK (one of the 2 blocks must match)" in text
    # matched: nothing failed
    mlx6 = node("ok", flags=mlx.flags, attrs={"kernel.version": {"major": "6"}})
    assert explain(spec, mlx6).to_dict()["sets"][0]["failures"] == []


def test_a_block_that_cannot_be_evaluated_is_an_error_and_listed() -> None:
    any_of = [
        [T("kernel.version", {"full": X("Gt", "5.4", type="version")})],
        [T("kernel.loadedmodule", {"nvidia": X("Exists")})],
    ]
    spec = S([R(any_of=any_of, name="kernel")])
    nf = node(flags={"kernel.loadedmodule": ["nvidia"]}, attrs={"kernel.version": {"full": "5.14.0-4.el9_4"}})
    account = explain(spec, nf).to_dict()
    assert account["sets"][0]["status"] == "error"
    # listed although another block matched: the error is why the set is not counted
    (group,) = account["sets"][0]["failures"]
    assert (group["block"], group["status"]) == ("matchAny[0]", "error")
    assert group["failed"][0]["error"].startswith("not a version")
    text = render(account)
    assert "| matchAny[0]: ERROR (one of the 2 blocks must match); error in: kernel.version.full" in text
    assert "| matchAny[1]: OK (one of the 2 blocks must match)" in text
    assert "RULE: kernel - ERROR" in text


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=wide_cases())
def test_random_wide_specs_and_nodes_fit(case: tuple[Spec, NodeFeatures]) -> None:
    spec, nf = case
    account = explain(spec, nf, node=nf.node).to_dict()
    for text in (render(account), render(account, heading=False)):
        assert widest(text) <= WIDTH
        assert shown_labels(text) == block_labels(account)
        # every rule has its table, every set its heading
        assert text.count("\nRULE: ") + text.startswith("RULE: ") == sum(
            len(s["rules"]) for s in account["sets"]
        )
        assert text.count("COMPATIBILITY SET #") == len(account["sets"])
    for s in account["sets"]:
        assert (s["failures"] == []) == (s["status"] == "matched")


def test_long_expressions_keep_a_count_of_the_values_left_out() -> None:
    values = [f"v{i:02d}" for i in range(20)]
    full = '{op: "In", value: [' + ", ".join(f'"{v}"' for v in values) + "]}"
    assert render_expression({"op": "In", "value": values}) == full  # the JSON's failures: in full
    assert render_expression({"op": "In", "value": values}, 60) == (
        '{op: "In", value: ["v00", "v01", "v02", "v03", ... 16 more]}'
    )
    # at least one value, and the type kept
    assert render_expression({"op": "In", "value": values, "type": "version"}, 44) == (
        '{op: "In", value: ["v00", ... 19 more], type: "version"}'
    )
    # one value cannot be cut: the table wraps it
    assert (
        render_expression({"op": "In", "value": ["x" * 100]}, 44)
        == '{op: "In", value: ["' + "x" * 100 + '"]}'
    )


def test_fit_wraps_only_what_is_too_wide() -> None:
    table = "+" + "-" * (WIDTH - 2) + "+"
    long = "   reason: " + " ".join(["word"] * 60)
    got = fit(f"{table}\n{long}\nshort\n")
    lines = got.split("\n")
    assert lines[0] == table and lines[-2:] == ["short", ""]
    assert all(len(line) <= WIDTH for line in lines)
    assert lines[1].startswith("   reason: word") and all(
        line.startswith("       word") for line in lines[2:-2]
    )
    assert " ".join(" ".join(lines[1:-2]).split()) == " ".join(long.split())


def test_validate_node_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    for path in NODES:
        main(["validate-node", "--spec", str(EXAMPLES / "specs" / "dpdk-app.yaml"), "--features", str(path)])
        out, _ = capsys.readouterr()
        nf = features_from_file(path, None)
        assert render(explain(DPDK, nf, node=nf.node).to_dict()) in out
        assert widest(out) <= WIDTH, path.name


def _images() -> list[str]:
    (doc,) = load_file(EXAMPLES / "images.yaml")
    return sorted(doc["images"])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return str(answer.read().decode())


def _post(url: str, body: Any) -> str:
    request = urllib.request.Request(url, data=orjson.dumps(body), method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(answer.read().decode())


async def test_the_served_text_answers_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "debug": {"enabled": True},
        "features": {"path": str(EXAMPLES / "nodefeatures"), "reloadSeconds": 0},
        "specs": {"images": str(EXAMPLES / "images.yaml"), "reloadSeconds": 0},
    }
    whatif = {"nodeFeature": load_file(NODES[0])[0], "images": _images()}
    async with serving(config, tmp_path) as url:
        for image in _images():
            query = urllib.parse.urlencode({"image": image, "format": "text"})
            text = await asyncio.to_thread(_get, f"{url}/debug/explain?{query}")
            assert "COMPATIBILITY SET #0" in text and widest(text) <= WIDTH, image
            code = await asyncio.to_thread(main, ["explain", "--url", url, "--image", image])
            out, _ = capsys.readouterr()
            assert code in (0, 1) and "RULE: " in out and widest(out) <= WIDTH, image
        pod = {
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"image": i} for i in _images()]},
        }
        text = await asyncio.to_thread(_post, f"{url}/debug/explain?format=text", pod)
        assert text.count("== ") >= len(NODES) and widest(text) <= WIDTH
        text = await asyncio.to_thread(_post, f"{url}/debug/whatif?format=text", whatif)
        assert "WHAT IF node" in text and widest(text) <= WIDTH
