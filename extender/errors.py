"""The project's one exception tree: every exception class of the package is defined here.

    ExtenderError
    ├── SpecError                  a compatibility spec that NFD would reject everywhere (names the path)
    │   └── SpecLimitError         a spec over a size, nesting, node or alias-expansion limit
    ├── EvaluationError            one expression NFD reports an error for (internal to the matchers)
    ├── NodeFeatureError           a NodeFeature object that is not shaped like the CRD says
    ├── PodError                   a Pod object that is not shaped like a v1.Pod where it is read
    ├── PlatformError              an ``os/arch[/variant]`` platform that cannot be parsed
    ├── ImageReferenceError        not a valid image reference
    ├── ConfigError                the extender's own configuration file or flags (names the key)
    ├── FileLoadError              a local YAML/JSON file that cannot be read or decoded safely
    │   └── DuplicateKeyError      ... because a mapping in it has the same key twice
    ├── HostPathError              a host file this process refuses to read (also an OSError)
    ├── SpecLookupError            a spec lookup failed (registry down, wrong digest, ...): not "no spec"
    │   └── ImageLookupError       ... for one of a pod's images, under failure policy Fail
    ├── KubeError                  the Kubernetes API server answered an error, or could not be reached
    │   └── WatchExpiredError      410 Gone: the resourceVersion is older than the server keeps
    ├── FeaturesUnavailableError   node features not synced yet, or stale: no decision can be made now
    ├── RegistryError              an OCI registry answer or credential that cannot be used
    │   ├── ManifestError          a manifest, index or descriptor not shaped like the OCI spec says
    │   │   └── DigestMismatchError  content whose digest or size is not the one asked for
    │   ├── RegistryStatusError    an error status from the registry (with its error codes)
    │   ├── RegistryNotAllowedError  the image's registry is not in the allow-list
    │   ├── RegistryAuthError      an auth challenge, credential or token that cannot be used
    │   ├── RegistryTransportError the request did not complete (timeout, refused, TLS, truncated)
    │   └── BodyTooLargeError      a response body over the caller's limit
    ├── WireError                  a request body that is not a valid ExtenderArgs
    ├── BadRequestError            a debug-endpoint request that cannot be answered (has a status)
    └── CommandError               a command-line command that cannot go on (exit status 2)

Evaluation errors (a value that does not parse as an integer, a regexp that does not compile, ...)
never leave the matchers as exceptions: NFD reports them per node, so :class:`EvaluationError` is
caught inside and returned as data (``Status.ERROR`` and its message) next to matched / not matched.
"""

from __future__ import annotations


class ExtenderError(Exception):
    """Base class of every error this package raises on purpose."""


class _PathError(ExtenderError):
    """An error about one field of a document; ``path`` points at it (empty for the document)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class SpecError(_PathError):
    """A spec that cannot be used at all. ``path`` points at the offending field, e.g.
    ``compatibilities[1].rules[0].matchFeatures[2].matchExpressions.vendor``."""


class SpecLimitError(SpecError):
    """The document is over one of the parser's limits (bytes, nodes, depth, alias expansion)."""


class EvaluationError(ExtenderError):
    """NFD returns an error for this expression on this element (an unparsable value, an unknown
    op, ...). Internal to the matchers: converted to ``Status.ERROR`` per compatibility set."""


class NodeFeatureError(_PathError):
    """A NodeFeature object that does not have the shape the CRD requires."""


class PodError(ExtenderError):
    """The Pod object is not shaped like a v1.Pod where this package needs to read it."""


class PlatformError(ExtenderError):
    """A platform that is not ``os/arch[/variant]``."""


class ImageReferenceError(ExtenderError):
    """Not a valid image reference (the message says which part and why)."""


