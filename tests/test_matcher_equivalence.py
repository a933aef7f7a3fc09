"""The vectorized matcher must agree with the reference evaluator on every input.

One property suite: random specs (all ops, invalid ops and value counts, unparsable numbers and
versions, broken regexps, matchName, matchAny, vars/rule.matched) against random clusters (flags,
attributes, instances, multi-type features, missing features and keys, empty values), including
tables changed incrementally after they were built. At least 2,000 examples per run.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.features.nodefeature import NodeFeatures
from extender.match.evaluate import evaluate
from extender.match.table import FeatureTable
from extender.spec.model import Spec
from tests.fuzz import examples
from tests.strategies import clusters, node_features, specs

SETTINGS = settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _agree(spec: Spec, table: FeatureTable, names: list[str], tags: frozenset[str] | None) -> None:
    ref = evaluate(spec, table, names, tags=tags, implementation="reference")
    vec = evaluate(spec, table, names, tags=tags, implementation="vectorized")
    assert ref.set_indexes == vec.set_indexes
    np.testing.assert_array_equal(vec.status, ref.status)
    assert dict(vec.errors) == dict(ref.errors)
    # The cached answer is the same answer.
    again = evaluate(spec, table, names, tags=tags)
    np.testing.assert_array_equal(again.status, ref.status)


@SETTINGS
@given(
    spec=specs(), cluster=clusters(), tags=st.sampled_from([None, frozenset({"a"}), frozenset({"a", "b"})])
)
def test_vectorized_equals_reference(
    spec: Spec, cluster: list[NodeFeatures], tags: frozenset[str] | None
) -> None:
    table = FeatureTable.from_features(cluster)
    names = [nf.node for nf in cluster] + ["unknown-node"]
    _agree(spec, table, names, tags)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), cluster=clusters(), data=st.data())
def test_incremental_updates_agree(spec: Spec, cluster: list[NodeFeatures], data: st.DataObject) -> None:
    table = FeatureTable.from_features(cluster)
    evaluate(spec, table)  # warm the cache and the per-value memos before changing the table
    for step in range(data.draw(st.integers(1, 6))):
        action = data.draw(st.sampled_from(["replace", "remove", "add"]))
        names = list(table.nodes())
        if action == "remove" and names:
            table.remove_node(data.draw(st.sampled_from(names)))
        elif action == "replace" and names:
            table.set_node(data.draw(node_features(data.draw(st.sampled_from(names)))))
        else:
            table.set_node(data.draw(node_features(f"new{step}")))
    _agree(spec, table, sorted(table.nodes()), None)
