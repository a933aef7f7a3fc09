"""Smoke test of the cold-path benchmark (benchmarks/cold.py) against the real loopback registry:
a --quick run reports one cold sample per image, warm samples, and the registry requests each cold
lookup made (counted, not timed: 5 for the first image of a repository without a referrers API,
then 4)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from benchmarks.cold import main


def test_quick_run_reports_cold_and_warm(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "cold.json"
    assert main(["--quick", "--json", str(path)], out=out) == 0
    doc = json.loads(path.read_text())
    assert doc["images"] == 3 and len(doc["cold_ms"]) == 3
    assert len(doc["warm_ms"]) == 3 * doc["repeat"]
    assert doc["requests_per_cold"] == [5, 4, 4]
    assert all(x > 0 for x in doc["cold_ms"] + doc["warm_ms"])
    assert doc["summary"]["cold_over_warm"] > 0
    assert "| cold (registry lookup) |" in out.getvalue()
