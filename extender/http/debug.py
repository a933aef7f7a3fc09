"""The debug endpoints: why a node was (or would be) rejected, in full.

* ``GET /debug/explain?image=REF[&node=NAME][&tags=a,b][&format=text]`` — one image against one
  node or every known node (at most ``debug_max_nodes``, the answer says when it stopped).
* ``POST /debug/explain[?node=NAME][&format=text]`` with a v1.Pod (or an ExtenderArgs body, whose
  node names are then used) — the decision the filter would take, per node and per image, using the
  pod's tag and failure-policy annotations.
* ``POST /debug/whatif[?format=text]`` with ``{"nodeFeature": {...}, "images": [...], "tags": [...]}``
  — a node that does not exist yet (new hardware, a new kernel): which images could run there and
  why the others could not.
* ``GET /debug/sources`` — what each source loaded and what it currently cannot load.

Verdicts and scores come from :func:`extender.decide.decide` (the same call the filter makes) and
the accounts from :func:`extender.match.explain.explain`, so the debug view cannot disagree with
what the scheduler was told.

**Debug never stalls scheduling.** An account costs one reference walk per node and image (~1-5 ms
with a real spec), so explaining thousands of nodes is seconds of work, and /filter and /prioritize
share the event loop with it. That work is therefore *cooperative*: node by node (image by image),
and after every slice of about :data:`SLICE_SECONDS` of work the computation gives way
(:class:`Pacer`, :func:`pause`) until the loop has nothing else to run, so a verb's request waits
for about one slice (one node's walk, if that is longer), whatever the size of the explanation.
Measured on a busy 2-core machine, 5,010 nodes, the benchmark spec, every node explained: /filter
answered in 2-3 times its idle time (p50 10-30 ms, at most 15-100 ms); with one ``sleep(0)`` per
slice instead of :func:`pause`, 8-10 times; unpaced, it waited for the whole explanation (19-60 s).
A worker thread was the other way; it is not used because

* Python holds the GIL through the walk, so a thread gives the loop no more CPU than slicing does,
  and a loop thread that wants the GIL back after each socket wait may wait out the switch interval
  (5 ms) every time: a verb in flight would pay that at every step instead of one slice in all;
* the feature table is not thread-safe: a thread may only read a snapshot, whereas on the loop the
  snapshot is plain references taken between two awaits;
* a thread cannot be stopped: the time budget and the slot would have to be polled from inside it
  anyway, and the default executor it would occupy is also where aiohttp resolves host names.

What the computation reads is taken in one stretch, with the decision, before its first turn: the
nodes' ``NodeFeatures`` objects (immutable; the table replaces them, never mutates them). So an
answer describes one state of the table, as before, even when the table changes while it is built.

Two bounds: at most ``debug_max_concurrent`` computations at once (a further request is answered
429 at once, with ``Retry-After``: a queue would only hold bodies and connections, and every
computation running adds its slice to a verb's wait), and a time budget of ``debug_max_seconds``
(``debug.maxSeconds``) per computation, counted from when it gets its slot (spec lookups are
before, and are I/O). When the budget runs out the answer holds what was computed, marked
``"truncated": true`` with a ``truncatedReason``; within the budget the answer is unchanged. The
JSON rows and text blocks are encoded node by node inside the slices too, so the final answer is one
join, not one long serialization.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web

from extender.decide import NO_FEATURES_REASON, Decision, ImageSpec, decide, missing_platform_reason
from extender.errors import (
    BadRequestError,
    ExtenderError,
    ImageLookupError,
    PodError,
    SpecLookupError,
    WireError,
)
from extender.features.nodefeature import NodeFeatures, ParsedNodeFeature, merge_features, parse_nodefeature
from extender.features.platform import platform_from_features
from extender.http.context import (
    CACHES,
    FEATURES,
    JSON,
    METRICS,
    SETTINGS,
    SOURCES,
    SPECS,
    AppSettings,
    lookup_specs,
    read_body,
)
from extender.http.metrics import CacheStats
from extender.http.wire import decode_args
from extender.match.explain import Explanation, explain
from extender.match.report import fit, render
from extender.match.table import FeatureTable
from extender.pods import parse_tags, pod_failure_policy, pod_images, pod_tags
from extender.sources.base import KnownImages, lookup_image
from extender.spec.model import Spec
from extender.spec.variants import Variant

MAX_WHATIF_IMAGES = 100
#: Work between two turns of the event loop, in seconds: about what a verb waits per step it takes.
SLICE_SECONDS = 0.002
#: A turn of the event loop that takes longer ran something else (an empty one takes a few µs).
BUSY_TURN_SECONDS = 20e-6
#: How long a computation keeps giving way while the loop stays busy, before its next slice.
MAX_PAUSE_SECONDS = 0.05
#: The clock slices, pauses and budgets are measured with (tests put a clock of their own here).
clock: Callable[[], float] = time.perf_counter
#: The computations in progress, one semaphore per application (added by :func:`add_routes`).
_SLOTS = web.AppKey("debug-slots", asyncio.Semaphore)


async def pause() -> None:
    """Give way to everything else: turns of the event loop for as long as they run something, until
    one comes back empty, or for at most :data:`MAX_PAUSE_SECONDS` while the loop stays busy.

    One turn would do for correctness, but a verb's request takes several (reading the body, the
    spec lookups' tasks, deciding, answering), and with a single turn it would wait a whole slice
    between each two of them; giving way until the loop is idle lets it finish within one pause. An
    idle loop costs one empty turn per slice."""
    start = clock()
    while True:
        before = clock()
        await asyncio.sleep(0)
        now = clock()
        if now - before < BUSY_TURN_SECONDS or now - start >= MAX_PAUSE_SECONDS:
            return


class Pacer:
    """One debug computation's time: a turn of the event loop after every slice of about
    :data:`SLICE_SECONDS` of work, and a budget of ``budget`` seconds from its start."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        start = clock()
        self.deadline = start + budget
        self._slice_end = start + SLICE_SECONDS
        self.pauses = 0

    @property
    def spent(self) -> bool:
        """The budget has run out: stop before the next node (or image)."""
        return clock() >= self.deadline

    async def turn(self) -> None:
        """After one unit of work (a node's or an image's account): give the loop a turn when
        this slice is used up."""
        if clock() >= self._slice_end:
            await pause()
            self.pauses += 1
            self._slice_end = clock() + SLICE_SECONDS

    def reason(self, done: int, asked: int, what: str, fewer: str) -> str:
        return (
            f"the time budget of {self.budget:g} s (debug.maxSeconds) ran out after {done} of the {asked} "
            f"{what} asked for; {fewer} or raise debug.maxSeconds"
        )


