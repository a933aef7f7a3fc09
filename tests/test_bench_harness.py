"""Smoke test of the benchmark harness (``python -m benchmarks``): every scenario runs at smoke sizes,
in this process where it can (the throughput servers and the memory probes are child processes by
design), and its outputs have the promised shape: JSON rows with the same keys, the node counts asked
for, positive numbers, p50 ≤ p99, baselines next to every latency; a Markdown file per scenario; a
summary with one table row per result row; a real PNG whose titles are not clipped and whose legends
cover no data. A run writes to the git-ignored ``benchmarks/out/`` unless told otherwise, never over the
published figures in ``benchmarks/results/``. Nothing here compares a time with a limit: wall-clock
numbers are for humans on quiet machines, not for CI."""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import matplotlib.image
import matplotlib.pyplot as plt
import pytest

from benchmarks import harness
from benchmarks.__main__ import main
from benchmarks.harness import (
    DEFAULT_OUT,
    PUBLISHED,
    SCENARIOS,
    Row,
    RunContext,
    Scenario,
    ScenarioResult,
    format_extra,
    format_ratio,
    load_results,
    run,
)
from benchmarks.http import QUICK_NODES as HTTP_NODE_OBJECTS
from benchmarks.http import Latency, PodResult, _cpu_extra
from benchmarks.matcher import run_benchmark as run_matcher
from benchmarks.plot import figure, layout_problems
from benchmarks.progress import Progress, format_elapsed
from benchmarks.specgen import SIZES as SPEC_SIZES

