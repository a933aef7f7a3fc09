"""Write the mutation-testing report from mutmut's results (``make mutate``).

mutmut keeps, next to each mutated file under ``mutants/``, a ``.meta`` JSON file with the exit code
of the tests for every mutant. This reads those, counts per source file, and lists every mutant that
survived with its diff (from ``mutmut show``) and the reason, from ``tests/equivalent_mutants.txt``,
why no test can tell it from the original (or "NO REASON GIVEN": a gap in the tests).

    python -m tests.mutation_report [--mutants DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "tests" / "equivalent_mutants.txt"

# mutmut's exit codes (mutmut/stats.py): what the tests of one mutant ended with.
_STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
_TIMEOUT = {36, -24, 24, 152, 255}


def status_of(exit_code: int | None) -> str:
    if exit_code is None:
        return "not checked"
    if exit_code in _TIMEOUT:
        return "timeout"
    if exit_code == 37:
        return "caught by type check"
    return _STATUS.get(exit_code, "suspicious")


@dataclass
class FileResult:
    path: str
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[str] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return sum(n for s, n in self.counts.items() if s not in ("not checked", "skipped"))

    @property
    def killed(self) -> int:
        return self.counts["killed"] + self.counts["timeout"] + self.counts["caught by type check"]


def read_results(mutants: Path) -> list[FileResult]:
    out = []
    for meta in sorted(mutants.rglob("*.py.meta")):
        doc = json.loads(meta.read_text())
        codes: dict[str, int | None] = doc.get("exit_code_by_key", {})
        if not codes:
            continue
        result = FileResult(str(meta.relative_to(mutants)).removesuffix(".meta"))
        for name, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
            status = status_of(code)
            result.counts[status] += 1
            if status in ("survived", "no tests", "suspicious"):
                result.survivors.append(name)
        out.append(result)
    return out


def _natural(name: str) -> tuple[str, int]:
    head, _, number = name.rpartition("_")
    return (head, int(number)) if number.isdigit() else (name, 0)


def read_reasons(path: Path = EQUIVALENT) -> dict[str, str]:
    """``<mutant name>: <reason>`` lines; ``#`` starts a comment line."""
    reasons: dict[str, str] = {}
    if not path.exists():
        return reasons
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(":")
        reasons[name.strip()] = reason.strip()
    return reasons


def show(name: str, cwd: Path) -> str:
    mutmut = Path(sys.executable).with_name("mutmut")
    done = subprocess.run([str(mutmut), "show", name], cwd=cwd, capture_output=True, text=True, check=False)
    return done.stdout.strip() or done.stderr.strip()


def _pct(score: float | None) -> str:
    return "—" if score is None else f"{100 * score:.1f}%"


def render(results: list[FileResult], reasons: dict[str, str], diffs: dict[str, str]) -> str:
    def equivalent(r: FileResult) -> int:
        return sum(1 for n in r.survivors if n in reasons)

    def row(name: str, rs: list[FileResult]) -> str:
        total = sum(sum(r.counts.values()) for r in rs)
        checked = sum(r.checked for r in rs)
        killed = sum(r.killed for r in rs)
        survived = sum(len(r.survivors) for r in rs)
        eq = sum(equivalent(r) for r in rs)
        score = killed / checked if checked else None
        adjusted = killed / (checked - eq) if checked - eq > 0 else None
        return (
            f"| {name} | {total} | {checked} | {killed} | {survived} | {eq} "
            f"| {sum(r.counts['timeout'] for r in rs)} | {_pct(score)} | {_pct(adjusted)} |"
        )

    lines = [
        "# Mutation testing report",
        "",
        "Written by `python -m tests.mutation_report` after `make mutate` (mutmut over `extender/match/`",
        "and `extender/spec/`, the property tests derandomized at a twentieth of their examples).",
        "",
        "- *killed*: a test failed or timed out on the mutant (timeouts are also counted on their own);",
        "- *survived*: every selected test that reaches the mutant passed; *equivalent*: the survivors",
        "  that behave exactly like the original, each with its reason below",
        "  (from `tests/equivalent_mutants.txt`);",
        "- *score*: killed / checked; *score without equivalents*: killed / (checked - equivalent), the",
        "  share of the mutants a test could possibly kill that one does.",
        "",
        "A file whose mutants were not run (`make mutate MUTANTS=...` runs a subset) shows fewer checked.",
        "Section numbers in the quoted code are those of docs/nfd-semantics.md.",
        "",
        "| file | mutants | checked | killed | survived | equivalent | timeout | score "
        "| score without equivalents |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [row(f"`{r.path}`", [r]) for r in results]
    lines.append(row("**all**", results))
    unexplained = [n for r in results for n in r.survivors if n not in reasons]
    lines += ["", f"Surviving mutants without a stated reason (gaps in the tests): {len(unexplained)}.", ""]
    for r in results:
        if not r.survivors:
            continue
        lines += [f"## `{r.path}`: {len(r.survivors)} surviving", ""]
        for name in r.survivors:
            lines += [f"### `{name}`", "", f"Why: {reasons.get(name, 'NO REASON GIVEN')}", ""]
            if diffs.get(name):
                lines += ["```diff", diffs[name], "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants")
    parser.add_argument("--out", type=Path, default=None, help="write here instead of standard output")
    parser.add_argument("--no-diffs", action="store_true", help="do not call `mutmut show` per survivor")
    args = parser.parse_args(argv)
    results = read_results(args.mutants)
    if not results:
        print(f"no mutmut results under {args.mutants}", file=sys.stderr)
        return 2
    reasons = read_reasons()
    diffs = {} if args.no_diffs else {n: show(n, args.mutants.parent) for r in results for n in r.survivors}
    text = render(results, reasons, diffs)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