@asynccontextmanager
async def _computing(request: web.Request) -> AsyncIterator[Pacer]:
    """A slot among the application's ``debug_max_concurrent`` (or 429 at once) and the pacer of
    the computation that holds it."""
    settings = request.app[SETTINGS]
    slots = request.app[_SLOTS]
    if slots.locked():
        message = (
            f"{settings.debug_max_concurrent} debug explanation(s) already in progress, the most this "
            "extender runs at once (so that /filter and /prioritize keep their turn); retry when one "
            "has finished"
        )
        raise web.HTTPTooManyRequests(
            text=orjson.dumps({"error": message}).decode(), content_type=JSON, headers={"Retry-After": "1"}
        )
    async with slots:
        yield Pacer(settings.debug_max_seconds)


def _error(message: str, status: int) -> web.Response:
    return web.Response(body=orjson.dumps({"error": message}), status=status, content_type="application/json")


def _format(request: web.Request) -> str:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "text"):
        raise BadRequestError(f"format: expected json or text, got {fmt!r}")
    return fmt


class _Pieces:
    """An answer built node by node in the format asked for: each node's JSON row or text block is
    encoded in the slice that computed it, so the answer is one join at the end (byte for byte what
    encoding the whole document at once gives)."""

    def __init__(self, fmt: str) -> None:
        self.json = fmt == "json"
        self.parts: list[bytes] = []

    def row(self, row: dict[str, Any]) -> None:
        self.parts.append(orjson.dumps(row))

    def block(self, lines: list[str]) -> None:
        self.parts.append(fit("\n".join(lines)).encode())

    def response(
        self, head: dict[str, Any], key: str, tail: dict[str, Any], first: str, last: list[str]
    ) -> web.Response:
        """JSON: ``{**head, key: [rows], **tail}``; text: ``first``, the blocks, ``last``, one per line
        (each line at most :data:`extender.match.report.WIDTH` wide)."""
        if self.json:
            body = b"".join(
                (
                    orjson.dumps(head)[:-1],  # head and tail are never empty
                    b",",
                    orjson.dumps(key),
                    b":[",
                    b",".join(self.parts),
                    b"],",
                    orjson.dumps(tail)[1:],
                )
            )
            return web.Response(body=body, content_type=JSON)
        text = b"\n".join([fit(first).encode(), *self.parts, *(fit(line).encode() for line in last)]) + b"\n"
        return web.Response(body=text, content_type="text/plain", charset="utf-8")