NODES = (40, 120)
ROOT = Path(__file__).resolve().parent.parent
#: "issue 16", "Issue #3", "#16": a heading of the output must say what it measures, not where it was asked
ISSUE_NUMBER = re.compile(r"(?i)\bissues?\s*#?\s*\d+|(?<![\w&])#\d+\b")
ROW_KEYS = {f.name for f in fields(Row)}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One quick run of every scenario at NODES: (directory, stdout, stderr)."""
    out_dir = tmp_path_factory.mktemp("bench")
    out, err = io.StringIO(), io.StringIO()
    status = main(
        ["run", "--quick", "--nodes", ",".join(map(str, NODES)), "--out", str(out_dir)], out=out, err=err
    )
    assert status == 0, err.getvalue()
    return out_dir, out.getvalue(), err.getvalue()


def _doc(directory: Path, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((directory / f"{name}.json").read_text())
    return doc


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def _check_row(row: dict[str, Any], metric: str) -> None:
    assert set(row) == ROW_KEYS
    assert row["series"] and row["baseline"] and row["samples"] >= 1
    assert all(_positive(v) for v in row["extra"].values()), row
    if metric == "latency":
        assert _positive(row["p50_ms"]) and row["p50_ms"] <= row["p99_ms"]
        assert _positive(row["baseline_p50_ms"]) and row["baseline_p50_ms"] <= row["baseline_p99_ms"]
        assert row["ratio"] == pytest.approx(row["p50_ms"] / row["baseline_p50_ms"])
    else:
        assert row["p50_ms"] is None and row["p99_ms"] is None and _positive(row["ratio"])


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_writes_rows_of_the_same_shape(results: tuple[Path, str, str], name: str) -> None:
    directory, _, _ = results
    doc = _doc(directory, name)
    scenario = SCENARIOS[name]
    assert doc["schema"] == 1 and doc["scenario"] == name and doc["title"] == scenario.title
    assert doc["metric"] == scenario.metric and doc["quick"] is True and doc["seed"] == 0
    assert doc["nodes"] == list(NODES)
    assert doc["command"].startswith("python -m benchmarks run --quick")
    assert _positive(doc["duration_s"]) and len(doc["load_before"]) == 3
    assert doc["machine"]["cpu"] and int(doc["machine"]["nproc"]) >= 1
    assert isinstance(doc["params"], dict) and isinstance(doc["detail"], dict) and doc["notes"]
    rows = doc["rows"]
    assert rows
    for row in rows:
        _check_row(row, doc["metric"])
    plotted_nodes = {r["nodes"] for r in rows if r["plotted"]}
    assert set(NODES) <= plotted_nodes  # a row at every node count asked for
    extra_nodes = set(HTTP_NODE_OBJECTS) if name == "http" else set()
    assert plotted_nodes <= set(NODES) | extra_nodes

    md = (directory / f"{name}.md").read_text()
    assert md.startswith(f"# {scenario.title}") and "## Log" in md and "## Results" in md


def test_matcher_rows_and_detail(results: tuple[Path, str, str]) -> None:
    doc = _doc(results[0], "matcher")
    plotted = [r for r in doc["rows"] if r["plotted"]]
    assert sorted((r["series"], r["nodes"]) for r in plotted) == sorted(
        (s, n) for s in ("vectorized", "cached", "update + evaluate") for n in NODES
    )
    assert all(r["baseline"] == "reference" and r["extra"]["speedup"] > 0 for r in plotted)
    sweep = [r for r in doc["rows"] if not r["plotted"]]
    assert [r["extra"]["expressions"] for r in sweep] == list(SPEC_SIZES)
    assert {r["nodes"] for r in sweep} == {max(NODES)}
    for size in doc["detail"]["sizes"]:
        assert all(s["matched"] + s["not_matched"] + s["error"] == size["nodes"] for s in size["sets"])
    assert doc["params"]["cluster_shape"]["pools"] >= 1
    md = (results[0] / "matcher.md").read_text()
    assert md.count("verified: vectorized == reference") == len(NODES)


def test_http_rows_and_detail(results: tuple[Path, str, str]) -> None:
    doc = _doc(results[0], "http")
    series = {r["series"] for r in doc["rows"]}
    assert series == {f"{v} ({f})" for v in ("filter", "prioritize") for f in ("names", "Node objects")} | {
        "filter + prioritize per pod (names)"
    }
    pod = doc["detail"]["pod"]
    assert pod["names"] == max(NODES) and pod["table_nodes"] == max(NODES) and pod["pods"] >= 1
    assert 0 < pod["passed"] <= pod["names"]
    assert pod["extender_cpu_ms"] >= 0 and pod["floor_cpu_ms"] >= 0
    assert "filter + prioritize" in (results[0] / "http.md").read_text()
    scenarios = doc["detail"]["scenarios"]
    assert [s["name"] for s in scenarios] == [f"names-{n}" for n in NODES] + [
        f"nodes-{n}" for n in HTTP_NODE_OBJECTS
    ]
    for s in scenarios:
        assert s["passed"] + s["failed"] == s["nodes"] and s["passed"] > 0
        assert all(v["extender_response_bytes"] > 0 and v["floor_response_bytes"] > 0 for v in s["verbs"])
        if s["form"] == "nodes":
            assert s["node_object_bytes_min"] <= s["node_object_bytes_avg"] <= s["node_object_bytes_max"]
    assert isinstance(doc["detail"]["target"]["met"], bool)
    assert "Target: extender ≤ 2× the floor" in (results[0] / "http.md").read_text()


def test_throughput_churn_memory_cold_extras(results: tuple[Path, str, str]) -> None:
    directory = results[0]
    for row in _doc(directory, "throughput")["rows"]:
        assert {"req_per_s", "baseline_req_per_s"} <= row["extra"].keys()
    churn = _doc(directory, "churn")
    for row in churn["rows"]:
        assert row["extra"]["target_updates_per_s"] == pytest.approx(row["nodes"] / 100)
        assert row["extra"]["updates_per_s"] > 0  # the first update is sent at once
    for size in churn["detail"]["sizes"]:
        assert size["updates_applied"] >= 1 and size["events_sent"] >= size["updates_applied"]
    memory = _doc(directory, "memory")
    for row in memory["rows"]:
        extra = row["extra"]
        assert extra["rss_mib"] > extra["baseline_rss_mib"] > 0  # the table takes room
        assert extra["peak_rss_mib"] >= max(extra["rss_mib"], extra["rss_after_filter_mib"])  # VmHWM
        assert row["ratio"] == pytest.approx(extra["rss_mib"] / extra["baseline_rss_mib"])
    cold = _doc(directory, "cold")
    # counted, not timed: 5 registry requests for the first image of a repository without a referrers
    # API (it learns that), then 4 per image
    assert [s["requests_per_cold"] for s in cold["detail"]["sizes"]] == [[5, 4, 4]] * len(NODES)
    assert all(r["extra"]["registry_requests"] == 4 for r in cold["rows"])
    startup = _doc(directory, "startup")
    assert {r["series"] for r in startup["rows"]} == {
        f"{s}: serve to /readyz" for s in ("files-json", "files-yaml", "kube")
    }
    for row in startup["rows"]:
        extra = row["extra"]
        assert extra["peak_rss_mib"] >= extra["rss_at_ready_mib"]  # VmHWM
        assert extra["rss_over_streamed"] == pytest.approx(
            extra["rss_at_ready_mib"] / extra["streamed_rss_mib"]
        )


def test_summary_has_a_line_per_row_and_every_run(results: tuple[Path, str, str]) -> None:
    directory, stdout, err = results
    summary = (directory / "summary.md").read_text()
    assert summary in stdout  # printed as well as written
    rows = [line for line in summary.splitlines() if line.startswith(tuple(f"| {n} |" for n in SCENARIOS))]
    assert len(rows) == sum(len(_doc(directory, n)["rows"]) for n in SCENARIOS)
    assert all(line.count("|") == 11 for line in rows)
    assert "## Goals\n" in summary and "not measured" in summary  # smoke sizes reach no goal
    for name in SCENARIOS:
        assert f"- **{name}**" in summary
    # not a terminal: one plain progress line per step, and the closing line
    steps = sum(s.steps(NODES) for s in SCENARIOS.values())
    lines = err.strip().splitlines()
    assert len(lines) == steps + 1 and lines[0].startswith(f"[ 1/{steps}]") and "\x1b" not in err
    assert lines[-1].startswith("done in ")


def test_rerunning_one_scenario_keeps_the_others(results: tuple[Path, str, str], tmp_path: Path) -> None:
    for path in results[0].glob("*.json"):
        shutil.copy(path, tmp_path)
    assert (
        main(
            ["run", "--quick", "--scenario", "matcher", "--out", str(tmp_path)], io.StringIO(), io.StringIO()
        )
        == 0
    )
    assert _doc(tmp_path, "matcher")["nodes"] == list(SCENARIOS["matcher"].quick_nodes)  # its own sizes
    summary = (tmp_path / "summary.md").read_text()
    assert all(f"- **{name}**" in summary for name in SCENARIOS)


def test_plot_writes_a_png(results: tuple[Path, str, str], tmp_path: Path) -> None:
    target = tmp_path / "latency.png"
    out = io.StringIO()
    assert main(["plot", "--results", str(results[0]), "--out", str(target)], out=out) == 0
    data = target.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 30_000
    pixels = matplotlib.image.imread(target)
    height, width = pixels.shape[:2]
    assert height > 500 and width > 1000
    assert pixels.std() > 0.05  # lines and text, not a blank canvas
    assert f"wrote {target}" in out.getvalue()


def test_the_plot_has_whole_titles_and_legends_off_the_data(results: tuple[Path, str, str]) -> None:
    for docs in (load_results(results[0]), load_results(PUBLISHED)):
        assert docs
        fig = figure(docs)
        try:
            assert layout_problems(fig) == []
            legends = [ax.get_legend() for ax in fig.axes if ax.get_visible()]
            assert len(legends) == len(docs) and all(legend is not None for legend in legends)
        finally:
            plt.close(fig)


def test_the_layout_check_sees_a_covering_legend_and_a_clipped_title() -> None:
    """The check above can fail: a legend inside the axes and a title wider than the figure."""
    fig, ax = plt.subplots(figsize=(4, 3))
    try:
        ax.plot([1, 10, 100], [1, 10, 100], label="data")
        ax.legend(loc="upper left")
        ax.set_title("a title far too long to fit on a figure only four inches wide, so it is cut off")
        problems = layout_problems(fig)
        assert any("covers the panel" in p for p in problems), problems
        assert any("panel title clipped" in p for p in problems), problems
    finally:
        plt.close(fig)


def _headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


def test_no_heading_of_the_output_names_an_issue(results: tuple[Path, str, str]) -> None:
    assert ISSUE_NUMBER.search("## Results for issue 16") and ISSUE_NUMBER.search("# Issue #3")
    assert ISSUE_NUMBER.search("# Startup (#16)") and not ISSUE_NUMBER.search("# HTTP: 5,000 names")
    for directory in (results[0], PUBLISHED):
        pages = sorted(directory.glob("*.md"))
        assert any(p.name == "summary.md" for p in pages) and len(pages) > 2
        for page in pages:
            headings = _headings(page.read_text())
            assert headings, page
            assert [h for h in headings if ISSUE_NUMBER.search(h)] == [], page
    for doc in load_results(results[0]):
        assert not ISSUE_NUMBER.search(doc["title"]), doc["title"]  # the plot's panel titles


def test_plot_without_results_fails_cleanly(tmp_path: Path) -> None:
    err = io.StringIO()
    assert main(["plot", "--results", str(tmp_path)], out=io.StringIO(), err=err) == 2
    assert "no results" in err.getvalue()
    assert not (tmp_path / "latency.png").exists()


# ---------------------------------------------------------------------------------------------------
# A failing scenario, the command line, the progress bar.


def run_scenario(ctx: RunContext) -> ScenarioResult:
    """The scenarios 'boom' (fails) and 'tiny' (measures nothing, at once) below."""
    ctx.progress.step("about to fail" if ctx.scenario == "boom" else "nothing to do")
    if ctx.scenario == "boom":
        raise RuntimeError("boom")
    rows = [Row.latency("nothing", n, 1.0, 2.0, "nothing either", 1.0, 2.0, 1) for n in ctx.nodes]
    return ScenarioResult(rows=rows, params={}, detail={}, markdown="nothing measured", notes=["a stub"])


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60)


def test_the_default_output_folder_is_git_ignored_and_not_the_published_one() -> None:
    assert DEFAULT_OUT == ROOT / "benchmarks" / "out"
    assert PUBLISHED == ROOT / "benchmarks" / "results"
    if shutil.which("git") is None or _git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        pytest.skip("not a git checkout: nothing to ignore files from")
    # anything a run writes there is ignored, and no tracked file lives there
    for name in ("summary.md", "http.json", "http.md", "latency.png"):
        assert _git("check-ignore", "-q", f"benchmarks/out/{name}").returncode == 0, name
    assert _git("ls-files", "benchmarks/out").stdout == ""
    # the published figures are tracked and not ignored
    published = _git("ls-files", "benchmarks/results").stdout.split()
    assert {"benchmarks/results/summary.md", "benchmarks/results/latency.png"} <= set(published)
    assert "benchmarks/results/memory.json" in published  # docs/deploy.md's sizing reads it
    assert _git("check-ignore", "-q", "benchmarks/results/summary.md").returncode == 1


def test_a_run_and_a_plot_write_to_the_default_folder_not_the_published_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --out and --results, run and plot use DEFAULT_OUT (pointed at a temporary folder here,
    so the checkout's own benchmarks/out/ is left alone), and the published files stay byte for byte."""
    published = {p: p.read_bytes() for p in PUBLISHED.iterdir() if p.is_file()}
    assert published
    out_dir = tmp_path / "out"
    monkeypatch.setattr(harness, "DEFAULT_OUT", out_dir)
    monkeypatch.setitem(SCENARIOS, "tiny", Scenario("tiny", "Tiny", __name__, (3, 5), (3,), "n", "nothing"))
    out = io.StringIO()
    assert main(["run", "--scenario", "tiny"], out=out, err=io.StringIO()) == 0
    assert f"in {out_dir}" in out.getvalue()
    assert sorted(p.name for p in out_dir.iterdir()) == ["summary.md", "tiny.json", "tiny.md"]
    assert _doc(out_dir, "tiny")["nodes"] == [3, 5]
    assert main(["plot"], out=io.StringIO(), err=io.StringIO()) == 0
    assert (out_dir / "latency.png").read_bytes().startswith(PNG_SIGNATURE)
    assert {p: p.read_bytes() for p in PUBLISHED.iterdir() if p.is_file()} == published


