"""What every benchmark prints the same way: the machine, millisecond cells, size lists, the
closing table and the JSON file."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import orjson


def say(out: TextIO, text: str = "") -> None:
    print(text, file=out, flush=True)


def dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_facts() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = str(len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        usable = str(os.cpu_count())
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "google-re2": dist_version("google-re2"),
        "cpu": cpu,
        "nproc": usable,
        "cpu_count": str(os.cpu_count()),
        "platform": platform.platform(),
    }


def fmt_ms(x: float) -> str:
    """Milliseconds with about three significant digits."""
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    if x >= 0.1:
        return f"{x:.3f}"
    return f"{x:.4f}"


def parse_sizes(text: str) -> tuple[int, ...]:
    """``500,5_000`` -> (500, 5000), for argparse."""
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return sizes


def finish(out: TextIO, markdown: str, json_path: Path | None, doc: dict[str, Any]) -> None:
    """The closing results table, and the JSON file when one was asked for."""
    say(out, "## Results")
    say(out)
    say(out, markdown)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        say(out, f"\nwrote {json_path}")