def _verdict(decision: Decision, node: str, known: bool) -> str:
    if node in decision.failed:
        return "incompatible" if known else "no NodeFeature"
    return "compatible" if known else "passed (no NodeFeature)"


def _decide(
    settings: AppSettings,
    images: Sequence[ImageSpec],
    table: FeatureTable,
    names: list[str],
    tags: frozenset[str] | None,
) -> Decision:
    """The verdicts and scores the verbs give, with the settings they use; ``detail_limit=0``: the
    endpoints' own accounts, walked node by node between turns of the loop, give the reasons."""
    return decide(
        images,
        table,
        names,
        tags=tags,
        missing_features=settings.missing_features,
        missing_platform=settings.missing_platform,
        detail_limit=0,
    )


def _spec_summary(spec: Spec) -> dict[str, Any]:
    return {
        "digest": spec.digest,
        "sets": len(spec.compatibilities),
        "warnings": [str(w) for w in spec.warnings],
    }


def _image_summary(item: ImageSpec) -> dict[str, Any]:
    """An image's spec, or for a multi-arch image its index's and every variant asked about."""
    if item.variants is None:
        return _spec_summary(item.spec) if item.spec is not None else {}
    return {
        "index": None if item.spec is None else _spec_summary(item.spec),
        "indexArtifact": item.artifact or None,
        "variants": {p: _variant_doc(v) for p, v in sorted(item.variants.items())},
    }


def _variant_doc(variant: Variant | None) -> dict[str, Any] | None:
    """Which variant and which artifact judge a platform (``None``: the index has no such child)."""
    return None if variant is None else variant.to_dict()


def _image_line(item: ImageSpec) -> str:
    if item.variants is None:
        return f"spec {item.spec.digest}" if item.spec is not None else "no spec"
    parts = [f"multi-arch index {item.digest or '(local)'}"]
    parts += [
        f"{p}: {'no such variant' if v is None else v.describe(platform=False)}"
        for p, v in sorted(item.variants.items())
    ]
    return "; ".join(parts)


def _judged_by(item: ImageSpec, table: FeatureTable, node: str) -> tuple[str, Variant | None]:
    """A node's platform and the variant of ``item`` it is judged by (see extender.spec.variants)."""
    platform = table.platform_of(node) or table.default_platform
    return platform, item.variant(platform)


def _nodes_for(
    request: web.Request, table: FeatureTable, given: Sequence[str] | None
) -> tuple[list[str], int]:
    """The nodes to explain: ?node=, else the request's own list, else every known node (capped)."""
    node = request.query.get("node")
    if node:
        if node not in table:
            raise BadRequestError(
                f"node {node!r} is not known to the extender: no NodeFeature for it (a typo, or a node "
                "nfd-worker does not run on)",
                404,
            )
        return [node], 1
    names = list(given) if given is not None else sorted(table.node_names())
    limit = request.app[SETTINGS].debug_max_nodes
    return names[:limit], len(names)


