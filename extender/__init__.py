"""nfd-compat-extender: place pods only on nodes that can run their images.

The public surface is what this module exports; everything else is an implementation detail.

    spec = parse_spec(yaml_bytes)                      # immutable, identified by sha256 of the bytes
    table = table_from_nodefeatures(objects)           # columnar features of every node
    table.set_node(features) / table.remove_node(name) # incremental updates, bumps table.generation
    result = evaluate(spec, table, ["node-a"], tags=["gpu"])          # vectorized + cached
    result = evaluate(spec, table, implementation="reference")        # the oracle
    account = explain(spec, table.node_features("node-a"))            # why, per set/rule/expression

``extender.__version__`` is the installed distribution's version (``pyproject.toml``), looked up the
first time it is read: ``importlib.metadata`` costs tens of milliseconds to import, which no user of
the matcher alone should pay.
"""

from extender.errors import ExtenderError, NodeFeatureError, SpecError, SpecLimitError
from extender.features.nodefeature import (
    NodeFeatures,
    ParsedNodeFeature,
    features_from_dict,
    merge_features,
    node_features_from_objects,
    parse_nodefeature,
)
from extender.features.objects import NodeFeatureObjects
from extender.match.evaluate import Implementation, evaluate
from extender.match.explain import Explanation, explain
from extender.match.result import SetResult, SpecEvaluation, Status
from extender.match.table import FeatureTable, table_from_nodefeatures
from extender.spec.model import (
    ARTIFACT_TYPE,
    SPEC_MEDIA_TYPE,
    CompatibilitySet,
    FeatureTerm,
    MatchExpression,
    Rule,
    Spec,
    SpecWarning,
)
from extender.spec.parse import SpecLimits, parse_spec

#: The distribution whose metadata holds the version.
_DISTRIBUTION = "nfd-compat-extender"
#: When the package runs without installed metadata (from a bare source tree on ``PYTHONPATH``).
_UNKNOWN_VERSION = "0+unknown"

__version__: str  # computed on first access by __getattr__ below (PEP 562)

__all__ = [
    "ARTIFACT_TYPE",
    "SPEC_MEDIA_TYPE",
    "CompatibilitySet",
    "Explanation",
    "ExtenderError",
    "FeatureTable",
    "FeatureTerm",
    "Implementation",
    "MatchExpression",
    "NodeFeatureError",
    "NodeFeatureObjects",
    "NodeFeatures",
    "ParsedNodeFeature",
    "Rule",
    "SetResult",
    "Spec",
    "SpecError",
    "SpecEvaluation",
    "SpecLimitError",
    "SpecLimits",
    "SpecWarning",
    "Status",
    "evaluate",
    "explain",
    "features_from_dict",
    "merge_features",
    "node_features_from_objects",
    "parse_nodefeature",
    "parse_spec",
    "table_from_nodefeatures",
]


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = _UNKNOWN_VERSION
    globals()["__version__"] = version  # looked up once
    return version