def test_a_failing_scenario_is_reported_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boom = Scenario("boom", "Fails", __name__, (1,), (1,), "nothing", "nothing")
    monkeypatch.setitem(SCENARIOS, "boom", boom)
    err = io.StringIO()
    ok, failed = run(["boom", "cold"], quick=True, out_dir=tmp_path, progress_stream=io.StringIO(), err=err)
    assert (ok, failed) == (["cold"], ["boom"])
    assert "scenario boom failed" in err.getvalue() and "RuntimeError: boom" in err.getvalue()
    assert (tmp_path / "cold.json").is_file() and not (tmp_path / "boom.json").exists()


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert main(["list"], out=out) == 0
    assert all(f"{name}: " in out.getvalue() for name in SCENARIOS)
    for bad in (["run", "--scenario", "matcher,nope"], ["run", "--nodes", "0"], ["frobnicate"]):
        with pytest.raises(SystemExit) as exc:
            main(bad)
        assert exc.value.code == 2
    assert "unknown scenario" in capsys.readouterr().err


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_bar_on_a_terminal_and_off() -> None:
    clock = _Clock()
    tty = io.StringIO()
    bar = Progress(4, tty, tty=True, clock=clock)
    bar.step("matcher: 100 nodes")
    clock.now = 75.0
    bar.step("matcher: 1,000 nodes")
    bar.note("reference")
    assert bar.render(200) == "[######..................] 2/4 1:15  matcher: 1,000 nodes · reference"
    assert len(bar.render(30)) == 30 and bar.render(30).endswith("…")
    bar.finish()
    assert tty.getvalue().count("\r\x1b[2K") == 4 and tty.getvalue().endswith("4/4 1:15  done\n")

    plain = io.StringIO()
    bar = Progress(12, plain, tty=False, clock=clock)
    bar.step("http: 500 names")
    bar.note("filter")  # not printed off a terminal
    bar.finish()
    assert plain.getvalue() == "[ 1/12] 0:00 http: 500 names\ndone in 0:00\n"
    assert format_elapsed(59.9) == "0:59" and format_elapsed(3725) == "1:02:05"


