"""Image references, parsed and normalised the way Docker and containerd read a Pod's ``image``.

    nginx                              -> docker.io/library/nginx:latest
    ghcr.io/org/app:1.2@sha256:<64 hex> -> registry ghcr.io, repository org/app, tag 1.2, digest
    localhost:5000/app                 -> registry localhost:5000, repository app, tag latest

The rules are distribution/reference's grammar and its Docker Hub normalisation: the first path
component is a registry only when it contains ``.`` or ``:``, is ``localhost``, or has upper-case
letters; otherwise the image lives on ``docker.io`` and a single-component repository gets
``library/``. ``index.docker.io`` is ``docker.io``. A reference with neither tag nor digest means
``:latest``. With both, the digest decides what is pulled (the tag is informative).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from extender.errors import ImageReferenceError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MAX_NAME = 255
MAX_INPUT = 4096

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|-+)"
_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEP}{_ALNUM})*")
_DOMAIN_PART = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
_HOST = re.compile(rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True, slots=True)
class ImageRef:
    registry: str  # host[:port], e.g. "docker.io", "localhost:5000"
    repository: str  # e.g. "library/nginx"
    tag: str = ""
    digest: str = ""  # "sha256:<hex>"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """Where the registry API is served (Docker Hub's API host differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ("" if self.digest else ":latest")
        at = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{at}"

    def with_digest(self, digest: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, self.tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DOCKER_HUB, name
    else:
        domain, remainder = first, rest
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = f"library/{remainder}"
    return domain, remainder


def parse_reference(text: str) -> ImageRef:
    """Parse and normalise ``text``; raises :class:`ImageReferenceError`."""
    if not isinstance(text, str) or not text:
        raise ImageReferenceError("image reference: empty")
    if len(text) > MAX_INPUT:
        raise ImageReferenceError(f"image reference: {len(text)} characters, over the {MAX_INPUT} limit")
    if text != text.strip() or any(c.isspace() for c in text):
        raise ImageReferenceError(f"image reference {text!r}: contains whitespace")
    if _IMAGE_ID.fullmatch(text):
        raise ImageReferenceError(f"image reference {text!r}: a bare 64-hex image ID is not a reference")
    rest, at, digest = text.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise ImageReferenceError(f"image reference {text!r}: invalid digest {digest!r}")
    if digest.startswith("sha256:") and not re.fullmatch(r"sha256:[a-f0-9]{64}", digest):
        raise ImageReferenceError(f"image reference {text!r}: a sha256 digest is 64 lower-case hex digits")
    # a ':' after the last '/' starts the tag (a ':' before it is a registry port)
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = ""
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ImageReferenceError(f"image reference {text!r}: invalid tag {tag!r}")
    domain, repository = _split_domain(rest)
    if not _HOST.fullmatch(domain):
        raise ImageReferenceError(f"image reference {text!r}: invalid registry {domain!r}")
    if repository.lower() != repository:
        raise ImageReferenceError(f"image reference {text!r}: repository name must be lower-case")
    parts = repository.split("/")
    bad = next((p for p in parts if not _COMPONENT.fullmatch(p)), None)
    if bad is not None:
        raise ImageReferenceError(f"image reference {text!r}: invalid path component {bad!r}")
    if len(domain) + 1 + len(repository) > MAX_NAME:
        raise ImageReferenceError(f"image reference {text!r}: name longer than {MAX_NAME} characters")
    return ImageRef(domain, repository, tag, digest)


@functools.lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    """The canonical spelling of a reference (``nginx`` -> ``docker.io/library/nginx:latest``);
    text that does not parse is returned unchanged, so a lookup by it simply finds nothing."""
    try:
        return str(parse_reference(text))
    except ImageReferenceError:
        return text


class ImageScope:
    """The images that may carry compatibility specs (``specs.scope``): each pattern is a registry
    host (``registry.example.com``, ``localhost:5000``), optionally followed by a repository path
    prefix (``registry.example.com/hpc``). An image is in scope when its normalised name (registry
    and repository, no tag) equals a pattern or continues it with ``/``: ``registry.example.com/hpc``
    covers ``registry.example.com/hpc/solver`` but not ``registry.example.com/hpcx``. Docker Hub is
    ``docker.io`` (``docker.io/library`` for official images). No patterns: every image is in scope.
    """

    def __init__(self, patterns: tuple[str, ...] | list[str] = ()) -> None:
        self.patterns = tuple(parse_scope_pattern(p) for p in patterns)

    def __bool__(self) -> bool:
        """True when the scope limits anything (some pattern is set)."""
        return bool(self.patterns)

    def covers(self, image: str) -> bool:
        if not self.patterns:
            return True
        try:
            ref = parse_reference(image)
        except ImageReferenceError:
            return False  # not an image any registry would serve: nothing to look up
        name = ref.name
        return any(name == p or name.startswith(p + "/") for p in self.patterns)


def parse_scope_pattern(text: str) -> str:
    """``host[/repository-prefix]`` in its canonical spelling; ImageReferenceError when it is not
    one (a pattern must name its registry: ``nginx`` or ``library/nginx`` would be ambiguous)."""
    if not isinstance(text, str) or not text.strip():
        raise ImageReferenceError(f"scope pattern {text!r}: expected host[/repository-prefix]")
    stripped = text.strip().rstrip("/")
    host = stripped.split("/", 1)[0]
    if not ("." in host or ":" in host or host == "localhost"):
        raise ImageReferenceError(
            f"scope pattern {text!r}: must start with a registry host (e.g. docker.io/{stripped})"
        )
    path = stripped.split("/", 1)[1] if "/" in stripped else ""
    if "@" in stripped or ":" in path:
        raise ImageReferenceError(f"scope pattern {text!r}: no tag or digest, only host[/repository-prefix]")
    if not _HOST.fullmatch(host):
        raise ImageReferenceError(f"scope pattern {text!r}: invalid registry host {host!r}")
    for component in path.split("/") if path else ():
        if not _COMPONENT.fullmatch(component):
            raise ImageReferenceError(f"scope pattern {text!r}: invalid path component {component!r}")
    # a prefix, not an image: Docker Hub's "library/" is not added (docker.io/istio is the istio org)
    host = DOCKER_HUB if host == "index.docker.io" else host
    return f"{host}/{path}" if path else host