def _snapshot(table: FeatureTable, names: Sequence[str]) -> dict[str, NodeFeatures | None]:
    """The nodes' features as the decision taken in the same stretch sees them (None: no
    NodeFeature); immutable objects, so they stay that state while the table moves on."""
    return {name: table.node_features(name) for name in names}


def _nodes_tail(
    pacer: Pacer, done: int, asked: int, total: int, sep: str
) -> tuple[dict[str, Any], list[str]]:
    """The answer's end for a list of nodes: how many there were, and whether (and why) some were
    not shown (``sep``: how ``node=NAME`` joins the request's query)."""
    tail: dict[str, Any] = {"nodesTotal": total, "truncated": total > done}
    last = []
    if done < asked:
        tail["truncatedReason"] = pacer.reason(done, asked, "nodes", f"ask for one ({sep}node=NAME)")
        last.append(f"\n({total - done} more nodes not shown: {tail['truncatedReason']})")
    elif total > asked:
        last.append(f"\n({total - asked} more nodes not shown; add {sep}node=NAME)")
    return tail, last


async def explain_image(request: web.Request) -> web.Response:
    image = request.query.get("image", "").strip()
    if not image:
        return _error("query parameter 'image' is required, e.g. /debug/explain?image=registry/repo:tag", 400)
    tags = parse_tags(request.query.get("tags"))
    try:
        item = await lookup_image(request.app[SPECS], image, request.app[FEATURES].table.platforms())
    except SpecLookupError as exc:
        request.app[METRICS].lookup_errors.labels("debug").inc()
        return _error(f"spec lookup failed for image {image}: {exc}", 502)
    if item is None:
        return _error(f"image {image} has no compatibility spec: it imposes nothing on nodes", 404)
    try:
        pieces = _Pieces(_format(request))
    except BadRequestError as exc:
        return _error(str(exc), exc.status)
    try:
        _nodes_for(request, request.app[FEATURES].table, None)  # a ?node= the table does not know: 404
    except BadRequestError as exc:
        return _error(str(exc), exc.status)
    async with _computing(request) as pacer:
        table = request.app[FEATURES].table
        names, total = _nodes_for(request, table, None)
        settings = request.app[SETTINGS]
        features = _snapshot(table, names)
        decision = _decide(settings, [item], table, names, tags)
        scores = decision.scores
        platforms = {name: _judged_by(item, table, name) for name in names}
        done = 0
        for name in names:
            if done and pacer.spent:
                break
            platform, variant = platforms[name]
            verdict = _verdict(decision, name, features[name] is not None)
            score = scores.get(name, 0)
            row: dict[str, Any] = {"node": name, "verdict": verdict, "score": score}
            block = [f"\n== {name}: {verdict.upper()}, score {score}"]
            if item.multi_arch:
                row["platform"] = platform
                row["variant"] = _variant_doc(variant)
                block.append(
                    f"   judged by {variant.describe()}"
                    if variant is not None
                    else f"   {missing_platform_reason(image, platform)}"
                )
            if variant is not None and variant.spec is not None:
                account = explain(variant.spec, features[name], node=name, tags=tags)
                row["explanation"] = account.to_dict()
                block.append(render(row["explanation"]).rstrip("\n"))
            else:
                row["explanation"] = None
            if pieces.json:
                pieces.row(row)
            else:
                pieces.block(block)
            done += 1
            await pacer.turn()
    tail, last = _nodes_tail(pacer, done, len(names), total, "&")
    head = {"image": image, "spec": _image_summary(item), "tags": sorted(tags) if tags is not None else None}
    first = f"IMAGE {image}  {_image_line(item)}  tags {','.join(sorted(tags)) if tags else '(all sets)'}"
    return pieces.response(head, "nodes", tail, first, last)


