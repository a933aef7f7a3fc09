"""image reference -> NFD compatibility spec, from the image's registry, behind bounded caches.

The path of a cold lookup (``registry/repo:tag``), one request each once auth is settled:

1. the image manifest by tag (its digest, and whether it is a multi-arch index);
2. the referrers of that digest (API, or the tag-schema index on registries without one);
3. the chosen artifact's manifest, by digest;
4. the spec layer blob, by digest.

By digest (``repo@sha256:...``) step 1 is skipped. Only when the digest has no artifact and is an
index is the configured platform's child asked too (what NFD's ``--platform`` does, as a fallback).

Caches, all bounded in entries and bytes (:class:`BoundedCache`):

* ``tags``: tag reference -> digest (and the platform child), a short TTL: tags move;
* ``referrers``: image digest -> the chosen artifact, a longer TTL: artifacts are attached later;
* ``negative``: image digest -> "no artifact", a short TTL;
* ``specs``: artifact digest -> parsed spec (or the SpecError it gave), LRU: content-addressed, never
  stale.

Registry failures (auth, 5xx, timeouts, wrong digests, bodies over the limits, unparsable specs)
raise :class:`SpecLookupError`: the failure policy decides, never "no spec". Transient failures are
not cached; single-flight for concurrent lookups of one image sits in front of this source
(:class:`extender.sources.specs.SharedLookups`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from extender.caching import BoundedCache
from extender.errors import ExtenderError, ManifestError, SpecError, SpecLookupError
from extender.images import ImageRef, parse_reference
from extender.platforms import Platform
from extender.sources.registry.client import Fetched, Referrers, RegistryClient
from extender.sources.registry.manifests import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    select_artifact,
    select_platform,
    spec_layer,
    untyped_referrers,
)
from extender.spec.model import ARTIFACT_TYPE, Spec
from extender.spec.parse import SpecLimits, parse_spec

log = logging.getLogger(__name__)

MAX_UNTYPED_CHECKS = 4  # referrers listed without a usable artifactType whose manifest we fetch
MAX_ERRORS_KEPT = 100


@dataclass(frozen=True, slots=True)
class CacheSettings:
    tag_seconds: float = 60.0
    referrers_seconds: float = 300.0
    negative_seconds: float = 30.0
    entries: int = 10_000
    spec_entries: int = 2_000
    spec_bytes: int = 64 << 20


@dataclass(frozen=True, slots=True)
class Found:
    """Where an image's artifact was found (for ``discover`` and the debug endpoints)."""

    image: str
    digest: str  # what the reference resolved to
    subject: str  # the digest the artifact refers to (``digest``, or the platform child's)
    artifact: Descriptor | None
    listings: tuple[tuple[str, Referrers], ...] = field(default=())  # subject digest -> listing


@dataclass(frozen=True, slots=True)
class _Choice:
    artifact: Descriptor
    subject: str


@dataclass(frozen=True, slots=True)
class _Tag:
    digest: str
    child: str  # the platform child's digest when ``digest`` is an index ("" otherwise / unknown)
    is_index: bool