class ConfigError(ExtenderError):
    """A configuration value that is missing, of the wrong type or out of range. ``key`` is the
    dotted path in the config file (``debug.port``) or the flag that set it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class FileLoadError(ExtenderError):
    """A local file (config, NodeFeature, image mapping) that is too big, unreadable or not valid
    YAML/JSON, or uses YAML aliases (refused: the objects these files hold never need them)."""


class DuplicateKeyError(FileLoadError):
    """A mapping in a local file that has the same key twice. YAML and JSON loaders differ on what that
    means (an error, the first or the last value), so the file is refused rather than one guessed.
    ``key`` is the key as written, ``line`` and ``column`` (1-based) where it is repeated,
    ``first_line`` where it was first written."""

    def __init__(self, source: str, key: str, line: int, column: int, first_line: int) -> None:
        self.source = source
        self.key = key
        self.line = line
        self.column = column
        self.first_line = first_line
        super().__init__(
            f"{source}: duplicate key {key!r} at line {line}, column {column} (first at line "
            f"{first_line}): a mapping may hold each key once"
        )


class HostPathError(ExtenderError, OSError):
    """A host path that cannot be read for a reason of our own (outside the host directories,
    too many links, too large, not a regular file, bad compression). An :class:`OSError` too, with
    ``errno``, ``strerror`` and ``filename``, so a reader handles it like any failed read."""


class SpecLookupError(ExtenderError):
    """A spec lookup failed (registry down, wrong digest, ...): *not* the same as "no spec"."""


class ImageLookupError(SpecLookupError):
    """The spec of one of a pod's images could not be looked up, under failure policy ``Fail``."""

    def __init__(self, image: str, message: str) -> None:
        self.image = image
        super().__init__(f"spec lookup failed for image {image}: {message}")


class KubeError(ExtenderError):
    """The API server answered with an error status (``code``) or the transport failed (``code`` 0)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class WatchExpiredError(KubeError):
    """410 Gone: the resourceVersion asked for is older than what the server keeps. List again."""

    def __init__(self, message: str = "resourceVersion too old") -> None:
        super().__init__(message, 410)


class FeaturesUnavailableError(ExtenderError):
    """A pod with spec'd images cannot be decided on now: the node features are not synced yet, or
    their watch has been failing for longer than ``features.maxStaleSeconds``. Answered like a failed
    lookup (the filter's ``Error``: kube-scheduler retries the pod with backoff)."""


class RegistryError(ExtenderError):
    """Talking to an OCI registry failed or it answered something unusable: an auth challenge,
    credential or token that cannot be used, a manifest that is not shaped like the OCI spec says,
    a digest or size that does not match (the message names the field or header)."""


class ManifestError(RegistryError, _PathError):
    """A manifest, index or descriptor that is not shaped like the OCI spec says. ``path`` is the
    field (``manifests[0].size``), empty for the document itself."""


class DigestMismatchError(ManifestError):
    """Content whose digest or size is not the one asked for."""


class RegistryStatusError(RegistryError):
    """The registry answered with a status that means failure. ``codes`` are the distribution-spec
    error codes of its JSON body (``MANIFEST_UNKNOWN``, ``DENIED``, ...), when it sent any."""

    def __init__(
        self, *, what: str, method: str, url: str, status: int, codes: tuple[str, ...], detail: str
    ) -> None:
        self.status = status
        self.codes = codes
        self.url = url
        named = f" {','.join(codes)}" if codes else ""
        super().__init__(f"{what}: {method} {url}: {status}{named}{detail}")


class RegistryNotAllowedError(RegistryError):
    """The image's registry is not in the configured allow-list."""


class RegistryAuthError(RegistryError):
    """A challenge, credential entry or token response that cannot be used (the message says which)."""


class RegistryTransportError(RegistryError):
    """The request did not complete: timeout, connection refused or reset, TLS, a truncated body."""


class BodyTooLargeError(RegistryError):
    """A response body over the limit the caller set for it."""


class WireError(ExtenderError):
    """The request body is not a valid ExtenderArgs; the message says where."""


class BadRequestError(ExtenderError):
    """A debug-endpoint request that cannot be answered; ``status`` is the HTTP status to send."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class CommandError(ExtenderError):
    """A command-line command cannot go on (unreadable input, unreachable extender, ...): the
    message is printed and the command exits with status 2."""
