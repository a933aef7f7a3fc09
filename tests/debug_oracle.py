"""The debug endpoints as they were before they were paced (commit 229df93): every answer computed in
one synchronous stretch on the event loop. The oracle the paced endpoints (extender/http/debug.py)
are compared with: within their time budget they must answer these bytes exactly.

The handlers below are that commit's, unchanged but for the imports and the text report: where they
called ``Explanation.render_text()`` they call the report's renderer
(:func:`extender.match.report.render`, what ``render_text`` became), and ``_answer`` fits the text to
120 columns (:func:`extender.match.report.fit`), as the paced endpoints do since the report format
changed. The input parsing they share with today's module (``_pod_and_nodes``, ``_whatif_request``,
``_best``) did not change and is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from extender.decide import Decision, ImageSpec, decide
from extender.errors import BadRequestError, ImageLookupError, PodError, SpecLookupError, WireError
from extender.http.context import FEATURES, METRICS, SETTINGS, SPECS, AppSettings, lookup_specs, read_body
from extender.http.debug import _best, _pod_and_nodes, _whatif_request
from extender.http.metrics import Metrics
from extender.match.explain import explain
from extender.match.report import fit, render
from extender.match.table import FeatureTable
from extender.pods import parse_tags, pod_failure_policy, pod_images, pod_tags
from extender.sources.base import FeatureSource, SpecSource
from extender.spec.model import Spec


def oracle_app(features: FeatureSource, specs: SpecSource, settings: AppSettings) -> web.Application:
    """The three computing debug endpoints, synchronous, on the paths the extender serves them."""
    app = web.Application()
    app[FEATURES] = features
    app[SPECS] = specs
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.router.add_get("/debug/explain", explain_image)
    app.router.add_post("/debug/explain", explain_pod)
    app.router.add_post("/debug/whatif", whatif)
    return app


def _error(message: str, status: int) -> web.Response:
    return web.Response(body=orjson.dumps({"error": message}), status=status, content_type="application/json")


def _answer(request: web.Request, doc: dict[str, Any], text: str) -> web.Response:
    fmt = request.query.get("format", "json")
    if fmt == "text":
        return web.Response(text=fit(text))
    if fmt != "json":
        return _error(f"format: expected json or text, got {fmt!r}", 400)
    return web.Response(body=orjson.dumps(doc), content_type="application/json")


def _verdict(decision: Decision, node: str, table: FeatureTable) -> str:
    if node in decision.failed:
        return "incompatible" if node in table else "no NodeFeature"
    return "compatible" if node in table else "passed (no NodeFeature)"


def _spec_summary(spec: Spec) -> dict[str, Any]:
    return {
        "digest": spec.digest,
        "sets": len(spec.compatibilities),
        "warnings": [str(w) for w in spec.warnings],
    }


def _nodes_for(
    request: web.Request, table: FeatureTable, given: Sequence[str] | None
) -> tuple[list[str], int]:
    """The nodes to explain: ?node=, else the request's own list, else every known node (capped)."""
    node = request.query.get("node")
    if node:
        return [node], 1
    names = list(given) if given is not None else sorted(table.node_names())
    limit = request.app[SETTINGS].debug_max_nodes
    return names[:limit], len(names)


async def explain_image(request: web.Request) -> web.Response:
    image = request.query.get("image", "").strip()
    if not image:
        return _error("query parameter 'image' is required, e.g. /debug/explain?image=registry/repo:tag", 400)
    tags = parse_tags(request.query.get("tags"))
    try:
        spec = await request.app[SPECS].lookup(image)
    except SpecLookupError as exc:
        request.app[METRICS].lookup_errors.labels("debug").inc()
        return _error(f"spec lookup failed for image {image}: {exc}", 502)
    if spec is None:
        return _error(f"image {image} has no compatibility spec: it imposes nothing on nodes", 404)
    table = request.app[FEATURES].table
    names, total = _nodes_for(request, table, None)
    settings = request.app[SETTINGS]
    decision = decide(
        [ImageSpec(image, spec)],
        table,
        names,
        tags=tags,
        missing_features=settings.missing_features,
        detail_limit=0,
    )
    rows = []
    text = [f"IMAGE {image}  spec {spec.digest}  tags {','.join(sorted(tags)) if tags else '(all sets)'}"]
    for name in names:
        account = explain(spec, table.node_features(name), node=name, tags=tags)
        verdict = _verdict(decision, name, table)
        rows.append(
            {
                "node": name,
                "verdict": verdict,
                "score": decision.scores.get(name, 0),
                "explanation": account.to_dict(),
            }
        )
        text.append(f"\n== {name}: {verdict.upper()}, score {decision.scores.get(name, 0)}")
        text.append(render(account.to_dict()).rstrip("\n"))
    if total > len(names):
        text.append(f"\n({total - len(names)} more nodes not shown; add &node=NAME)")
    doc = {
        "image": image,
        "spec": _spec_summary(spec),
        "tags": sorted(tags) if tags is not None else None,
        "nodes": rows,
        "nodesTotal": total,
        "truncated": total > len(names),
    }
    return _answer(request, doc, "\n".join(text) + "\n")


