"""``compat-extender check-spec FILE...``: parse image compatibility spec files the way NFD does."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from extender.errors import ExtenderError
from extender.spec.parse import parse_spec


def add_parser(sub: Any) -> None:
    c = sub.add_parser("check-spec", help="parse image compatibility spec files the way NFD does")
    c.add_argument("files", nargs="+", type=Path)


def check_specs(files: Sequence[Path]) -> int:
    status = 0
    for path in files:
        try:
            spec = parse_spec(path.read_bytes())
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            status = max(status, 2)
            continue
        except ExtenderError as exc:
            print(f"{path}: INVALID: {exc}")
            status = max(status, 1)
            continue
        tags = sorted({c.tag for c in spec.compatibilities if c.tag})
        print(
            f"{path}: ok, {len(spec.compatibilities)} compatibility sets"
            + (f", tags {', '.join(tags)}" if tags else "")
            + f", digest {spec.digest}"
        )
        for w in spec.warnings:
            print(f"  warning: {w}")
    return status
