"""``compat-extender explain``: ask a running extender why its nodes can or cannot run an image.

    compat-extender explain --image REF [--node NAME] [--tags a,b] [--url URL] [--json]

A client of ``GET /debug/explain`` (debug endpoints on; ``kubectl port-forward`` to reach one in a
cluster). It prints the same report as ``validate-node`` and the extender's ``format=text``
(:mod:`extender.match.report`), one per node, from the extender's own account, so what it shows is
what the filter decided. Exit codes: 0 every node shown can run the
image (or the image has no spec: it imposes nothing), 1 at least one cannot, 2 any error (extender
unreachable, debug endpoints off, registry lookup failed, bad answer).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson

from extender.errors import CommandError
from extender.match.report import failures, fit, render

DEFAULT_URL = "http://127.0.0.1:8888"
MAX_ANSWER_BYTES = 256 << 20


DESCRIPTION = """\
Ask a running extender why its nodes can or cannot run an image: a client of its GET /debug/explain
(debug.enabled; in a cluster, reach it with kubectl port-forward). It prints the table validate-node
prints, one per node, from the extender's own account, so what it shows is what the filter
decided.
"""

EPILOG = """\
examples:
  compat-extender explain --image registry.example.com/telco/dpdk-app:23.11
  compat-extender explain --image registry.example.com/hpc/solver:2024.2 --node gpu-h100-01
  compat-extender explain --url http://127.0.0.1:8889 --image reg.example.com/app:1 --tags gpu --json

exit codes:
  0  every node shown can run the image (or the image has no spec: it imposes nothing)
  1  a node shown cannot run it
  2  bad usage, or an error: the extender cannot be reached, its debug endpoints are off, its
     spec lookup failed, or its answer is not what was expected
"""


def add_parser(sub: Any) -> None:
    e = sub.add_parser(
        "explain",
        help="show why a running extender's nodes can or cannot run an image",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("--image", required=True, help="image reference, e.g. registry.example.com/app:1.0")
    e.add_argument("--node", help="explain this node only (default: every node, up to debug.maxNodes)")
    e.add_argument("--tags", help="comma-separated compatibility-set tags (as the pod annotation)")
    e.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"the extender's debug endpoint base URL (debug.port's listener if set) [{DEFAULT_URL}]",
    )
    e.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer [30]")
    e.add_argument("--json", action="store_true", help="print the extender's JSON answer as is")


def _get(url: str, timeout: float) -> tuple[int, Any]:
    """GET a JSON answer; 4xx/5xx answers are returned too (their body says why)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, body = answer.status, answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(MAX_ANSWER_BYTES + 1)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CommandError(f"cannot reach the extender at {url}: {reason}") from None
    if len(body) > MAX_ANSWER_BYTES:
        raise CommandError(f"{url}: answer larger than {MAX_ANSWER_BYTES} bytes")
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        if status == 404:  # aiohttp's plain "404: Not Found": no such route
            raise CommandError(
                f"{url}: 404, no such endpoint (are the debug endpoints on? debug.enabled)"
            ) from None
        text = body[:200].decode("utf-8", "replace").strip()
        raise CommandError(f"{url}: HTTP {status}, not JSON: {text!r}") from None


def _url(args: argparse.Namespace) -> str:
    query = {"image": args.image}
    if args.node:
        query["node"] = args.node
    if args.tags:
        query["tags"] = args.tags
    return str(args.url).rstrip("/") + "/debug/explain?" + urllib.parse.urlencode(query)


def explain_command(args: argparse.Namespace) -> int:
    url = _url(args)
    try:
        status, doc = _get(url, args.timeout)
    except CommandError as exc:
        print(f"compat-extender: {exc}", file=sys.stderr)
        return 2
    message = doc.get("error") if isinstance(doc, dict) else None
    if status == 404 and message and "no compatibility spec" in message:
        print(message)  # an image without a spec runs anywhere: not an error
        return 0
    if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        print(f"compat-extender: {url}: HTTP {status}: {message or 'unexpected answer'}", file=sys.stderr)
        return 2
    rows = [row for row in doc["nodes"] if isinstance(row, dict)]
    incompatible = [
        row for row in rows if not str(row.get("verdict", "")).startswith(("compatible", "passed"))
    ]
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _print_table(doc, rows, len(incompatible))
    return 1 if incompatible else 0


def _first_mismatch(set_account: dict[str, Any]) -> str | None:
    """``set #0: first mismatch: rule nic, matchAny[0]: pci.device.device {...}: found``, from the
    set's failures (grouped per block; computed here when an older extender did not send them)."""
    groups = set_account.get("failures")
    if not isinstance(groups, list):
        groups = failures(set_account)
    for group in groups:
        for f in group.get("failed") or []:
            where = f"rule {group.get('rule') or '(unnamed)'}, {group.get('block')}"
            name = f"{f.get('feature')}.{f['key']}" if f.get("key") else str(f.get("feature"))
            what = f"{name} {f.get('expression', '')}".rstrip()
            return f"set #{set_account.get('index')}: first mismatch: {where}: {what}: {f.get('found', '')}"
    return None


def _print_table(doc: dict[str, Any], rows: list[dict[str, Any]], n_bad: int) -> None:
    spec = doc.get("spec") or {}
    tags = doc.get("tags")
    out = [f"IMAGE {doc.get('image')}"]
    sets = f"spec {spec.get('digest')}, {spec.get('sets')} compatibility set(s)"
    out.append(sets + (f"; tags {', '.join(tags)}" if tags else "; all sets"))
    out.extend(f"  warning: {w}" for w in spec.get("warnings") or [])
    for row in rows:
        out.append("")
        out.append(
            f"=== {row.get('node')}: {str(row.get('verdict', '')).upper()}, score {row.get('score', 0)}"
        )
        explanation = row.get("explanation") or {}
        out.append(render(explanation, heading=False).rstrip("\n"))
        for s in explanation.get("sets") or []:
            mismatch = _first_mismatch(s) if s.get("status") != "matched" else None
            if mismatch:
                out.append(mismatch)
    out.append("")
    total = doc.get("nodesTotal", len(rows))
    shown = f"{len(rows) - n_bad} of {len(rows)} node(s) shown can run the image; {n_bad} cannot"
    out.append(
        shown + (f" ({total - len(rows)} more not shown: add --node NAME)" if doc.get("truncated") else "")
    )
    print(fit("\n".join(out)))
