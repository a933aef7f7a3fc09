"""Platforms (``os/arch[/variant]``): parsed from a command line or config value, and compared the
way container runtimes choose a child of a multi-arch image index. No I/O.

OCI manifests carry platforms too; their JSON is parsed next to the manifests
(:func:`extender.sources.registry.manifests.parse_platform`) into the same :class:`Platform`.
"""

from __future__ import annotations

from dataclasses import dataclass

from extender.errors import PlatformError


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7", "amd64": "v1"}


def normalise_platform(platform: Platform) -> tuple[str, str, str]:
    """``(os, architecture, variant)`` lower-cased with the usual aliases folded (``aarch64`` is
    ``arm64``) and the implied variant filled in (arm64 means ``v8``, arm ``v7``, amd64 ``v1``)."""
    os_ = platform.os.lower()
    arch = platform.architecture.lower()
    arch = _ARCH_ALIASES.get(arch, arch)
    variant = platform.variant.lower() or _DEFAULT_VARIANT.get(arch, "")
    if arch == "arm64" and variant == "8":
        variant = "v8"
    return os_, arch, variant


#: The platform of a node whose platform nothing says (and the default of ``registry.platform``).
DEFAULT_PLATFORM = "linux/amd64"


def platform_key(platform: Platform) -> str:
    """The normalised ``os/arch[/variant]`` string platforms are grouped and compared by
    (``linux/arm64/v8`` for ``linux/aarch64``; ``linux/amd64/v1`` for ``linux/amd64``)."""
    return "/".join(p for p in normalise_platform(platform) if p)


def parse_platform_spec(text: str) -> Platform:
    """``os/arch[/variant]`` as given on a command line (``linux/arm64/v8``)."""
    parts = text.strip().split("/") if isinstance(text, str) else []
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise PlatformError(f"platform: expected os/arch[/variant], got {text!r}")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def key_of(text: str) -> str:
    """:func:`platform_key` of an ``os/arch[/variant]`` string (raises PlatformError)."""
    return platform_key(parse_platform_spec(text))
