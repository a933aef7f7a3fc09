"""``compat-extender check-spec [--strict] FILE...``: parse image compatibility spec files the way NFD
does and lint them (:mod:`extender.spec.lint`), reporting every problem of every file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from extender.spec.lint import LintReport, lint_spec

DESCRIPTION = """\
Parse each spec the way NFD's client does and report every problem found, with its path.

errors (the spec is INVALID; NFD or the extender cannot use it): what the parser refuses. After
  the first error, every compatibility set is checked on its own, so each set reports its first
  error; an error in the YAML syntax or in the document's shape stops the decode there.
warnings: what NFD reports as an error on each node where it is compared (a regexp RE2 cannot
  compile, a non-integer bound of Gt/Ge/Lt/Le/GtLt/GeLe, missing values...), unknown keys (NFD
  drops them silently), sets without rules, varsTemplate.
pitfalls: valid specs that do not mean what was written: unquoted numbers YAML 1.1 changes
  (0302 is 194), 0x-prefixed or upper-case pci.device/usb.device ids, module names with '-'
  in kernel.loadedmodule/enabledmodule, feature names NFD does not publish (local.* and
  rule.matched are accepted), and a spec with no compatibility sets (the image runs nowhere).
  Lint checks read the YAML tree, so they also run when the spec has errors.
"""

EPILOG = """\
examples:
  compat-extender check-spec examples/specs/dpdk-app.yaml
  compat-extender check-spec --strict examples/specs/*.yaml

exit codes:
  0  every file is valid (warnings and pitfalls are printed; with --strict: there are none)
  1  a file is invalid, or with --strict has a warning or pitfall
  2  a file cannot be read, or bad usage
"""


def add_parser(sub: Any) -> None:
    c = sub.add_parser(
        "check-spec",
        help="parse and lint image compatibility spec files the way NFD reads them",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument(
        "--strict", action="store_true", help="fail (exit 1) on warnings and pitfalls too, not only errors"
    )
    c.add_argument("files", nargs="+", type=Path)


def print_report(report: LintReport, name: str, *, strict: bool, file: Any = None) -> None:
    """One summary line for the file, then one line per finding."""
    out = file if file is not None else sys.stdout
    spec, errors = report.check.spec, report.errors
    if errors or spec is None:
        print(f"{name}: INVALID: {errors[0]}", file=out)
        for e in errors[1:]:
            print(f"  error: {e}", file=out)
    else:
        tags = sorted({c.tag for c in spec.compatibilities if c.tag})
        print(
            f"{name}: ok, {len(spec.compatibilities)} compatibility sets"
            + (f", tags {', '.join(tags)}" if tags else "")
            + f", digest {spec.digest}",
            file=out,
        )
    for f in report.warnings:
        print(f"  {f.severity.value}: {f}", file=out)
    if strict and report.warnings and not errors:
        print(f"{name}: FAILED --strict: {len(report.warnings)} warning(s)/pitfall(s)", file=out)


def check_specs(files: Sequence[Path], strict: bool = False) -> int:
    status = 0
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            status = max(status, 2)
            continue
        report = lint_spec(data)
        print_report(report, str(path), strict=strict)
        if report.failed(strict):
            status = max(status, 1)
    return status
