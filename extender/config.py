"""The extender's configuration: one YAML file with defaults (or several, each merged over the ones
before it), overridable by command-line flags.

Every key is optional; ``config/extender.yaml`` lists them all with their defaults and what they do.
Keys are camelCase like Kubernetes objects; an unknown key, a wrong type or a value out of range is a
:class:`~extender.errors.ConfigError` naming the key, so a typo never silently falls back to a
default. Relative paths in a file are relative to that file; relative paths given as flags are
relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from extender.errors import ConfigError, ExtenderError, FileLoadError
from extender.images import parse_scope_pattern
from extender.platforms import parse_platform_spec
from extender.spec.yamlgo import SpecLimits
from extender.yamlfile import load_file


@dataclass(frozen=True, slots=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8888


@dataclass(frozen=True, slots=True)
class Debug:
    enabled: bool = True
    # 0 serves /debug/* on the main listener; any other port gets a listener of its own on `host`.
    host: str = "127.0.0.1"
    port: int = 0
    # GET /debug/explain without `node` explains at most this many nodes (the answer says so).
    maxNodes: int = 200
    # One explanation (/debug/explain, /debug/whatif) stops after this many seconds and answers what
    # it has, marked truncated; it runs in slices between the verbs' requests either way.
    maxSeconds: float = 10.0


@dataclass(frozen=True, slots=True)
class Features:
    source: Literal["files", "kubernetes"] = "files"
    path: Path = Path("examples/nodefeatures")  # files
    nfdNamespace: str = "node-feature-discovery"
    reloadSeconds: float = 2.0  # files; 0 disables the reload
    kubeconfig: str = ""  # kubernetes; "" = in-cluster, else $KUBECONFIG or ~/.kube/config
    watchNodes: bool = True  # kubernetes; a deleted Node leaves the table
    # kubernetes: once the NodeFeature watch has failed this long, pods with specs get Error; 0 = never
    maxStaleSeconds: float = 300.0


@dataclass(frozen=True, slots=True)
class Specs:
    source: Literal["files", "registry"] = "files"
    images: Path = Path("examples/images.yaml")  # files
    reloadSeconds: float = 2.0  # files
    # images that may carry specs: registry host[/repository prefix]; others have no spec and are never
    # looked up (nor can their lookup fail the pod). Empty: every image.
    scope: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RegistryCache:
    tagSeconds: float = 60.0  # tag -> digest
    referrersSeconds: float = 300.0  # digest -> chosen artifact (artifacts can be attached later)
    negativeSeconds: float = 30.0  # digest -> "no artifact"
    entries: int = 10_000  # per cache
    specEntries: int = 2_000  # artifact digest -> parsed spec (content-addressed)
    specBytes: int = 64 << 20  # ... bounded by the size of the spec documents too


@dataclass(frozen=True, slots=True)
class Registry:
    platform: str = "linux/amd64"  # the child of a multi-arch index asked when the index has no spec
    lookupSeconds: float = 10.0  # one image's whole lookup, all round trips
    requestSeconds: float = 5.0  # one HTTP request
    allow: tuple[str, ...] = ()  # registry hosts that may be contacted; empty = any
    plainHttp: tuple[str, ...] = ()  # hosts reached over http:// (loopback hosts too, unless in caFiles)
    caFiles: Mapping[str, Path] = field(default_factory=dict)  # host -> PEM bundle to trust
    dockerConfig: Path | None = None  # a docker config.json (a mounted pull Secret)
    maxManifestBytes: int = 4 << 20
    maxSpecBytes: int = 1 << 20
    cache: RegistryCache = field(default_factory=RegistryCache)


@dataclass(frozen=True, slots=True)
class Prefetch:
    enabled: bool = False  # needs features.source kubernetes (watches unscheduled pods)
    schedulerNames: tuple[str, ...] = ("compat-scheduler",)
    concurrency: int = 8


@dataclass(frozen=True, slots=True)
class WakeUp:
    enabled: bool = False  # annotate a Node that starts to fit a waiting pod (needs prefetch)
    intervalSeconds: float = 5.0  # changes are compared (and a node written at most once) per interval
    maxWritesPerInterval: int = 20  # Node annotations per interval in all; the rest wait their turn


@dataclass(frozen=True, slots=True)
class Tls:
    certFile: Path | None = None  # set (with keyFile): the listener(s) speak HTTPS
    keyFile: Path | None = None
    clientCAFile: Path | None = None  # set: /filter, /prioritize, /debug/* need a client cert from this CA
    reloadSeconds: float = 60.0  # re-read the files this often when they changed; 0 = never


_SPEC = SpecLimits()  # the parser's defaults are the config's defaults


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one image compatibility spec (files, registry, CLI): over one, the spec is refused
    with an error naming the key. Image authors write specs; these keep a hostile one cheap."""

    specBytes: int = _SPEC.max_bytes
    specYamlNodes: int = _SPEC.max_nodes  # scalars and collections, alias expansions included
    specYamlDepth: int = _SPEC.max_depth
    specYamlAliasNodes: int = _SPEC.max_alias_expansion
    specScalarChars: int = _SPEC.max_scalar_len
    specSets: int = _SPEC.max_sets
    specRules: int = _SPEC.max_rules  # all sets together
    specExpressions: int = _SPEC.max_expressions  # all rules together
    specValuesPerExpression: int = _SPEC.max_values
    specRegexChars: int = _SPEC.max_regex_len

    def spec_limits(self) -> SpecLimits:
        return SpecLimits(
            max_bytes=self.specBytes,
            max_nodes=self.specYamlNodes,
            max_depth=self.specYamlDepth,
            max_alias_expansion=self.specYamlAliasNodes,
            max_scalar_len=self.specScalarChars,
            max_sets=self.specSets,
            max_rules=self.specRules,
            max_expressions=self.specExpressions,
            max_values=self.specValuesPerExpression,
            max_regex_len=self.specRegexChars,
        )


