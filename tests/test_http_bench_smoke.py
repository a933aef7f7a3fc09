"""Smoke test of the HTTP end-to-end benchmark (benchmarks/http.py) and its Node generator
(benchmarks/nodes.py): a --quick run, in this process, reports every scenario and verb with positive
latencies and ratios, and the generated Node objects look like what a scheduler sends. It never
compares times: wall-clock numbers are for humans, not for CI."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks.cluster import generate_cluster
from benchmarks.http import QUICK_NAMES, QUICK_NODES, QUICK_REPEAT, VERBS, main
from benchmarks.nodes import generate_node_object, generate_node_objects
from extender.features.nodefeature import NODE_NAME_LABEL
from extender.http.wire import decode_args


def _check_latency(lat: dict[str, Any]) -> None:
    assert lat["runs"] == QUICK_REPEAT == len(lat["samples_ns"])
    assert all(s > 0 for s in lat["samples_ns"])
    assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"]
    assert lat["median_ms"] <= lat["p99_ms"] <= lat["max_ms"]


def test_quick_run_reports_every_scenario_and_verb(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "http.json"
    assert main(["--quick", "--json", str(path)], out=out) == 0
    data: dict[str, Any] = json.loads(path.read_text())

    expected = [f"names-{n}" for n in QUICK_NAMES] + [f"nodes-{n}" for n in QUICK_NODES]
    assert [s["name"] for s in data["scenarios"]] == expected
    for s in data["scenarios"]:
        assert s["form"] in ("names", "nodes")
        assert s["passed"] + s["failed"] == s["nodes"] and s["passed"] > 0
        assert [v["verb"] for v in s["verbs"]] == list(VERBS)
        for v in s["verbs"]:
            _check_latency(v["extender"])
            _check_latency(v["floor"])
            assert v["ratio"] == pytest.approx(v["extender"]["median_ms"] / v["floor"]["median_ms"])
            assert v["p99_ratio"] == pytest.approx(v["extender"]["p99_ms"] / v["floor"]["p99_ms"])
            assert v["extender_response_bytes"] > 0 and v["floor_response_bytes"] > 0
        if s["form"] == "nodes":
            assert s["node_object_bytes_min"] <= s["node_object_bytes_avg"] <= s["node_object_bytes_max"]
    machine = data["machine"]
    assert machine["cpu"] and int(machine["nproc"]) >= 1 and machine["python"].count(".") == 2
    target = data["target"]
    assert target["scenario"] == f"names-{max(QUICK_NAMES)}" and target["max_ratio"] == 2.0
    assert set(target["ratios"]) == set(VERBS) and isinstance(target["met"], bool)

    text = out.getvalue()
    rows = [line for line in text.splitlines() if line.startswith(tuple(f"| {name} |" for name in expected))]
    assert len(rows) == len(expected) * len(VERBS)
    assert "Target: extender ≤ 2× the floor" in text and f"wrote {path}" in text


def test_node_objects_are_realistic_and_deterministic() -> None:
    nfs = generate_cluster(40, seed=2)
    nodes = generate_node_objects(nfs, seed=2)
    assert nodes == generate_node_objects(nfs, seed=2)
    assert orjson.dumps(nodes[3]) == orjson.dumps(generate_node_object(nfs[3], seed=2))
    for nf, node in zip(nfs, nodes, strict=True):
        name = nf["metadata"]["labels"][NODE_NAME_LABEL]
        meta, status = node["metadata"], node["status"]
        assert meta["name"] == name == meta["labels"]["kubernetes.io/hostname"]
        assert nf["spec"]["labels"].items() <= meta["labels"].items()  # NFD's labels are on the node
        assert meta["annotations"]["nfd.node.kubernetes.io/feature-labels"]
        assert {m["manager"] for m in meta["managedFields"]} >= {"kubelet", "nfd-master"}
        kernel = nf["spec"]["features"]["attributes"]["kernel.version"]["elements"]["full"]
        assert status["nodeInfo"]["kernelVersion"] == kernel
        assert {"cpu", "memory", "pods"} <= status["capacity"].keys() == status["allocatable"].keys()
        assert [c["type"] for c in status["conditions"]][-1] == "Ready"
        images = status["images"]
        assert 10 <= len(images) <= 50
        sizes = [i["sizeBytes"] for i in images]
        assert sizes == sorted(sizes, reverse=True)
        assert all(i["names"][0].split("@", 1)[1].startswith("sha256:") for i in images)
        assert 10 * 1024 <= len(orjson.dumps(node)) <= 50 * 1024
    # the extender reads the names the way the scheduler sends them
    body = orjson.dumps({"Pod": {}, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None})
    assert decode_args(body).node_names == [nf["metadata"]["name"] for nf in nfs]
