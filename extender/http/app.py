"""The aiohttp application: kube-scheduler's filter and prioritize verbs, health, readiness, metrics.

Handlers stay thin: decode (``wire``), look specs up (``SpecSource``, concurrent per image), decide
(``decide``), encode. A pod without spec'd images never reaches the matcher. Lookup failures follow
the failure policy: ``Fail`` answers the filter with ``Error`` (the scheduler retries with backoff),
``Ignore`` treats the image as having no spec; the pod annotation overrides the configured default.
While the node features are not synced yet, or stale (their watch has been failing for longer than
``features.maxStaleSeconds``), a pod with spec'd images is answered the same way as a failed lookup:
rejecting every node as "no NodeFeature" would park it as unschedulable for minutes, an ``Error``
has it retried with backoff. A pod without spec'd images needs no features and is answered as
usual, so unrelated pods keep flowing. ``/readyz`` turns 200 after the initial sync and stays so
while the features are stale: every replica goes stale at once when the API server is away, and
answering with the reason beats having no endpoint at all.
The debug endpoints (:mod:`extender.http.debug`) are added here, or served by an application of
their own on another port (:func:`build_debug_app`), or not at all.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from extender.decide import NO_FEATURES_REASON, Decision, decide
from extender.errors import FeaturesUnavailableError, ImageLookupError, PodError, WireError
from extender.http import debug
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
from extender.http.metrics import CacheStats, Metrics
from extender.http.wire import (
    ExtenderArgs,
    decode_args,
    encode_filter_error,
    encode_filter_result,
    encode_score_list,
)
from extender.pods import pod_failure_policy, pod_images, pod_tags
from extender.sources.base import FeatureSource, SpecSource, WatchedSource, unavailable, warm

__all__ = ["AppSettings", "build_app", "build_debug_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _decide(request: web.Request, verb: str) -> tuple[ExtenderArgs, Decision]:
    body = await read_body(request)
    args = decode_args(body)
    settings = request.app[SETTINGS]
    images = pod_images(args.pod)
    specs, _ = await lookup_specs(request.app, images, pod_failure_policy(args.pod, settings.failure_policy))
    metrics = request.app[METRICS]
    if not specs:
        metrics.child(metrics.skipped, verb).inc()
    else:
        down = unavailable(request.app[FEATURES])
        if down is not None:
            metrics.child(metrics.unavailable, verb, down.reason).inc()
            raise FeaturesUnavailableError(down.message)
    table = request.app[FEATURES].table
    decision = decide(
        specs,
        table,
        args.node_names,
        tags=pod_tags(args.pod),
        missing_features=settings.missing_features,
        missing_platform=settings.missing_platform,
        detail_limit=settings.detail_limit if verb == "filter" else 0,  # prioritize sends no reasons
        scores=verb == "prioritize",  # filter sends no scores
        verdicts=verb == "filter",  # prioritize sends no verdicts
    )
    if verb == "filter" and specs:
        verdicts = metrics.verdicts
        unknown = operator.countOf(decision.failed.values(), NO_FEATURES_REASON)
        metrics.child(verdicts, "compatible").inc(len(decision.passed))
        metrics.child(verdicts, "incompatible").inc(len(decision.failed) - unknown)
        metrics.child(verdicts, "no_features").inc(unknown)
    return args, decision


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=JSON)


def _verb(
    verb: str,
    answer: Callable[[ExtenderArgs, Decision], web.Response],
    lookup_failed: Callable[[str], web.Response],
) -> Handler:
    """One extender verb: bad input is a 400 naming the field; a failed spec lookup (policy Fail),
    or node features not synced or stale for a pod with specs, is answered the way that verb reports
    errors; otherwise ``answer`` encodes the decision."""

    async def handler(request: web.Request) -> web.Response:
        try:
            args, decision = await _decide(request, verb)
        except (WireError, PodError) as exc:
            return web.json_response({"Error": str(exc)}, status=400)
        except (ImageLookupError, FeaturesUnavailableError) as exc:
            return lookup_failed(str(exc))
        return answer(args, decision)

    return handler


# filter: an Error answer makes the scheduler retry the pod with backoff.
filter_handler = _verb(
    "filter",
    lambda args, d: _json(encode_filter_result(args, d.passed, unresolvable=d.failed, ordered=True)),
    lambda message: _json(encode_filter_error(message)),
)
# prioritize: the scheduler only logs a failure and drops this extender's scores.
prioritize_handler = _verb(
    "prioritize",
    lambda args, d: _json(encode_score_list(d.names, d.score_list)),
    lambda message: web.json_response({"Error": message}, status=503),
)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    features = request.app[FEATURES]
    if not features.ready:
        return web.Response(text="waiting for the initial NodeFeature sync\n", status=503)
    if not warm(features):
        return web.Response(text="warming the caches (spec verdicts over the node table)\n", status=503)
    return web.Response(text="ready\n")


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


TIMED = frozenset({"filter", "prioritize", "explain", "explain-pod", "whatif"})


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency per verb and answers per verb and status, for the routes worth timing."""
    route = request.match_info.route.name
    if route not in TIMED:
        return await handler(request)
    verb = "explain" if route == "explain-pod" else route
    metrics = request.app[METRICS]
    start = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as exc:
        code = exc.status
        raise
    finally:
        metrics.child(metrics.latency, verb).observe(time.perf_counter() - start)
        metrics.child(metrics.requests, verb, str(code)).inc()


