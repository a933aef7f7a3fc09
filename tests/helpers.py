"""Small builders so tests read like the semantics note."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from extender.config import Config, load_config
from extender.features.nodefeature import NodeFeatures
from extender.match.evaluate import Implementation, evaluate
from extender.match.result import Status
from extender.match.table import FeatureTable
from extender.spec.model import CompatibilitySet, FeatureTerm, MatchExpression, Rule, Spec

IMPLEMENTATIONS: tuple[Implementation, ...] = ("reference", "vectorized")


def X(op: str, *values: str, type: str = "") -> MatchExpression:
    return MatchExpression(op=op, value=tuple(values), value_type=type)


def T(
    feature: str, exprs: Mapping[str, MatchExpression] | None = None, name: MatchExpression | None = None
) -> FeatureTerm:
    return FeatureTerm(
        feature=feature,
        match_expressions=None if exprs is None else tuple(exprs.items()),
        match_name=name,
    )


def R(
    *terms: FeatureTerm,
    any_of: Iterable[Iterable[FeatureTerm]] = (),
    vars: Mapping[str, str] | None = None,
    name: str = "r",
) -> Rule:
    return Rule(
        name=name,
        match_features=tuple(terms),
        match_any=tuple(tuple(e) for e in any_of),
        vars=tuple((vars or {}).items()),
    )


def S(*sets: Iterable[Rule] | CompatibilitySet) -> Spec:
    built = tuple(s if isinstance(s, CompatibilitySet) else CompatibilitySet(rules=tuple(s)) for s in sets)
    digest = "sha256:" + hashlib.sha256(repr(built).encode()).hexdigest()
    return Spec(version="v1alpha1", compatibilities=built, digest=digest)


def node(
    name: str = "n",
    flags: Mapping[str, Iterable[str]] | None = None,
    attrs: Mapping[str, Mapping[str, str]] | None = None,
    instances: Mapping[str, Iterable[Mapping[str, str]]] | None = None,
) -> NodeFeatures:
    return NodeFeatures(
        node=name,
        flags={k: frozenset(v) for k, v in (flags or {}).items()},
        attributes={k: dict(v) for k, v in (attrs or {}).items()},
        instances={k: tuple(dict(i) for i in v) for k, v in (instances or {}).items()},
    )


def statuses(
    impl: Implementation, spec: Spec, nf: NodeFeatures, tags: Iterable[str] | None = None
) -> list[Status]:
    table = FeatureTable.from_features([nf])
    result = evaluate(spec, table, [nf.node], tags=tags, implementation=impl)
    return [Status(int(s)) for s in result.status[0]]


def verdict(impl: Implementation, spec_or_term: Spec | Rule | FeatureTerm, nf: NodeFeatures) -> Status:
    if isinstance(spec_or_term, FeatureTerm):
        spec = S([R(spec_or_term)])
    elif isinstance(spec_or_term, Rule):
        spec = S([spec_or_term])
    else:
        spec = spec_or_term
    (only,) = statuses(impl, spec, nf)
    return only


def plain_id(text: object) -> str:
    """A test id that can be passed back to pytest on a command line as it is (``make mutate`` runs
    tests by id): printable ASCII with no backslash; anything else is spelled ``<hex code point>``.
    pytest's own escaping writes backslashes, and such an id then selects nothing."""
    s = text if isinstance(text, str) else repr(text)
    return "".join(c if " " <= c <= "~" and c != "\\" else f"<{ord(c):x}>" for c in s)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example_files_config(reload_seconds: float = 0) -> Config:
    """serve's configuration for the bundled examples: NodeFeature files and the image mapping,
    reloaded every ``reload_seconds`` (0: never)."""
    return load_config(
        None,
        {
            "features.path": str(EXAMPLES / "nodefeatures"),
            "specs.images": str(EXAMPLES / "images.yaml"),
            "features.reloadSeconds": reload_seconds,
            "specs.reloadSeconds": reload_seconds,
        },
    )
