"""The aiohttp application: kube-scheduler's filter and prioritize verbs, health and readiness.

Handlers stay thin: decode (``wire``), look specs up (``SpecSource``, concurrent per image), decide
(``decide``), encode. A pod without spec'd images never reaches the matcher. Lookup failures follow
the failure policy: ``Fail`` answers the filter with ``Error`` (the scheduler retries with backoff),
``Ignore`` treats the image as having no spec; the pod annotation overrides the configured default.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from extender.decide import Decision, ImageSpec, PodError, decide, pod_failure_policy, pod_images, pod_tags
from extender.http.wire import (
    ExtenderArgs,
    WireError,
    decode_args,
    encode_filter_error,
    encode_filter_result,
    encode_priorities,
)
from extender.sources.base import FeatureSource, SpecLookupError, SpecSource

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class AppSettings:
    prefix: str = ""
    max_body_bytes: int = 64 << 20
    failure_policy: str = "Fail"  # or "Ignore"
    missing_features: str = "fail"  # or "pass"
    detail_limit: int = 50


FEATURES = web.AppKey("features", FeatureSource)
SPECS = web.AppKey("specs", SpecSource)
SETTINGS = web.AppKey("settings", AppSettings)


class _Lookup(Exception):
    def __init__(self, image: str, message: str) -> None:
        super().__init__(f"spec lookup failed for image {image}: {message}")


def _too_large(limit: int, actual: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=actual, text=f"request body over the {limit}-byte limit"
    )


async def _read(request: web.Request) -> bytes:
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > limit:
            raise _too_large(limit, len(body))
    return bytes(body)


async def _specs_for(request: web.Request, pod: dict[str, object]) -> list[ImageSpec]:
    settings = request.app[SETTINGS]
    source = request.app[SPECS]
    images = pod_images(pod)
    policy = pod_failure_policy(pod, settings.failure_policy)
    results = await asyncio.gather(*(source.lookup(i) for i in images), return_exceptions=True)
    found: list[ImageSpec] = []
    for image, res in zip(images, results, strict=True):
        if isinstance(res, SpecLookupError):
            if policy == "Fail":
                raise _Lookup(image, str(res))
            continue
        if isinstance(res, BaseException):
            raise res
        if res is not None:
            found.append(ImageSpec(image, res))
    return found


async def _decide(request: web.Request) -> tuple[ExtenderArgs, Decision]:
    body = await _read(request)
    args = decode_args(body)
    specs = await _specs_for(request, dict(args.pod))
    settings = request.app[SETTINGS]
    decision = decide(
        specs,
        request.app[FEATURES].table,
        args.node_names,
        tags=pod_tags(args.pod),
        missing_features="pass" if settings.missing_features == "pass" else "fail",
        detail_limit=settings.detail_limit,
    )
    return args, decision


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=JSON)


def _verb(
    answer: Callable[[ExtenderArgs, Decision], web.Response], lookup_failed: Callable[[str], web.Response]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """One extender verb: bad input is a 400 naming the field; a failed spec lookup (policy Fail)
    is answered the way that verb reports errors; otherwise ``answer`` encodes the decision."""

    async def handler(request: web.Request) -> web.Response:
        try:
            args, decision = await _decide(request)
        except (WireError, PodError) as exc:
            return web.json_response({"Error": str(exc)}, status=400)
        except _Lookup as exc:
            return lookup_failed(str(exc))
        return answer(args, decision)

    return handler


# filter: an Error answer makes the scheduler retry the pod with backoff.
filter_handler = _verb(
    lambda args, d: _json(encode_filter_result(args, d.passed, unresolvable=d.failed)),
    lambda message: _json(encode_filter_error(message)),
)
# prioritize: the scheduler only logs a failure and drops this extender's scores.
prioritize_handler = _verb(
    lambda args, d: _json(encode_priorities((n, d.scores.get(n, 0)) for n in args.node_names)),
    lambda message: web.json_response({"Error": message}, status=503),
)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    if request.app[FEATURES].ready:
        return web.Response(text="ready\n")
    return web.Response(text="waiting for the initial NodeFeature list\n", status=503)


def build_app(
    features: FeatureSource, specs: SpecSource, settings: AppSettings | None = None
) -> web.Application:
    settings = settings or AppSettings()
    # client_max_size is enforced by _read with a clear 413; aiohttp's own check stays as a backstop.
    app = web.Application(client_max_size=settings.max_body_bytes + 1)
    app[FEATURES] = features
    app[SPECS] = specs
    app[SETTINGS] = settings
    prefix = settings.prefix.rstrip("/")
    app.router.add_post(f"{prefix}/filter", filter_handler)
    app.router.add_post(f"{prefix}/prioritize", prioritize_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