#: Routes a kubelet probe or a Prometheus scrape reaches without a client certificate under mutual TLS.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@web.middleware
async def _client_cert(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Mutual TLS: the listener asks for a client certificate and verifies any that is presented
    (``CERT_OPTIONAL``, so probes still get in); everything but :data:`OPEN_PATHS` needs one."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if request.path not in OPEN_PATHS and not cert:
        return web.json_response(
            {"Error": "a client certificate signed by tls.clientCAFile is required"}, status=403
        )
    return await handler(request)


def _base(
    features: FeatureSource,
    specs: SpecSource,
    settings: AppSettings,
    metrics: Metrics | None,
    sources: Sequence[tuple[str, WatchedSource]],
    caches: Sequence[CacheStats],
) -> web.Application:
    # client_max_size is enforced by read_body with a clear 413; aiohttp's own check is a backstop.
    middlewares = [_client_cert, _observe] if settings.client_cert_required else [_observe]
    app = web.Application(client_max_size=settings.max_body_bytes + 1, middlewares=middlewares)
    app[FEATURES] = features
    app[SPECS] = specs
    app[SETTINGS] = settings
    if metrics is None:
        metrics = Metrics()
        metrics.watch(features)
    app[METRICS] = metrics
    app[SOURCES] = sources
    app[CACHES] = caches
    return app


def build_app(
    features: FeatureSource,
    specs: SpecSource,
    settings: AppSettings | None = None,
    *,
    metrics: Metrics | None = None,
    sources: Sequence[tuple[str, WatchedSource]] = (),
    caches: Sequence[CacheStats] = (),
) -> web.Application:
    """The extender: verbs under ``settings.prefix``, health, readiness, metrics, and the debug
    endpoints when ``settings.debug`` is on."""
    settings = settings or AppSettings()
    app = _base(features, specs, settings, metrics, sources, caches)
    prefix = settings.prefix.rstrip("/")
    app.router.add_post(f"{prefix}/filter", filter_handler, name="filter")
    app.router.add_post(f"{prefix}/prioritize", prioritize_handler, name="prioritize")
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    if settings.debug:
        debug.add_routes(app)
    return app


def build_debug_app(
    features: FeatureSource,
    specs: SpecSource,
    settings: AppSettings,
    *,
    metrics: Metrics,
    sources: Sequence[tuple[str, WatchedSource]] = (),
    caches: Sequence[CacheStats] = (),
) -> web.Application:
    """Only the debug endpoints (and health), for a listener of their own."""
    app = _base(features, specs, settings, metrics, sources, caches)
    app.router.add_get("/healthz", healthz)
    debug.add_routes(app)
    return app