def _pod_and_nodes(body: bytes) -> tuple[Mapping[str, Any], list[str] | None]:
    """A bare v1.Pod, or an ExtenderArgs body (its node list is then the one to explain)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}") from None
    if isinstance(doc, dict) and "Pod" in doc:
        args = decode_args(body)
        return args.pod, list(args.node_names)
    if not isinstance(doc, dict):
        raise BadRequestError("body: expected a v1.Pod object (or an ExtenderArgs with 'Pod')")
    return doc, None


def _reason(decision: Decision, name: str, accounts: list[tuple[str, Explanation]]) -> str:
    """The reason :func:`decide` gives ``name`` with details (``detail_limit`` covering every node),
    from the accounts already at hand instead of a second walk per node inside ``decide``: the
    first image whose account says incompatible (the first image decide found the node cannot run),
    then that account's summary. A node without NodeFeature keeps decide's own reason."""
    reason = decision.failed.get(name, "")
    if not reason or reason == NO_FEATURES_REASON:
        return reason
    for image, account in accounts:
        if not account.compatible:
            return f"image {image}: {account.summary()}"
    return reason  # the matchers disagree (a bug the equivalence tests catch): decide's short form


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
    try:
        pieces = _Pieces(_format(request))
        _nodes_for(request, request.app[FEATURES].table, given)  # a ?node= the table does not know: 404
    except BadRequestError as exc:
        return _error(str(exc), exc.status)
    meta = pod.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    pod_name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    image_rows: list[dict[str, Any]] = []
    item_by_image = {s.image: s for s in specs}
    first = [f"POD {pod_name}  tags {','.join(sorted(tags)) if tags else '(all sets)'}"]
    for image in images:
        row: dict[str, Any] = {"image": image, "spec": None}
        what = "no spec: imposes nothing"
        if image in item_by_image:
            item = item_by_image[image]
            row["spec"] = _image_summary(item)
            what = _image_line(item) if item.multi_arch or item.spec is None else item.spec.digest
        elif image in ignored:
            row["lookupError"] = what = ignored[image] + " (ignored: failure policy Ignore)"
        image_rows.append(row)
        first.append(f"  image {image}: {what}")
    async with _computing(request) as pacer:
        table = request.app[FEATURES].table
        names, total = _nodes_for(request, table, given)
        features = _snapshot(table, names)
        # the detailed reasons come from the accounts below (_reason), not from a walk per failing
        # node inside decide, which would be one long stretch on the loop
        decision = _decide(settings, specs, table, names, tags)
        scores = decision.scores
        done = 0
        for name in names:
            if done and pacer.spent:
                break
            nf = features[name]
            accounts: list[tuple[str, Explanation]] = []
            reports: list[tuple[str, dict[str, Any]]] = []  # (image, its explanation's JSON form)
            image_docs: list[dict[str, Any]] = []
            notes: list[str] = []
            for s in specs:
                doc: dict[str, Any] = {"image": s.image}
                label, spec = s.image, s.spec
                if s.multi_arch:
                    platform, variant = _judged_by(s, table, name)
                    doc.update(platform=platform, variant=_variant_doc(variant))
                    label = f"{s.image} ({platform})"
                    spec = variant.spec if variant is not None else None
                    notes.append(
                        f"-- image {s.image}: judged by {variant.describe()}"
                        if variant is not None
                        else f"-- {missing_platform_reason(s.image, platform)}"
                    )
                doc["explanation"] = None
                if spec is not None:
                    account = explain(spec, nf, node=name, tags=tags)
                    accounts.append((label, account))
                    doc["explanation"] = account.to_dict()
                    reports.append((label, doc["explanation"]))
                image_docs.append(doc)
                await pacer.turn()
            verdict = _verdict(decision, name, nf is not None)
            score = scores.get(name, 0)
            reason = _reason(decision, name, accounts)
            if pieces.json:
                pieces.row(
                    {"node": name, "verdict": verdict, "score": score, "reason": reason, "images": image_docs}
                )
            else:
                block = [f"\n== {name}: {verdict.upper()}, score {score}"]
                if name in decision.failed:
                    block.append(f"   reason: {reason}")
                block.extend(notes)
                for image, report in reports:
                    block.append(f"-- image {image}")
                    block.append(render(report).rstrip("\n"))
                pieces.block(block)
            done += 1
            await pacer.turn()
    tail, last = _nodes_tail(pacer, done, len(names), total, "?")
    head = {"pod": pod_name, "tags": sorted(tags) if tags is not None else None, "images": image_rows}
    return pieces.response(head, "nodes", tail, "\n".join(first), last)


def _whatif_node(raw: Any) -> NodeFeatures:
    """One NodeFeature object, or a list of them for the same node (merged like nfd-master)."""
    objs = raw if isinstance(raw, list) else [raw]
    if not objs:
        raise BadRequestError("nodeFeature: expected a NodeFeature object or a non-empty list of them")
    parsed: list[ParsedNodeFeature] = []
    for i, obj in enumerate(objs):
        try:
            parsed.append(parse_nodefeature(obj))
        except ExtenderError as exc:
            where = f"nodeFeature[{i}]" if isinstance(raw, list) else "nodeFeature"
            raise BadRequestError(f"{where}: {exc}") from None
    nodes = {p.node for p in parsed}
    if len(nodes) != 1:
        raise BadRequestError(f"nodeFeature: the objects name several nodes: {', '.join(sorted(nodes))}")
    return merge_features(parsed, parsed[0].node)


def _whatif_request(body: bytes) -> tuple[NodeFeatures, list[str], frozenset[str] | None]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequestError('body: expected {"nodeFeature": {...}, "images": ["..."], "tags": ["..."]}')
    if "nodeFeature" not in doc:
        raise BadRequestError("nodeFeature: required (a NodeFeature object for the node to imagine)")
    nf = _whatif_node(doc["nodeFeature"])
    images = doc.get("images")
    if images is None:  # every image whose spec is known: the caller fills it in
        return nf, [], _whatif_tags(doc)
    if not isinstance(images, list) or not images or not all(isinstance(i, str) and i for i in images):
        raise BadRequestError("images: expected a non-empty list of image references (or no images key)")
    if len(images) > MAX_WHATIF_IMAGES:
        raise BadRequestError(f"images: at most {MAX_WHATIF_IMAGES} per request, got {len(images)}")
    return nf, list(dict.fromkeys(images)), _whatif_tags(doc)


def _whatif_tags(doc: dict[str, Any]) -> frozenset[str] | None:
    raw_tags = doc.get("tags")
    if raw_tags is not None and (
        not isinstance(raw_tags, list) or not all(isinstance(t, str) for t in raw_tags)
    ):
        raise BadRequestError("tags: expected a list of strings")
    return frozenset(raw_tags) if raw_tags else None


def _best(account: Explanation) -> tuple[int | None, int]:
    matched = [s for s in account.sets if s.status == "matched"]
    if not matched:
        return None, 0
    best = max(matched, key=lambda s: s.weight)
    return best.index, max(best.weight, 0)


async def whatif(request: web.Request) -> web.Response:
    try:
        nf, images, tags = _whatif_request(await read_body(request))
    except BadRequestError as exc:
        return _error(str(exc), exc.status)
    source = request.app[SPECS]
    every_known = not images
    if every_known:  # no images asked for: every image whose spec is known now, no new lookup
        images = source.known_images()[:MAX_WHATIF_IMAGES] if isinstance(source, KnownImages) else []
    # the imagined node's platform is told from its features (extender.features.platform)
    platform = platform_from_features(nf, request.app[FEATURES].table.default_platform)
    looked: list[tuple[str, Spec | None, str]] = []  # image, spec, why the lookup failed
    variants: dict[str, Variant | None] = {}  # multi-arch images: the variant the node gets
    for image in images:
        try:
            item = await lookup_image(source, image, (platform,))
        except SpecLookupError as exc:
            looked.append((image, None, str(exc)))
            continue
        if item is not None and item.multi_arch:
            variant = variants[image] = item.variant(platform)
            looked.append((image, variant.spec if variant is not None else None, ""))
        else:
            looked.append((image, item.spec if item is not None else None, ""))
    try:
        fmt = _format(request)
    except BadRequestError as exc:
        return _error(str(exc), exc.status)
    rows: list[dict[str, Any]] = []
    # the platform is shown when it mattered: some image is multi-arch
    shown = f", platform {platform}" if variants else ""
    text = [f"WHAT IF node {nf.node} ({len(nf.feature_names())} features{shown})"]
    async with _computing(request) as pacer:
        explained = stopped = 0
        for image, spec, failure in looked:
            row: dict[str, Any] = {"image": image}
            rows.append(row)
            if failure:
                row.update(verdict="unknown", reason=f"spec lookup failed: {failure}")
                text.append(f"\n== {image}: UNKNOWN (spec lookup failed: {failure})")
                continue
            if image in variants:
                variant = variants[image]
                row["variant"] = _variant_doc(variant)
                if variant is None:
                    why = missing_platform_reason(image, platform)
                    row.update(verdict="incompatible", reason=why)
                    text.append(f"\n== {image}: INCOMPATIBLE ({why})")
                    continue
                text.append(f"\n-- {image}: judged by {variant.describe()}")
            if spec is None:
                row.update(verdict="compatible", reason="no compatibility spec: imposes nothing")
                text.append(f"\n== {image}: COMPATIBLE (no compatibility spec)")
                continue
            if explained and pacer.spent:
                stopped += 1
                row.update(
                    verdict="unknown", reason="not explained: the time budget ran out (debug.maxSeconds)"
                )
                text.append(f"\n== {image}: UNKNOWN (not explained: the time budget ran out)")
                continue
            account = explain(spec, nf, node=nf.node, tags=tags)
            best, weight = _best(account)
            verdict = "compatible" if account.compatible else "incompatible"
            row.update(verdict=verdict, reason=account.summary(), bestSet=best, weight=weight)
            row["explanation"] = account.to_dict()
            text.append(f"\n== {image}: {verdict.upper()} ({account.summary()})")
            text.append(render(row["explanation"]).rstrip("\n"))
            explained += 1
            await pacer.turn()
    if every_known:
        text.insert(1, f"(every image whose spec is known: {len(images)})")
    doc: dict[str, Any] = {
        "node": nf.node,
        "tags": sorted(tags) if tags is not None else None,
        "runnable": [r["image"] for r in rows if r["verdict"] == "compatible"],
        "notRunnable": [r["image"] for r in rows if r["verdict"] != "compatible"],
        "images": rows,
    }
    if variants:
        doc["platform"] = platform
    if every_known:  # the images were not asked for: say where they came from
        doc["imagesFrom"] = "every image whose spec is known (mapped, or looked up recently)"
    if stopped:
        doc["truncated"] = True
        doc["truncatedReason"] = pacer.reason(
            explained, explained + stopped, "images with a spec", "send fewer"
        )
        text.append(f"\n({stopped} images not explained: {doc['truncatedReason']})")
    if fmt == "text":
        return web.Response(text=fit("\n".join(text)) + "\n")
    return web.Response(body=orjson.dumps(doc), content_type=JSON)


async def sources(request: web.Request) -> web.Response:
    feats = request.app[FEATURES]
    caches: list[CacheStats] = [*feats.table.caches.all(), *request.app[CACHES]]
    doc: dict[str, Any] = {
        "ready": feats.ready,
        "nodes": len(feats.table),
        "tableGeneration": feats.table.generation,
        "sources": {
            name: {"reloads": s.reloads, "errors": dict(s.errors)} for name, s in request.app[SOURCES]
        },
        "caches": {
            c.name: {
                "entries": len(c),
                "maxEntries": c.max_entries,
                "bytes": c.bytes,
                "maxBytes": c.max_bytes,
                "hits": c.hits,
                "misses": c.misses,
                "evictions": c.evictions,
            }
            for c in caches
        },
    }
    return web.Response(body=orjson.dumps(doc, option=orjson.OPT_INDENT_2), content_type="application/json")


def add_routes(app: web.Application) -> None:
    """The debug routes, and the slots their computations take (``app[SETTINGS]`` is set)."""
    app[_SLOTS] = asyncio.Semaphore(app[SETTINGS].debug_max_concurrent)
    app.router.add_get("/debug/explain", explain_image, name="explain")
    app.router.add_post("/debug/explain", explain_pod, name="explain-pod")
    app.router.add_post("/debug/whatif", whatif, name="whatif")
    app.router.add_get("/debug/sources", sources)
