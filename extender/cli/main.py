"""``compat-extender``: the command line.

    compat-extender serve [--config FILE] [--host H] [--port P] [--features DIR] [--images FILE] ...
    compat-extender check-spec FILE...
    compat-extender attach --image REF --spec FILE      (cli/registry.py)
    compat-extender discover --image REF
    compat-extender validate-node (--image REF | --spec FILE)  (cli/validate.py)
    compat-extender host-features
    compat-extender explain --image REF [--node NAME]   (cli/explain.py)

Exit codes: 0 success, 1 a check failed (``check-spec``: a spec NFD would reject; ``validate-node``
and ``explain``: incompatible; ``attach``: a spec not pushed; ``discover``: no artifact), 2 bad
usage, configuration or any other error. ``compat-extender --help`` and each command's ``--help``
show a description, examples and the exit codes; ``tests/test_cli_help.py`` holds the codes listed
to the ones the code returns.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from extender.cli import check_spec, explain, registry, server, validate
from extender.http.metrics import build_info

__all__ = ["main"]


def version_line() -> str:
    """What ``--version`` prints: the command, its version, and what ``compat_extender_build_info``
    adds (the Python version, the source revision)."""
    b = build_info()
    return f"compat-extender {b['version']} (Python {b['python_version']}, revision {b['revision']})"


class _Version(argparse.Action):
    """``--version``: argparse's own action formats its text when the parser is built, which would
    look the version up (``importlib.metadata``) on every run; this one does it only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        sys.stdout.write(version_line() + "\n")
        parser.exit(0)


DESCRIPTION = """\
A kube-scheduler extender that places pods only on nodes that can run their images, by the images'
NFD compatibility specs (OCI artifacts attached to the images) and the nodes' NodeFeatures; and the
tools around it for operators and image authors. `compat-extender COMMAND --help` tells more.
"""

EPILOG = """\
examples:
  compat-extender serve --config config/extender.yaml
  compat-extender check-spec examples/specs/dpdk-app.yaml
  compat-extender validate-node --image registry.example.com/hpc/solver:2024.2
  compat-extender --version

exit codes (each command's --help has its own):
  0  success
  1  a check failed: an invalid spec, an incompatible node, a spec not attached, no artifact found
  2  bad usage, a configuration error, or any other error
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compat-extender",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=_Version, help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    server.add_parser(sub)
    check_spec.add_parser(sub)
    registry.add_parsers(sub)
    validate.add_parsers(sub)
    explain.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return server.serve_command(args)
    if args.command == "check-spec":
        return check_spec.check_specs(args.files, args.strict)
    if args.command == "attach":
        return asyncio.run(registry.attach_command(args))
    if args.command == "discover":
        return asyncio.run(registry.discover_command(args))
    if args.command == "validate-node":
        return validate.validate_node_command(args)
    if args.command == "host-features":
        return validate.host_features_command(args)
    if args.command == "explain":
        return explain.explain_command(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse allows only the above