class RegistrySpecs:
    """A :class:`~extender.sources.base.SpecSource` over OCI registries."""

    def __init__(
        self,
        client: RegistryClient,
        *,
        platform: Platform | None = None,
        cache: CacheSettings | None = None,
        lookup_seconds: float = 10.0,
        max_spec_bytes: int = 1 << 20,
        spec_limits: SpecLimits | None = None,
    ) -> None:
        c = cache or CacheSettings()
        self.client = client
        self.platform = platform or Platform("linux", "amd64")
        self.lookup_seconds = lookup_seconds
        self.max_spec_bytes = max_spec_bytes
        self.spec_limits = spec_limits
        byte_cap = c.entries * 1024
        self.tags: BoundedCache[str, _Tag] = BoundedCache(
            "tags", max_entries=c.entries, max_bytes=byte_cap, ttl=c.tag_seconds
        )
        self.referrers: BoundedCache[tuple[str, str, str], _Choice] = BoundedCache(
            "referrers", max_entries=c.entries, max_bytes=byte_cap, ttl=c.referrers_seconds
        )
        self.negative: BoundedCache[tuple[str, str, str], bool] = BoundedCache(
            "negative", max_entries=c.entries, max_bytes=byte_cap, ttl=c.negative_seconds
        )
        self.specs: BoundedCache[str, Spec | SpecError] = BoundedCache(
            "specs", max_entries=c.spec_entries, max_bytes=c.spec_bytes
        )
        self._errors: OrderedDict[str, str] = OrderedDict()
        self.reloads = 0  # remote lookups completed (cache misses that reached a registry)

    @property
    def caches(self) -> tuple[BoundedCache[object, object], ...]:
        return (self.tags, self.referrers, self.negative, self.specs)  # type: ignore[return-value]

    @property
    def errors(self) -> dict[str, str]:
        """The latest failure per image (at most 100 images), until that image's next success."""
        return dict(self._errors)

    def _failed(self, image: str, message: str) -> None:
        self._errors[image] = message
        self._errors.move_to_end(image)
        while len(self._errors) > MAX_ERRORS_KEPT:
            self._errors.popitem(last=False)

    # -- SpecSource --------------------------------------------------------------------------------

    async def lookup(self, image: str) -> Spec | None:
        try:
            async with asyncio.timeout(self.lookup_seconds):
                spec = await self._lookup(image)
        except TimeoutError:
            message = f"{image}: registry lookup did not finish within {self.lookup_seconds:g}s"
            self._failed(image, message)
            raise SpecLookupError(message) from None
        except ExtenderError as exc:  # RegistryError, ImageReferenceError, SpecError
            message = f"{image}: {exc}"
            self._failed(image, message)
            raise SpecLookupError(message) from exc
        self._errors.pop(image, None)
        return spec

    async def _lookup(self, image: str) -> Spec | None:
        ref = parse_reference(image)
        self.client.check_allowed(ref)
        found = await self.find(ref)
        if found.artifact is None:
            return None
        return await self.spec(ref, found.artifact)

    # -- steps -----------------------------------------------------------------------------------

    async def find(self, ref: ImageRef, *, use_cache: bool = True) -> Found:
        """The artifact to use for ``ref`` (``artifact`` is ``None`` when it has none)."""
        fetched: Fetched | None = None
        tag_key = str(ref)
        tag = self.tags.get(tag_key) if use_cache else None
        if tag is None and not ref.digest:
            fetched = await self.client.manifest(ref, what="image")
            tag = self._remember_tag(tag_key, fetched)
        digest = tag.digest if tag is not None else ref.digest
        key = (ref.api_host, ref.repository, digest)
        if use_cache:
            if self.negative.get(key):
                return Found(str(ref), digest, digest, None)
            cached = self.referrers.get(key)
            if cached is not None:
                return Found(str(ref), digest, cached.subject, cached.artifact)
        listings: list[tuple[str, Referrers]] = []
        chosen = await self._choose(ref, digest, listings)
        subject = digest
        if chosen is None:
            if tag is None:  # by digest: is it an index? (only asked when it has no artifact itself)
                fetched = await self.client.manifest(ref, digest, what="image")
                tag = self._remember_tag(tag_key, fetched)
            if tag.child:
                subject = tag.child
                chosen = await self._choose(ref, tag.child, listings)
        self.reloads += 1
        if chosen is None:
            self.negative.put(key, True)
            self.referrers.pop(key)
        else:
            self.referrers.put(key, _Choice(chosen, subject))
            self.negative.pop(key)
        return Found(str(ref), digest, subject, chosen, tuple(listings))

    def _remember_tag(self, key: str, fetched: Fetched) -> _Tag:
        child = ""
        if isinstance(fetched.document, ImageIndex):
            d = select_platform(fetched.document, self.platform)
            child = d.digest if d is not None else ""
        tag = _Tag(fetched.digest, child, fetched.is_index)
        self.tags.put(key, tag)
        return tag

    async def _choose(
        self, ref: ImageRef, digest: str, listings: list[tuple[str, Referrers]]
    ) -> Descriptor | None:
        listing = await self.client.referrers(ref, digest)
        listings.append((digest, listing))
        chosen = select_artifact(listing.descriptors, server_filtered=listing.filtered)
        if chosen is not None:
            return chosen
        # ggcr-like registries list an artifact's config.mediaType instead of its artifactType:
        # read a few of those manifests to see what they really are
        checked: list[Descriptor] = []
        for d in untyped_referrers(listing.descriptors)[:MAX_UNTYPED_CHECKS]:
            fetched = await self.client.manifest(ref, d.digest, what="referrer")
            doc = fetched.document
            if isinstance(doc, ImageManifest) and doc.effective_artifact_type == ARTIFACT_TYPE:
                checked.append(Descriptor(d.media_type, d.digest, d.size, ARTIFACT_TYPE, doc.annotations))
        return select_artifact(checked)

    async def spec(self, ref: ImageRef, artifact: Descriptor) -> Spec:
        """The parsed spec of an artifact (content-addressed cache; a broken spec stays broken)."""
        cached = self.specs.get(artifact.digest)
        if isinstance(cached, SpecError):
            raise type(cached)(cached.path, cached.message)
        if cached is not None:
            return cached
        fetched = await self.client.manifest(ref, artifact.digest, what="artifact")
        if len(fetched.data) != artifact.size:
            raise ManifestError(
                "size", f"artifact {artifact.digest}: {len(fetched.data)} bytes, listed as {artifact.size}"
            )
        if not isinstance(fetched.document, ImageManifest):
            raise ManifestError("mediaType", f"artifact {artifact.digest} is an index, not a manifest")
        layer = spec_layer(fetched.document)
        data = await self.client.blob(ref, layer, limit=self.max_spec_bytes)
        try:
            spec = parse_spec(data, limits=self.spec_limits)
        except SpecError as exc:
            self.specs.put(artifact.digest, exc, size=len(data))
            raise
        self.specs.put(artifact.digest, spec, size=len(data))
        return spec
