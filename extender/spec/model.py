"""The image compatibility spec (``v1alpha1``) as immutable values.

Shapes follow NFD's Go types (``api/image-compatibility/v1alpha1/spec.go`` and the GroupRule part of
``api/nfd/v1alpha1/types.go``). Go maps (``matchExpressions``, ``vars``) become tuples of pairs in
document order with duplicate keys resolved (last wins), so a parsed spec is hashable, immutable and
deterministic to iterate. Nothing here evaluates anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ARTIFACT_TYPE = "application/vnd.nfd.image-compatibility.v1alpha1"
SPEC_MEDIA_TYPE = "application/vnd.nfd.image-compatibility.spec.v1alpha1+yaml"
SPEC_VERSION = "v1alpha1"

#: Every op NFD knows. ``""`` is the "Any" op (always true). Names are case-sensitive.
KNOWN_OPS: frozenset[str] = frozenset(
    {
        "",
        "In",
        "NotIn",
        "InRegexp",
        "Exists",
        "DoesNotExist",
        "Gt",
        "Ge",
        "Lt",
        "Le",
        "GtLt",
        "GeLe",
        "IsTrue",
        "IsFalse",
    }
)
#: Ops that must not be given values (NFD errors on every node otherwise).
NO_VALUE_OPS: frozenset[str] = frozenset({"", "Exists", "DoesNotExist"})
#: Ops that consult ``type`` (``""`` = integer, ``"version"`` = NFD's semver).
ORDERING_OPS: frozenset[str] = frozenset({"Gt", "Ge", "Lt", "Le", "GtLt", "GeLe"})
TYPE_INTEGER = ""
TYPE_VERSION = "version"

#: The synthetic attribute feature fed with each rule's ``vars`` (back-references).
RULE_BACKREF_FEATURE = "rule.matched"


@dataclass(frozen=True, slots=True)
class MatchExpression:
    """``{op, value, type}``: one expression, applied to one element."""

    op: str
    value: tuple[str, ...] = ()
    value_type: str = TYPE_INTEGER  # the YAML/JSON key is ``type``

    def render(self) -> str:
        """Compact text like NFD's: ``{op: "In", value: ["x"]}``."""
        parts = [f'op: "{self.op}"']
        if self.value:
            parts.append("value: [" + ", ".join(f'"{v}"' for v in self.value) + "]")
        if self.value_type:
            parts.append(f'type: "{self.value_type}"')
        return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True, slots=True)
class FeatureTerm:
    """One ``matchFeatures`` element.

    ``match_expressions`` is ``None`` when the key is absent or null (not checked) and a tuple (possibly
    empty) when present: NFD distinguishes the two (``{}`` needs a flag/attribute set or an instance).
    """

    feature: str
    match_expressions: tuple[tuple[str, MatchExpression], ...] | None = None
    match_name: MatchExpression | None = None

    @property
    def feature_key(self) -> str:
        """The name NFD looks up: the term's feature, lower-cased."""
        return self.feature.lower()


@dataclass(frozen=True, slots=True)
class Rule:
    """A GroupRule: ``matchAny`` (OR of AND-lists) and ``matchFeatures`` (AND), plus ``vars`` that
    feed the ``rule.matched`` back-reference feature. ``vars_template`` is kept but not executed."""

    name: str = ""
    match_features: tuple[FeatureTerm, ...] = ()
    match_any: tuple[tuple[FeatureTerm, ...], ...] = ()
    vars: tuple[tuple[str, str], ...] = ()
    vars_template: str = ""


@dataclass(frozen=True, slots=True)
class CompatibilitySet:
    """One entry of ``compatibilities``: alternatives to the other sets; matches when all rules do."""

    rules: tuple[Rule, ...] = ()
    weight: int = 0
    tag: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class SpecWarning:
    """Something that parses but will misbehave on some nodes (it is an evaluation-time error in
    NFD), or that NFD accepts but this project does not execute (``varsTemplate``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True, slots=True)
class Spec:
    """A parsed spec. Identified by ``digest`` = ``sha256:<hex>`` of the bytes it was parsed from."""

    version: str
    compatibilities: tuple[CompatibilitySet, ...]
    digest: str
    warnings: tuple[SpecWarning, ...] = field(default=(), compare=False)

    def selected_sets(self, tags: frozenset[str] | None) -> tuple[int, ...]:
        """Indexes of the sets evaluated for ``tags`` (NFD's ``--tags``: with tags given, a set whose
        tag is not among them is skipped, untagged sets included; ``None`` or empty = all sets)."""
        if not tags:
            return tuple(range(len(self.compatibilities)))
        return tuple(i for i, c in enumerate(self.compatibilities) if c.tag in tags)
