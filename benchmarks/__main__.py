"""``python -m benchmarks run|plot|list``: the benchmark harness's command line.

    python -m benchmarks run [--scenario matcher,http,...] [--nodes 100,1000,...] [--quick]
                             [--out benchmarks/out] [--seed N]
    python -m benchmarks plot [--results benchmarks/out] [--out benchmarks/out/latency.png]
    python -m benchmarks list

``run`` shows its progress on stderr, writes ``<out>/<scenario>.json`` and ``.md`` per scenario and
``<out>/summary.md``, and prints the summary. ``--nodes`` replaces every chosen scenario's own node
counts (``list`` says what a node count means in each). Exit status 1 if a scenario failed.

The default folder, ``benchmarks/out/``, is git-ignored: a run does not touch the published figures
in ``benchmarks/results/`` (``plot --results benchmarks/results`` redraws their plot).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from benchmarks import harness
from benchmarks.harness import SCENARIOS, run
from benchmarks.report import parse_sizes


def _scenarios(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(SCENARIOS)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    default_out = harness.DEFAULT_OUT  # read here, not at import: tests point it elsewhere
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="The benchmark harness.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run scenarios, write JSON + Markdown results and summary.md")
    r.add_argument(
        "--scenario",
        type=_scenarios,
        default=list(SCENARIOS),
        help=f"comma-separated, default all: {','.join(SCENARIOS)}",
    )
    r.add_argument(
        "--nodes",
        type=parse_sizes,
        default=None,
        help="comma-separated node counts for every chosen scenario (default: each scenario's own)",
    )
    r.add_argument("--quick", action="store_true", help="smoke sizes and repeats (checks the harness only)")
    r.add_argument(
        "--out",
        type=Path,
        default=default_out,
        help=f"results directory (default {default_out}, git-ignored)",
    )
    r.add_argument("--seed", type=int, default=0, help="cluster and spec generator seed")

    pl = sub.add_parser("plot", help="draw p50/p99 against node count for every scenario (PNG)")
    pl.add_argument(
        "--results",
        type=Path,
        default=default_out,
        help=f"directory of <scenario>.json files (default {default_out})",
    )
    pl.add_argument("--out", type=Path, default=None, help="PNG path (default <results>/latency.png)")

    sub.add_parser("list", help="the scenarios, their node counts and baselines")
    return p


def _list(out: TextIO) -> None:
    for s in SCENARIOS.values():
        print(f"{s.name}: {s.title}", file=out)
        print(f"    nodes: {s.nodes_mean}", file=out)
        print(
            f"    default {', '.join(f'{n:,}' for n in s.default_nodes)}; quick "
            f"{', '.join(f'{n:,}' for n in s.quick_nodes)}",
            file=out,
        )
        print(f"    baseline: {s.baseline}", file=out)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    stdout = out if out is not None else sys.stdout
    if args.command == "list":
        _list(stdout)
        return 0
    if args.command == "plot":
        from benchmarks.plot import PlotError, plot

        target = args.out or args.results / "latency.png"
        try:
            plot(args.results, target)
        except PlotError as exc:
            print(f"plot: {exc}", file=err or sys.stderr)
            return 2
        print(f"wrote {target}", file=stdout)
        return 0
    ok, failed = run(
        args.scenario,
        nodes=args.nodes,
        quick=args.quick,
        seed=args.seed,
        out_dir=args.out,
        progress_stream=err,
        argv=args_list,
        err=err,
    )
    summary = args.out / "summary.md"
    print(summary.read_text(), file=stdout)
    print(
        f"wrote {', '.join(f'{n}.json' for n in ok) or 'nothing'} and summary.md in {args.out}", file=stdout
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
