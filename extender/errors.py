"""The project's one exception tree.

    ExtenderError
    ├── SpecError            a compatibility spec that NFD would reject everywhere (names the path)
    │   └── SpecLimitError   a spec over a size, nesting, node or alias-expansion limit
    ├── NodeFeatureError     a NodeFeature object that is not shaped like the CRD says
    ├── ConfigError          the extender's own configuration file or flags (names the key)
    ├── FileLoadError        a local YAML/JSON file that cannot be read or decoded safely
    └── RegistryError        an OCI registry answer or credential that cannot be used

Evaluation errors (a value that does not parse as an integer, a regexp that does not compile, ...)
are *not* exceptions: NFD reports them per node, so the matchers return them as data
(``extender.match.result.EvalError``) next to matched / not matched.
"""

from __future__ import annotations


class ExtenderError(Exception):
    """Base class of every error this package raises on purpose."""


class SpecError(ExtenderError):
    """A spec that cannot be used at all. ``path`` points at the offending field, e.g.
    ``compatibilities[1].rules[0].matchFeatures[2].matchExpressions.vendor``."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class SpecLimitError(SpecError):
    """The document is over one of the parser's limits (bytes, nodes, depth, alias expansion)."""


class NodeFeatureError(ExtenderError):
    """A NodeFeature object that does not have the shape the CRD requires."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


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


class RegistryError(ExtenderError):
    """Talking to an OCI registry failed or it answered something unusable: an auth challenge,
    credential or token that cannot be used, a manifest that is not shaped like the OCI spec says,
    a digest or size that does not match (the message names the field or header)."""
