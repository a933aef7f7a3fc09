"""What every handler shares: settings, the app keys holding the sources, body reading, spec lookup.

Both the main application and a separate debug application are built from the same keys, so the
debug endpoints see exactly the tables and lookups the verbs use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from extender.decide import ImageSpec, MissingFeatures, MissingPlatform
from extender.errors import ImageLookupError, SpecLookupError
from extender.http.metrics import CacheStats, Metrics
from extender.pods import FailurePolicy
from extender.sources.base import FeatureSource, SpecSource, WatchedSource, lookup_image

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class AppSettings:
    prefix: str = ""
    max_body_bytes: int = 128 << 20
    failure_policy: FailurePolicy = "Fail"
    missing_features: MissingFeatures = "fail"
    missing_platform: MissingPlatform = "fail"  # a node whose platform a multi-arch image lacks
    detail_limit: int = 50
    debug: bool = True  # serve /debug/* on this application
    debug_max_nodes: int = 200
    debug_max_seconds: float = 10.0  # one explanation's time budget; past it the answer is truncated
    debug_max_concurrent: int = 2  # explanations computed at once; one more is answered 429
    client_cert_required: bool = False  # mutual TLS: verbs and debug need a verified client cert


FEATURES = web.AppKey("features", FeatureSource)
SPECS = web.AppKey("specs", SpecSource)
SETTINGS = web.AppKey("settings", AppSettings)
METRICS = web.AppKey("metrics", Metrics)
SOURCES = web.AppKey("sources", Sequence[tuple[str, WatchedSource]])
#: caches besides the feature table's own (``table.caches``): the registry source's
CACHES = web.AppKey("caches", Sequence[CacheStats])


def too_large(limit: int, actual: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=actual, text=f"request body over the {limit}-byte limit (maxBodyBytes)"
    )


async def read_body(request: web.Request) -> bytes:
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit, request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > limit:
            raise too_large(limit, len(body))
    return bytes(body)


async def lookup_specs(
    app: web.Application, images: Sequence[str], policy: FailurePolicy
) -> tuple[list[ImageSpec], dict[str, str]]:
    """Specs of ``images`` looked up concurrently, for the platforms of the table's nodes (a
    multi-arch image answers per platform). A failed lookup raises :class:`ImageLookupError`
    under policy ``Fail``; under ``Ignore`` the image counts as having no spec and the failure is
    returned in the second element (image -> why) for the caller to report."""
    source = app[SPECS]
    platforms = app[FEATURES].table.platforms()
    results: list[ImageSpec | BaseException | None]
    if len(images) == 1:  # the usual pod: awaited in place, without a Task and a gather around it
        try:
            results = [await lookup_image(source, images[0], platforms)]
        except Exception as exc:  # as gather(return_exceptions=True) hands them over
            results = [exc]
    else:
        results = await asyncio.gather(
            *(lookup_image(source, i, platforms) for i in images), return_exceptions=True
        )
    found: list[ImageSpec] = []
    ignored: dict[str, str] = {}
    for image, res in zip(images, results, strict=True):
        if isinstance(res, SpecLookupError):
            app[METRICS].lookup_errors.labels(policy).inc()
            if policy == "Fail":
                raise ImageLookupError(image, str(res))
            ignored[image] = str(res)
            continue
        if isinstance(res, BaseException):
            raise res
        if res is not None:
            found.append(res)
    return found, ignored