@dataclass(frozen=True, slots=True)
class Config:
    listen: Listen = field(default_factory=Listen)
    pathPrefix: str = ""
    failurePolicy: Literal["Fail", "Ignore"] = "Fail"
    missingFeatures: Literal["fail", "pass"] = "fail"
    missingPlatform: Literal["fail", "pass"] = "fail"
    detailLimit: int = 50
    maxBodyBytes: int = 128 << 20
    debug: Debug = field(default_factory=Debug)
    features: Features = field(default_factory=Features)
    specs: Specs = field(default_factory=Specs)
    registry: Registry = field(default_factory=Registry)
    prefetch: Prefetch = field(default_factory=Prefetch)
    wakeUp: WakeUp = field(default_factory=WakeUp)
    tls: Tls = field(default_factory=Tls)
    limits: Limits = field(default_factory=Limits)
    logLevel: Literal["debug", "info", "warning", "error"] = "info"


# (dotted key) -> (minimum, maximum) for numbers
_RANGES: dict[str, tuple[float, float]] = {
    "listen.port": (0, 65535),
    "debug.port": (0, 65535),
    "debug.maxNodes": (1, 100_000),
    "debug.maxSeconds": (0.1, 3_600),
    "detailLimit": (0, 100_000),
    "maxBodyBytes": (1024, 1 << 34),
    "features.reloadSeconds": (0, 86_400),
    "features.maxStaleSeconds": (0, 86_400),
    "specs.reloadSeconds": (0, 86_400),
    "registry.lookupSeconds": (0.1, 3_600),
    "registry.requestSeconds": (0.1, 3_600),
    "registry.maxManifestBytes": (1024, 1 << 30),
    "registry.maxSpecBytes": (1024, 1 << 30),
    "registry.cache.tagSeconds": (0, 86_400),
    "registry.cache.referrersSeconds": (0, 86_400),
    "registry.cache.negativeSeconds": (0, 86_400),
    "registry.cache.entries": (1, 10_000_000),
    "registry.cache.specEntries": (1, 10_000_000),
    "registry.cache.specBytes": (1024, 1 << 40),
    "prefetch.concurrency": (1, 1024),
    "wakeUp.intervalSeconds": (0.1, 3600),
    "wakeUp.maxWritesPerInterval": (1, 10_000),
    "tls.reloadSeconds": (0, 86_400),
    "limits.specBytes": (1024, 1 << 30),
    "limits.specYamlNodes": (100, 100_000_000),
    "limits.specYamlDepth": (8, 10_000),
    "limits.specYamlAliasNodes": (1, 100_000_000),
    "limits.specScalarChars": (256, 1 << 30),
    "limits.specSets": (1, 1_000_000),
    "limits.specRules": (1, 10_000_000),
    "limits.specExpressions": (1, 10_000_000),
    "limits.specValuesPerExpression": (1, 10_000_000),
    "limits.specRegexChars": (16, 1 << 20),
}
_PATH_KEYS = (
    "features.path",
    "specs.images",
    "registry.dockerConfig",
    "tls.certFile",
    "tls.keyFile",
    "tls.clientCAFile",
)
_PATH_MAP_KEYS = ("registry.caFiles",)


