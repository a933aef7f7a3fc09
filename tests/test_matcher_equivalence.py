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
from extender.match.vector import evaluate_table
from extender.spec.model import Spec
from tests.fuzz import examples
from tests.strategies import clusters, specs, update_randomly

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
    update_randomly(table, data, st.integers(1, 6))
    _agree(spec, table, sorted(table.nodes()), None)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), cluster=clusters(), data=st.data())
def test_a_walk_over_some_slots_gives_their_rows_of_the_whole_walk(
    spec: Spec, cluster: list[NodeFeatures], data: st.DataObject
) -> None:
    """What patching a cached result reads (extender/match/evaluate.py): the vectorized walk over
    a subset of the slots (columns gathered per feature, vocabularies and per-value results shared
    with the table) gives exactly those slots' rows of the walk over the whole table, in the
    subset's order, after updates too (dead instance rows, reused slots)."""
    table = FeatureTable.from_features(cluster)
    set_indexes = spec.selected_sets(None)
    if data.draw(st.booleans()):
        evaluate_table(spec, table, set_indexes)  # memos filled before the table changes
    update_randomly(table, data, st.integers(0, 4))
    live = [s for n in table.nodes() if (s := table.slot(n)) is not None]
    picked = data.draw(st.lists(st.sampled_from(live), min_size=1, unique=True))
    whole = evaluate_table(spec, table, set_indexes)
    some = evaluate_table(spec, table.subset(np.array(picked, dtype=np.intp)), set_indexes)
    np.testing.assert_array_equal(some, whole[picked])
