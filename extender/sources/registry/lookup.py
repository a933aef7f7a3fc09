"""image reference -> NFD compatibility spec, from the image's registry, behind bounded caches.

The path of a cold lookup (``registry/repo:tag``), one request each once auth is settled:

1. the image manifest by tag (its digest, and whether it is a multi-arch index);
2. the referrers of that digest (API, or the tag-schema index on registries without one);
3. the chosen artifact's manifest, by digest;
4. the spec layer blob, by digest.

By digest (``repo@sha256:...``) step 1 still runs once (cached): whether it is an index decides the rest.

A multi-arch index is looked up per platform (:meth:`RegistrySpecs.lookup_variants`, the platforms of
the cluster's nodes): the index's own artifact and, for each platform asked that the index has, that
child's artifact; a node is judged by its child's artifact, else by the index's
(:mod:`extender.spec.variants`). That is one referrers round trip more per platform present in the
cluster, none for platforms no node has, and each is cached per digest. :meth:`RegistrySpecs.lookup`
answers for one platform, ``registry.platform``.

Caches, all bounded in entries and bytes (:class:`BoundedCache`):

* ``tags``: reference -> digest (and an index's children by platform), a short TTL: tags move;
* ``referrers``: image or child digest -> the chosen artifact, a longer TTL: artifacts are attached later;
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
from collections.abc import Sequence
from dataclasses import dataclass, replace

from extender.caching import BoundedCache
from extender.errors import ExtenderError, ManifestError, SpecError, SpecLookupError
from extender.images import ImageRef, parse_reference
from extender.platforms import Platform, platform_key
from extender.sources.registry.client import Fetched, Referrers, RegistryClient
from extender.sources.registry.manifests import (
    MANIFEST_TYPES,
    Descriptor,
    ImageIndex,
    ImageManifest,
    select_artifact,
    spec_layer,
    untyped_referrers,
)
from extender.spec.model import ARTIFACT_TYPE, Spec
from extender.spec.parse import SpecLimits, parse_spec
from extender.spec.variants import Child, ImageSpec, resolve_variants

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
class Survey:
    """What a node of each platform of an image is judged by, with the referrer listings read to
    tell (for ``discover``)."""

    found: ImageSpec  # ``variants``: the platforms surveyed (``None``: the image is not an index)
    listings: tuple[tuple[str, Referrers], ...]  # subject digest -> its listing; the image's first
    chosen: tuple[tuple[str, Descriptor], ...]  # subject digest -> the artifact chosen among its referrers
    platforms: tuple[str, ...] = ()  # every platform the index has a child for, in index order

    def artifact(self, digest: str) -> Descriptor | None:
        """The chosen artifact whose digest is ``digest`` (as its listing gave it)."""
        return next((a for _, a in self.chosen if a.digest == digest), None)


@dataclass(frozen=True, slots=True)
class _Choice:
    artifact: Descriptor


@dataclass(frozen=True, slots=True)
class _Tag:
    digest: str
    is_index: bool
    children: tuple[tuple[str, str], ...] = ()  # an index's (platform key, child digest), index order

    def child(self, platform: str) -> str:
        """The first child for ``platform`` (a key), "" when the index has none."""
        return next((d for p, d in self.children if p == platform), "")


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
        """The spec a node of ``registry.platform`` is judged by (the index's when the index has no
        child for it)."""
        key = platform_key(self.platform)
        found = await self.lookup_variants(image, (key,))
        if found is None:
            return None
        variant = found.variant(key)
        return variant.spec if variant is not None else found.spec

    async def lookup_variants(self, image: str, platforms: Sequence[str]) -> ImageSpec | None:
        """What ``image`` requires of nodes of each of ``platforms`` (keys); ``None`` when it has
        no artifact for any of them (nor on the index)."""
        try:
            async with asyncio.timeout(self.lookup_seconds):
                found = await self._lookup_variants(image, platforms)
        except TimeoutError:
            message = f"{image}: registry lookup did not finish within {self.lookup_seconds:g}s"
            self._failed(image, message)
            raise SpecLookupError(message) from None
        except ExtenderError as exc:  # RegistryError, ImageReferenceError, SpecError
            message = f"{image}: {exc}"
            self._failed(image, message)
            raise SpecLookupError(message) from exc
        self._errors.pop(image, None)
        return found

    async def _lookup_variants(self, image: str, platforms: Sequence[str]) -> ImageSpec | None:
        ref = parse_reference(image)
        self.client.check_allowed(ref)
        found = (await self.survey(ref, platforms)).found
        return replace(found, image=image) if found.has_spec else None  # named as the pod names it

    # -- steps -----------------------------------------------------------------------------------

    async def survey(
        self, ref: ImageRef, platforms: Sequence[str] | None = None, *, use_cache: bool = True
    ) -> Survey:
        """The image's artifact and, for an index, what a node of each of ``platforms`` (keys;
        ``None``: every platform the index has) is judged by: the child's own artifact, else the
        index's, else none (:func:`~extender.spec.variants.resolve_variants`); a platform the index
        lacks maps to ``None``. Every listing read is kept, the image's first, then the children's
        in the order asked (each digest's once). Raises what the registry and the specs raise."""
        tag = await self._resolve(ref, use_cache=use_cache)
        listings: list[tuple[str, Referrers]] = []
        artifact = await self._artifact_of(ref, tag.digest, listings, use_cache=use_cache)
        chosen: dict[str, Descriptor | None] = {tag.digest: artifact}
        spec = await self.spec(ref, artifact) if artifact is not None else None
        index_artifact = artifact.digest if artifact is not None else ""
        if not tag.is_index:
            found = ImageSpec(str(ref), spec, None, tag.digest, index_artifact)
            every: tuple[str, ...] = ()
        else:
            every = tuple(dict.fromkeys(p for p, _ in tag.children))
            asked = list(every if platforms is None else dict.fromkeys(platforms))
            # each child once, concurrently; their listings kept in the order asked
            digests = list(dict.fromkeys(d for p in asked if (d := tag.child(p)) and d != tag.digest))
            read: dict[str, list[tuple[str, Referrers]]] = {d: [] for d in digests}
            own = await asyncio.gather(
                *(self._artifact_of(ref, d, read[d], use_cache=use_cache) for d in digests)
            )
            chosen.update(zip(digests, own, strict=True))
            for d in digests:
                listings.extend(read[d])
            own_specs = await asyncio.gather(*(self.spec(ref, a) for a in own if a is not None))
            spec_of = dict(zip([a.digest for a in own if a is not None], own_specs, strict=True))
            children: dict[str, Child | None] = {}
            for platform in asked:
                digest = tag.child(platform)
                mine = chosen.get(digest) if digest else None
                children[platform] = (
                    None
                    if not digest
                    else Child(digest, spec_of[mine.digest], mine.digest)
                    if mine is not None
                    else Child(digest, None)
                )
            found = resolve_variants(
                str(ref), spec, children, digest=tag.digest, index_artifact=index_artifact
            )
        picked = tuple((d, a) for d, a in chosen.items() if a is not None)
        return Survey(found, tuple(listings), picked, every)

    async def _resolve(self, ref: ImageRef, *, use_cache: bool = True) -> _Tag:
        """What ``ref`` points at: its digest and, for an index, its children by platform."""
        key = str(ref)
        tag = self.tags.get(key) if use_cache else None
        if tag is None:
            fetched = await self.client.manifest(ref, ref.digest or None, what="image")
            tag = self._remember_tag(key, fetched)
        return tag

    async def _artifact_of(
        self,
        ref: ImageRef,
        digest: str,
        listings: list[tuple[str, Referrers]] | None = None,
        *,
        use_cache: bool = True,
    ) -> Descriptor | None:
        """The artifact chosen among the referrers of exactly ``digest`` (cached per digest)."""
        key = (ref.api_host, ref.repository, digest)
        if use_cache:
            if self.negative.get(key):
                return None
            cached = self.referrers.get(key)
            if cached is not None:
                return cached.artifact
        chosen = await self._choose(ref, digest, listings if listings is not None else [])
        self.reloads += 1
        if chosen is None:
            self.negative.put(key, True)
            self.referrers.pop(key)
        else:
            self.referrers.put(key, _Choice(chosen))
            self.negative.pop(key)
        return chosen

    def _remember_tag(self, key: str, fetched: Fetched) -> _Tag:
        children: list[tuple[str, str]] = []
        if isinstance(fetched.document, ImageIndex):
            for d in fetched.document.manifests:
                # nested indexes and children without a platform (attestations) are no variant
                if d.platform is not None and d.media_type in MANIFEST_TYPES:
                    children.append((platform_key(d.platform), d.digest))
        tag = _Tag(fetched.digest, fetched.is_index, tuple(children))
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