def _decode(cls: type[Any], raw: Any, prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(prefix or "config", f"expected a mapping, got {_kind(raw)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(_join(prefix, str(key)), f"unknown key (known: {', '.join(sorted(names))})")
    values = {k: _value(hints[k], v, _join(prefix, k)) for k, v in raw.items()}
    return cls(**values)


def _value(hint: Any, raw: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _decode(typing.cast(type[Any], hint), raw, key)
    if typing.get_origin(hint) is Literal:
        allowed = typing.get_args(hint)
        if raw not in allowed:
            raise ConfigError(key, f"expected one of {', '.join(map(str, allowed))}, got {raw!r}")
        return raw
    if hint is bool:
        if not isinstance(raw, bool):
            raise ConfigError(key, f"expected true or false, got {_kind(raw)}")
        return raw
    if hint is int or hint is float:
        if (
            isinstance(raw, bool)
            or not isinstance(raw, int | float)
            or (hint is int and isinstance(raw, float))
        ):
            raise ConfigError(
                key, f"expected {'an integer' if hint is int else 'a number'}, got {_kind(raw)}"
            )
        low, high = _RANGES.get(key, (float("-inf"), float("inf")))
        if not low <= raw <= high:
            raise ConfigError(key, f"{raw} is out of range [{low:g}, {high:g}]")
        return hint(raw)
    if hint is str or hint is Path:
        if not isinstance(raw, str):
            raise ConfigError(key, f"expected a string, got {_kind(raw)}")
        return Path(raw) if hint is Path else raw
    if hint == Path | None:
        return None if raw is None or raw == "" else _value(Path, raw, key)
    if typing.get_origin(hint) is tuple:
        if not isinstance(raw, list | tuple):
            raise ConfigError(key, f"expected a list, got {_kind(raw)}")
        (item, _) = typing.get_args(hint)
        return tuple(_value(item, v, f"{key}[{i}]") for i, v in enumerate(raw))
    if typing.get_origin(hint) is Mapping:
        if not isinstance(raw, Mapping):
            raise ConfigError(key, f"expected a mapping, got {_kind(raw)}")
        (k_hint, v_hint) = typing.get_args(hint)
        return {_value(k_hint, k, key): _value(v_hint, v, _join(key, str(k))) for k, v in raw.items()}
    raise TypeError(f"{key}: unsupported config type {hint!r}")  # pragma: no cover


def _kind(raw: Any) -> str:
    return "null" if raw is None else type(raw).__name__


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = tree
    for p in parents:
        child = node.get(p)
        if not isinstance(child, dict):
            child = node[p] = {} if child is None else child
        if not isinstance(child, dict):
            raise ConfigError(p, "expected a mapping")
        node = child
    node[last] = value


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for p in dotted.split("."):
        if not isinstance(node, Mapping) or p not in node:
            return None
        node = node[p]
    return node


def _read(path: Path) -> dict[str, Any]:
    """One config file as a tree, its relative paths resolved against its directory."""
    try:
        docs = load_file(path)
    except FileLoadError as exc:
        raise ConfigError("", str(exc)) from None
    if len(docs) > 1:
        raise ConfigError("", f"{path}: expected one YAML document, found {len(docs)}")
    if not docs:
        return {}
    if not isinstance(docs[0], dict):
        raise ConfigError("", f"{path}: expected a mapping at the top, got {_kind(docs[0])}")
    tree: dict[str, Any] = docs[0]
    for key in _PATH_KEYS:
        value = _get(tree, key)
        if isinstance(value, str) and value:
            _set(tree, key, str(path.parent / value))
    for key in _PATH_MAP_KEYS:
        mapping = _get(tree, key)
        if isinstance(mapping, dict):
            for k, value in mapping.items():
                if isinstance(value, str) and value:
                    mapping[k] = str(path.parent / value)
    return tree


def _merge(tree: dict[str, Any], over: Mapping[str, Any]) -> None:
    """``over`` into ``tree``: mappings key by key (recursively), anything else replaced."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(tree.get(key), dict):
            _merge(tree[key], value)
        else:
            tree[key] = value


def load_config(
    path: Path | Sequence[Path] | None = None, overrides: Mapping[str, Any] | None = None
) -> Config:
    """The file at ``path`` (if any; or several files, each merged over the ones before it) over the
    defaults, then ``overrides`` (dotted key -> value, from flags) over that. Raises ConfigError
    naming the offending key (and, with several files, the file).

    Merging: a mapping in a later file merges into the same mapping key by key, at any depth; any
    other value (a scalar, a list) replaces the earlier one whole. So a file that only says
    ``registry: {dockerConfig: x}`` changes that one key and keeps the rest of ``registry``."""
    paths = [] if path is None else [path] if isinstance(path, Path) else list(path)
    tree: dict[str, Any] = {}
    for p in paths:
        fragment = _read(p)
        if len(paths) > 1:  # a bad key or type is reported in the file that has it
            try:
                _decode(Config, fragment, "")
            except ConfigError as exc:
                raise ConfigError(exc.key, f"{exc.message} (in {p})") from None
        _merge(tree, fragment)
    for key, value in (overrides or {}).items():
        _set(tree, key, value)
    config: Config = _decode(Config, tree, "")
    if config.debug.port and config.debug.port == config.listen.port:
        raise ConfigError("debug.port", "must differ from listen.port (use 0 to share the main listener)")
    if (config.tls.certFile is None) != (config.tls.keyFile is None):
        raise ConfigError("tls", "certFile and keyFile go together (set both, or neither for plain HTTP)")
    if config.tls.clientCAFile is not None and config.tls.certFile is None:
        raise ConfigError("tls.clientCAFile", "needs certFile and keyFile (mutual TLS is TLS first)")
    if config.prefetch.enabled and config.features.source != "kubernetes":
        raise ConfigError("prefetch.enabled", "needs features.source: kubernetes (it watches pods)")
    if config.wakeUp.enabled and not config.prefetch.enabled:
        raise ConfigError("wakeUp.enabled", "needs prefetch.enabled (its pod watch knows the waiting pods)")
    try:
        parse_platform_spec(config.registry.platform)
    except ExtenderError as exc:
        raise ConfigError("registry.platform", str(exc)) from None
    for i, pattern in enumerate(config.specs.scope):
        try:
            parse_scope_pattern(pattern)
        except ExtenderError as exc:
            raise ConfigError(f"specs.scope[{i}]", str(exc)) from None
    return config


def to_dict(config: Config) -> dict[str, Any]:
    """The effective configuration, as the file would spell it (for logs and --print-config)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, Mapping):
            return {k: conv(x) for k, x in v.items()}
        return str(v) if isinstance(v, Path) else v

    out: dict[str, Any] = conv(config)
    return out