async def explain_pod(request: web.Request) -> web.Response:
    try:
        pod, given = _pod_and_nodes(await read_body(request))
        images = pod_images(pod)
        tags = pod_tags(pod)
        settings = request.app[SETTINGS]
        specs, ignored = await lookup_specs(
            request.app, images, pod_failure_policy(pod, settings.failure_policy)
        )
    except (BadRequestError, WireError, PodError) as exc:
        return _error(str(exc), 400)
    except ImageLookupError as exc:
        return _error(f"{exc} (failure policy Fail: the filter answers Error and the scheduler retries)", 502)
    table = request.app[FEATURES].table
    names, total = _nodes_for(request, table, given)
    decision = decide(
        specs,
        table,
        names,
        tags=tags,
        missing_features=settings.missing_features,
        detail_limit=len(names),
    )
    meta = pod.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    pod_name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    image_rows: list[dict[str, Any]] = []
    spec_by_image = {s.image: s.spec for s in specs if s.spec is not None}
    for image in images:
        row: dict[str, Any] = {"image": image, "spec": None}
        if image in spec_by_image:
            row["spec"] = _spec_summary(spec_by_image[image])
        elif image in ignored:
            row["lookupError"] = ignored[image] + " (ignored: failure policy Ignore)"
        image_rows.append(row)
    text = [f"POD {pod_name}  tags {','.join(sorted(tags)) if tags else '(all sets)'}"]
    for row in image_rows:
        what = row["spec"]["digest"] if row["spec"] else row.get("lookupError", "no spec: imposes nothing")
        text.append(f"  image {row['image']}: {what}")
    node_rows = []
    for name in names:
        verdict = _verdict(decision, name, table)
        nf = table.node_features(name)
        accounts = [(s.image, explain(s.spec, nf, node=name, tags=tags)) for s in specs if s.spec is not None]
        node_rows.append(
            {
                "node": name,
                "verdict": verdict,
                "score": decision.scores.get(name, 0),
                "reason": decision.failed.get(name, ""),
                "images": [{"image": i, "explanation": a.to_dict()} for i, a in accounts],
            }
        )
        text.append(f"\n== {name}: {verdict.upper()}, score {decision.scores.get(name, 0)}")
        if name in decision.failed:
            text.append(f"   reason: {decision.failed[name]}")
        for image, account in accounts:
            text.append(f"-- image {image}")
            text.append(render(account.to_dict()).rstrip("\n"))
    if total > len(names):
        text.append(f"\n({total - len(names)} more nodes not shown; add ?node=NAME)")
    doc = {
        "pod": pod_name,
        "tags": sorted(tags) if tags is not None else None,
        "images": image_rows,
        "nodes": node_rows,
        "nodesTotal": total,
        "truncated": total > len(names),
    }
    return _answer(request, doc, "\n".join(text) + "\n")


async def whatif(request: web.Request) -> web.Response:
    try:
        nf, images, tags = _whatif_request(await read_body(request))
    except BadRequestError as exc:
        return _error(str(exc), exc.status)
    source = request.app[SPECS]
    rows: list[dict[str, Any]] = []
    text = [f"WHAT IF node {nf.node} ({len(nf.feature_names())} features)"]
    for image in images:
        row: dict[str, Any] = {"image": image}
        try:
            spec = await source.lookup(image)
        except SpecLookupError as exc:
            row.update(verdict="unknown", reason=f"spec lookup failed: {exc}")
            text.append(f"\n== {image}: UNKNOWN (spec lookup failed: {exc})")
            rows.append(row)
            continue
        if spec is None:
            row.update(verdict="compatible", reason="no compatibility spec: imposes nothing")
            text.append(f"\n== {image}: COMPATIBLE (no compatibility spec)")
            rows.append(row)
            continue
        account = explain(spec, nf, node=nf.node, tags=tags)
        best, weight = _best(account)
        verdict = "compatible" if account.compatible else "incompatible"
        row.update(verdict=verdict, reason=account.summary(), bestSet=best, weight=weight)
        row["explanation"] = account.to_dict()
        rows.append(row)
        text.append(f"\n== {image}: {verdict.upper()} ({account.summary()})")
        text.append(render(account.to_dict()).rstrip("\n"))
    doc = {
        "node": nf.node,
        "tags": sorted(tags) if tags is not None else None,
        "runnable": [r["image"] for r in rows if r["verdict"] == "compatible"],
        "notRunnable": [r["image"] for r in rows if r["verdict"] != "compatible"],
        "images": rows,
    }
    return _answer(request, doc, "\n".join(text) + "\n")