def test_ratio_format() -> None:
    assert format_ratio(6.012) == "6.01×" and format_ratio(1293.4) == "1,293×"
    assert format_ratio(1 / 1293) == "1/1,293" and format_ratio(0.5) == "1/2.00"
    assert format_ratio(None) == "–" and format_ratio(0.0) == "–"


# ---------------------------------------------------------------------------------------------------
# The modules' own entry points (python -m benchmarks.X) still work, at the smallest sizes.


@pytest.mark.parametrize(
    ("module", "args", "key"),
    [
        ("matcher", ["--nodes", "15", "--repeat", "1"], "sizes"),
        ("http", ["--names", "12", "--nodes", "4", "--repeat", "2", "--warmup", "0"], "scenarios"),
        ("throughput", ["--nodes", "12", "--clients", "2", "--requests", "2", "--rounds", "1"], "sizes"),
        ("churn", ["--nodes", "30", "--seconds", "0.2"], "sizes"),
        ("memory", ["--nodes", "20"], "sizes"),
        ("cold", ["--images", "2", "--names", "10", "--table", "20", "--repeat", "1"], "cold_ms"),
        ("startup", ["--nodes", "20", "--series", "files-json"], "sizes"),
    ],
)
def test_module_entry_points(module: str, args: list[str], key: str, tmp_path: Path) -> None:
    mod = __import__(f"benchmarks.{module}", fromlist=["main"])
    out = io.StringIO()
    path = tmp_path / f"{module}.json"
    assert mod.main([*args, "--json", str(path)], out=out) == 0
    assert json.loads(path.read_text())[key]
    assert "## Results" in out.getvalue() and f"wrote {path}" in out.getvalue()


def test_matcher_reference_sampling_path() -> None:
    report = run_matcher((30,), repeat=1, reference_max_nodes=10, reference_sample=10, out=io.StringIO())
    (row,) = report.sizes
    assert row.reference.sample_nodes == 10
    assert row.reference.scale == pytest.approx(3.0)


def test_cpu_per_pod_goes_into_the_row_only_when_both_sides_were_measurable() -> None:
    """A quick run's few pods can read as 0 CPU ticks: no CPU extras then (every extra is positive),
    and a ratio that JSON stored as null prints as a dash instead of failing the summary."""
    latency = Latency.of([1_000_000, 2_000_000])

    def pod(ext: float, floor: float) -> PodResult:
        return PodResult(500, 5000, 2, 400, latency, latency, ext, floor)

    assert _cpu_extra(pod(2.0, 0.8)) == {"cpu_ms": 2.0, "floor_cpu_ms": 0.8, "cpu_ratio": 2.5}
    assert _cpu_extra(pod(2.0, 0.0)) == {} and _cpu_extra(pod(0.0, 0.8)) == {}
    assert format_extra({"cpu_ms": 2.0, "cpu_ratio": None}) == "CPU ms 2.00; CPU ratio –"
