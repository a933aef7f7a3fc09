"""An image's specs per platform: which spec a node of each platform is judged by. No I/O.

A multi-arch image is an index of per-platform manifests, and a compatibility artifact can be
attached to the index, to a platform's manifest, or to both. The kubelet pulls the child matching
its node's platform, so a node is judged by the spec of *that* child:

* the child's own artifact, when it has one (what NFD's client reads with ``--platform``);
* otherwise the index's artifact, which applies to every platform (what NFD's client reads without
  ``--platform``);
* otherwise nothing: that node is not constrained by this image.

When both exist, the child's wins: it is the more specific, and it is the one NFD validates when
told the node's platform. A platform the index has no child for cannot pull the image at all
(``None`` in :attr:`ImageSpec.variants`); the decision layer rejects such a node, or leaves it to the
kubelet, as configured. An image that is not an index has one spec for every platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from extender.spec.model import Spec

#: Where the spec that judges a platform came from: ``image`` (the image is not an index: its own
#: artifact), ``platform`` (the platform child's own artifact), ``index`` (the index's artifact; the
#: child has none), ``none`` (neither has one: nothing to meet).
Origin = Literal["image", "platform", "index", "none"]


@dataclass(frozen=True, slots=True)
class Variant:
    """What a node of ``platform`` is judged by, and where that came from."""

    platform: str  # the platform key (extender.platforms.platform_key)
    spec: Spec | None  # None: nothing to meet
    origin: Origin
    manifest: str = ""  # the manifest the node would pull (the child's digest; "" when unknown)
    artifact: str = ""  # the artifact the spec was read from ("" for local files, or none)

    def to_dict(self) -> dict[str, str | None]:
        """The JSON form the debug endpoints and ``validate-node --json`` give."""
        return {
            "origin": self.origin,
            "manifest": self.manifest or None,
            "artifact": self.artifact or None,
            "spec": None if self.spec is None else self.spec.digest,
        }

    def describe(self, *, platform: bool = True, sep: str = ", ") -> str:
        """``linux/arm64/v8: the platform manifest's own artifact, artifact sha256:..., manifest
        sha256:...``; without the platform, or with the digests on lines of their own (``sep``)."""
        where = {
            "image": "the image's artifact",
            "platform": "the platform manifest's own artifact",
            "index": "the index's artifact (the platform manifest has none)",
            "none": "no artifact on the index or the platform manifest: nothing to meet",
        }[self.origin]
        parts = [f"{self.platform}: {where}" if platform else where]
        if self.artifact:
            parts.append(f"artifact {self.artifact}")
        if self.manifest:
            parts.append(f"manifest {self.manifest}")
        return sep.join(parts)


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """An image and what it requires. ``variants is None``: not a multi-arch image, ``spec`` applies
    to every node. Otherwise ``variants`` maps each platform asked about to its :class:`Variant`,
    or to ``None`` when the index has no child for it; ``spec`` is then the index's own (or ``None``)."""

    image: str
    spec: Spec | None
    variants: Mapping[str, Variant | None] | None = None
    digest: str = ""  # what the reference resolved to (the index's digest for a multi-arch image)
    artifact: str = ""  # the artifact ``spec`` was read from

    @property
    def multi_arch(self) -> bool:
        return self.variants is not None

    def variant(self, platform: str) -> Variant | None:
        """What a node of ``platform`` is judged by; ``None`` when the index has no such child (or
        the platform was not asked about)."""
        if self.variants is None:
            return Variant(platform, self.spec, "image", self.digest, self.artifact)
        return self.variants.get(platform)

    @property
    def has_spec(self) -> bool:
        """Any spec at all, the index's or a platform's asked about: otherwise the image imposes
        nothing anywhere (not even on a platform the index lacks)."""
        if self.spec is not None:
            return True
        return self.variants is not None and any(
            v is not None and v.spec is not None for v in self.variants.values()
        )

    @property
    def specs(self) -> list[Spec]:
        """Every distinct spec in use (by digest), the image's or its variants'."""
        found: dict[str, Spec] = {}
        if self.variants is None:
            if self.spec is not None:
                found[self.spec.digest] = self.spec
        else:
            for v in self.variants.values():
                if v is not None and v.spec is not None:
                    found.setdefault(v.spec.digest, v.spec)
        return list(found.values())


@dataclass(frozen=True, slots=True)
class Child:
    """One platform child of an index as a source found it: its manifest and its own spec."""

    manifest: str
    spec: Spec | None
    artifact: str = ""


def resolve_variants(
    image: str,
    index_spec: Spec | None,
    children: Mapping[str, Child | None],
    *,
    digest: str = "",
    index_artifact: str = "",
) -> ImageSpec:
    """The :class:`ImageSpec` of an index: per platform the child's own spec, else the index's
    (module docstring). ``children`` maps each platform asked about to its child (``None``: the
    index has none)."""
    variants: dict[str, Variant | None] = {}
    for platform, child in children.items():
        if child is None:
            variants[platform] = None
        elif child.spec is not None:
            variants[platform] = Variant(platform, child.spec, "platform", child.manifest, child.artifact)
        elif index_spec is not None:
            variants[platform] = Variant(platform, index_spec, "index", child.manifest, index_artifact)
        else:
            variants[platform] = Variant(platform, None, "none", child.manifest)
    return ImageSpec(image, index_spec, variants, digest, index_artifact)
