"""The mutation report (``python -m tests.mutation_report``) counts mutmut's results right and names
every survivor, with its reason or as a gap."""

from __future__ import annotations

import json
from pathlib import Path

from tests.mutation_report import main, read_reasons, read_results, render, status_of


def _meta(root: Path, path: str, codes: dict[str, int | None]) -> None:
    meta = root / f"{path}.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))


def test_exit_codes_map_to_mutmut_statuses() -> None:
    assert [status_of(c) for c in (1, 3, 0, 5, 33, 34, 36, -24, 37, None, 99)] == [
        "killed",
        "killed",
        "survived",
        "no tests",
        "no tests",
        "skipped",
        "timeout",
        "timeout",
        "caught by type check",
        "not checked",
        "suspicious",
    ]


def test_counts_scores_and_survivors(tmp_path: Path) -> None:
    mutants = tmp_path / "mutants"
    _meta(
        mutants,
        "extender/match/a.py",
        {"m.x_f__mutmut_1": 1, "m.x_f__mutmut_2": 0, "m.x_f__mutmut_10": 36, "m.x_f__mutmut_3": 0},
    )
    _meta(mutants, "extender/match/b.py", {"n.x_g__mutmut_1": None, "n.x_g__mutmut_2": 1})
    _meta(mutants, "extender/match/empty.py", {})
    results = read_results(mutants)
    assert [r.path for r in results] == ["extender/match/a.py", "extender/match/b.py"]
    a, b = results
    assert (a.checked, a.killed, a.survivors) == (4, 2, ["m.x_f__mutmut_2", "m.x_f__mutmut_3"])
    assert (b.checked, b.killed, b.survivors) == (1, 1, [])

    reasons_file = tmp_path / "equivalent.txt"
    reasons_file.write_text("# comment\n\nm.x_f__mutmut_2: the same thing, spelled: differently\n")
    reasons = read_reasons(reasons_file)
    assert reasons == {"m.x_f__mutmut_2": "the same thing, spelled: differently"}

    text = render(results, reasons, {"m.x_f__mutmut_3": "- a\n+ b"})
    assert "| `extender/match/a.py` | 4 | 4 | 2 | 2 | 1 | 1 | 50.0% | 66.7% |" in text
    assert "| `extender/match/b.py` | 2 | 1 | 1 | 0 | 0 | 0 | 100.0% | 100.0% |" in text
    assert "| **all** | 6 | 5 | 3 | 2 | 1 | 1 | 60.0% | 75.0% |" in text
    assert "without a stated reason (gaps in the tests): 1." in text
    assert "Why: the same thing, spelled: differently" in text
    assert "Why: NO REASON GIVEN\n\n```diff\n- a\n+ b\n```" in text


def test_no_results_is_an_error(tmp_path: Path) -> None:
    assert main(["--mutants", str(tmp_path), "--no-diffs"]) == 2
