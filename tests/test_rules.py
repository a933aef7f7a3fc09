"""Terms, rules, sets and back-references, from docs/nfd-semantics.md §3, §4, §6 and §7.

Each case runs against both implementations.
"""

from __future__ import annotations

import numpy as np
import pytest

from extender.match.evaluate import Implementation, evaluate
from extender.match.result import Status
from extender.match.table import FeatureTable
from extender.spec.model import CompatibilitySet
from tests.helpers import IMPLEMENTATIONS, R, S, T, X, node, statuses, verdict

M, N, E = Status.MATCHED, Status.NOT_MATCHED, Status.ERROR
BROKEN = X("Gt", "not-a-number")  # errors wherever a value is compared


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Implementation:
    return request.param  # type: ignore[no-any-return]


# -- §3.1 finding the feature -------------------------------------------------------------------
def test_feature_name_is_lower_cased(impl: Implementation) -> None:
    nf = node(flags={"cpu.cpuid": ["AVX2"]})
    assert verdict(impl, T("CPU.CPUID", {"AVX2": X("Exists")}), nf) == M


def test_upper_case_feature_in_node_never_matches(impl: Implementation) -> None:
    nf = node(flags={"CPU.X": ["a"]})
    assert verdict(impl, T("CPU.X", {"a": X("Exists")}), nf) == N


def test_missing_feature_is_false_and_evaluates_nothing(impl: Implementation) -> None:
    assert verdict(impl, T("f.missing", {"k": X("Bogus")}), node()) == N


def test_feature_without_dot_works(impl: Implementation) -> None:
    assert verdict(impl, T("nodot", {"k": X("Exists")}), node(flags={"nodot": ["k"]})) == M


def test_feature_with_zero_elements_exists(impl: Implementation) -> None:
    assert verdict(impl, T("f.x"), node(attrs={"f.x": {}})) == M


# -- §3.2 matchExpressions ----------------------------------------------------------------------
def test_empty_expressions_need_a_flag_or_attribute_set_or_an_instance(impl: Implementation) -> None:
    assert verdict(impl, T("f.x", {}), node(flags={"f.x": []})) == M
    assert verdict(impl, T("f.x", {}), node(instances={"f.x": [{}]})) == M
    assert verdict(impl, T("f.x", {}), node(instances={"f.x": []})) == N
    assert verdict(impl, T("f.x"), node(instances={"f.x": []})) == M  # omitted != {} (§9.3)


def test_flags_and_attributes_are_a_union_per_expression(impl: Implementation) -> None:
    nf = node(flags={"f.x": ["a"]}, attrs={"f.x": {"b": "1"}})
    assert verdict(impl, T("f.x", {"a": X("Exists"), "b": X("In", "1")}), nf) == M
    assert verdict(impl, T("f.x", {"a": X("In", "1")}), nf) == N  # value op on a flag


def test_does_not_exist_must_hold_on_every_part(impl: Implementation) -> None:
    nf = node(flags={"f.x": ["a"]}, attrs={"f.x": {"b": "1"}})
    assert verdict(impl, T("f.x", {"a": X("DoesNotExist")}), nf) == N
    assert verdict(impl, T("f.x", {"b": X("DoesNotExist")}), nf) == N
    assert verdict(impl, T("f.x", {"c": X("DoesNotExist")}), nf) == M


def test_one_instance_must_satisfy_the_whole_term(impl: Implementation) -> None:
    nf = node(
        instances={"pci.device": [{"vendor": "10de", "class": "0200"}, {"vendor": "8086", "class": "0300"}]}
    )
    term = T("pci.device", {"vendor": X("In", "10de"), "class": X("In", "0300")})
    assert verdict(impl, term, nf) == N
    nf2 = node(
        instances={"pci.device": [{"vendor": "8086", "class": "0200"}, {"vendor": "10de", "class": "0300"}]}
    )
    assert verdict(impl, term, nf2) == M


def test_two_terms_may_be_satisfied_by_different_instances(impl: Implementation) -> None:
    nf = node(
        instances={"pci.device": [{"vendor": "10de", "class": "0200"}, {"vendor": "8086", "class": "0300"}]}
    )
    rule = R(T("pci.device", {"vendor": X("In", "10de")}), T("pci.device", {"class": X("In", "0300")}))
    assert verdict(impl, rule, nf) == M


def test_does_not_exist_on_instances_means_some_instance_lacks_it(impl: Implementation) -> None:
    nf = node(instances={"pci.device": [{"sriov_totalvfs": "8"}, {"vendor": "x"}]})
    assert verdict(impl, T("pci.device", {"sriov_totalvfs": X("DoesNotExist")}), nf) == M


def test_multi_type_flag_does_not_exist_satisfied_by_an_instance(impl: Implementation) -> None:
    nf = node(flags={"f.x": ["a"]}, instances={"f.x": [{"b": "1"}]})
    assert verdict(impl, T("f.x", {"a": X("DoesNotExist")}), nf) == M


def test_error_on_any_instance_surfaces(impl: Implementation) -> None:
    nf = node(instances={"f.x": [{"k": "1"}, {"k": "abc"}]})
    assert verdict(impl, T("f.x", {"k": X("Gt", "0")}), nf) == E


def test_star_key_has_no_special_meaning(impl: Implementation) -> None:
    assert verdict(impl, T("f.x", {"*": X("Exists")}), node(flags={"f.x": ["a"]})) == N


# -- §3.3 matchName -----------------------------------------------------------------------------
def test_match_name_over_all_names(impl: Implementation) -> None:
    nf = node(flags={"f.x": ["AVX512F"]}, attrs={"f.x": {"VER": "1"}}, instances={"f.x": [{"inst": "v"}]})
    assert verdict(impl, T("f.x", name=X("InRegexp", "^AVX512")), nf) == M
    assert verdict(impl, T("f.x", name=X("In", "VER")), nf) == M
    assert verdict(impl, T("f.x", name=X("In", "inst")), nf) == M
    assert verdict(impl, T("f.x", name=X("DoesNotExist")), nf) == N
    assert verdict(impl, T("f.x", name=X("Gt", "1")), nf) == E  # non-numeric name
    assert verdict(impl, T("f.x", name=X("Gt", "1")), node(flags={"f.x": []})) == N  # no names: no error
    assert verdict(impl, T("f.x", name=X("IsTrue")), node(flags={"f.x": ["true"]})) == M


def test_match_name_only_after_expressions_matched(impl: Implementation) -> None:
    nf = node(flags={"f.x": ["a"]})
    assert verdict(impl, T("f.x", {"a": X("DoesNotExist")}, name=X("Gt", "1")), nf) == N
    assert verdict(impl, T("f.x", {"a": X("Exists")}, name=X("Gt", "1")), nf) == E


# -- §4.1 rules ---------------------------------------------------------------------------------
def test_match_any_is_an_or_of_and_lists(impl: Implementation) -> None:
    nf = node(flags={"f.x": ["a"]})
    rule = R(any_of=[[T("f.x", {"b": X("Exists")})], [T("f.x", {"a": X("Exists")})]])
    assert verdict(impl, rule, nf) == M
    assert verdict(impl, R(any_of=[[T("f.x", {"b": X("Exists")})]]), nf) == N
    assert verdict(impl, R(any_of=[[]]), nf) == M  # an empty element matches
    assert verdict(impl, R(), nf) == M  # no matchers at all


def test_match_any_and_match_features_both_needed(impl: Implementation) -> None:
    nf = node(flags={"f.x": ["a"]})
    rule = R(T("f.x", {"b": X("Exists")}), any_of=[[T("f.x", {"a": X("Exists")})]])
    assert verdict(impl, rule, nf) == N


# -- §4.2 no fail-fast: errors in anything evaluated surface --------------------------------------
def test_error_after_missing_feature(impl: Implementation) -> None:
    nf = node(attrs={"f.x": {"k": "1"}})
    assert verdict(impl, R(T("f.missing"), T("f.x", {"k": BROKEN})), nf) == E


def test_error_in_later_match_any_element(impl: Implementation) -> None:
    nf = node(attrs={"f.x": {"k": "1"}})
    rule = R(any_of=[[T("f.x", {"k": X("Exists")})], [T("f.x", {"k": BROKEN})]])
    assert verdict(impl, rule, nf) == E


def test_error_in_match_features_after_failed_match_any(impl: Implementation) -> None:
    nf = node(attrs={"f.x": {"k": "1"}})
    rule = R(T("f.x", {"k": BROKEN}), any_of=[[T("f.missing")]])
    assert verdict(impl, rule, nf) == E


def test_failing_and_broken_expression_in_one_term_is_an_error(impl: Implementation) -> None:
    nf = node(attrs={"f.x": {"k": "1", "j": "x"}})
    assert verdict(impl, T("f.x", {"j": X("In", "y"), "k": BROKEN}), nf) == E


def test_stale_term_flag_gates_match_name(impl: Implementation) -> None:
    # A term without matchExpressions inherits the previous evaluated term's result: after a
    # failed term its (broken) matchName is never evaluated, so the rule is false, not an error.
    nf = node(flags={"f.x": ["a"], "f.y": ["name"]})
    broken_name = T("f.y", name=X("Gt", "1"))
    assert verdict(impl, R(T("f.x", {"a": X("DoesNotExist")}), broken_name), nf) == N
    assert verdict(impl, R(T("f.x", {"a": X("Exists")}), broken_name), nf) == E
    # A missing feature does not update the flag.
    assert verdict(impl, R(T("f.x", {"a": X("Exists")}), T("f.missing"), broken_name), nf) == E


# -- §4.3 vars and rule.matched -------------------------------------------------------------------
def test_vars_feed_rule_matched_for_later_rules(impl: Implementation) -> None:
    nf = node(flags={"f.x": ["a"]})
    spec = S(
        [R(T("f.x", {"a": X("Exists")}), vars={"gpu": "yes"}), R(T("rule.matched", {"gpu": X("In", "yes")}))]
    )
    assert verdict(impl, spec, nf) == M
    nf2 = node(flags={"f.x": ["b"]})
    assert verdict(impl, spec, nf2) == N


def test_rule_matched_exists_after_first_rule(impl: Implementation) -> None:
    spec = S([R(T("f.missing")), R(T("rule.matched", {}))])
    assert verdict(impl, spec, node()) == N  # first rule fails, so the set fails...
    spec2 = S([R(T("f.missing"))], [R(T("rule.matched", {}))])
    assert statuses(impl, spec2, node()) == [N, M]  # ...but rule.matched now exists
    assert statuses(impl, S([R(T("rule.matched"))]), node()) == [N]  # not before any rule


def test_vars_quirk_failed_match_any_still_feeds_vars(impl: Implementation) -> None:
    spec = S(
        [R(any_of=[[T("f.missing")]], vars={"v": "1"})],
        [R(T("rule.matched", {"v": X("In", "1")}))],
    )
    assert statuses(impl, spec, node()) == [N, M]


def test_vars_not_fed_when_match_features_fails(impl: Implementation) -> None:
    spec = S([R(T("f.missing"), vars={"v": "1"})], [R(T("rule.matched", {"v": X("Exists")}))])
    assert statuses(impl, spec, node()) == [N, N]


def test_vars_overwrite_node_own_rule_matched(impl: Implementation) -> None:
    nf = node(attrs={"rule.matched": {"v": "old", "w": "kept"}})
    spec = S([R(vars={"v": "new"}), R(T("rule.matched", {"v": X("In", "new"), "w": X("In", "kept")}))])
    assert verdict(impl, spec, nf) == M


def test_skipped_sets_feed_no_vars(impl: Implementation) -> None:
    spec = S(
        CompatibilitySet(rules=(R(vars={"v": "1"}),), tag="a"),
        CompatibilitySet(rules=(R(T("rule.matched", {"v": X("Exists")})),), tag="b"),
    )
    assert statuses(impl, spec, node()) == [M, M]
    assert statuses(impl, spec, node(), tags=["b"]) == [N]


def test_erroring_rule_makes_set_error_and_feeds_no_vars(impl: Implementation) -> None:
    nf = node(attrs={"f.x": {"k": "1"}})
    spec = S([R(T("f.x", {"k": BROKEN}), vars={"v": "1"})], [R(T("rule.matched", {"v": X("Exists")}))])
    assert statuses(impl, spec, nf) == [E, N]


# -- §6.2/§7.1 sets and tags --------------------------------------------------------------------
def test_set_matches_when_all_rules_match_and_empty_set_matches(impl: Implementation) -> None:
    nf = node(flags={"f.x": ["a"]})
    spec = S([R(T("f.x", {"a": X("Exists")})), R(T("f.x", {"b": X("Exists")}))], [], [R(T("f.x"))])
    assert statuses(impl, spec, nf) == [N, M, M]


def test_tags_select_sets_untagged_skipped(impl: Implementation) -> None:
    spec = S(
        CompatibilitySet(rules=(), tag="gpu"),
        CompatibilitySet(rules=(), tag=""),
        CompatibilitySet(rules=(), tag="cpu"),
    )
    table = FeatureTable.from_features([node()])
    assert evaluate(spec, table, tags=["gpu", "cpu"], implementation=impl).set_indexes == (0, 2)
    assert evaluate(spec, table, tags=None, implementation=impl).set_indexes == (0, 1, 2)
    assert evaluate(spec, table, tags=[], implementation=impl).set_indexes == (0, 1, 2)


def test_error_message_names_rule_and_value(impl: Implementation) -> None:
    nf = node(attrs={"kernel.version": {"full": "5.14.0-427.13.1.el9_4.x86_64"}})
    spec = S([R(T("kernel.version", {"full": X("Gt", "5.10", type="version")}), name="kernel")])
    result = evaluate(spec, FeatureTable.from_features([nf]), implementation=impl)
    assert result.status.tolist() == [[int(E)]]
    assert result.errors[(0, 0)] == "rule 'kernel': not a version '5.14.0-427.13.1.el9_4.x86_64'"


def test_unknown_node_is_evaluated_against_empty_features(impl: Implementation) -> None:
    spec = S([R(T("f.x"))], [R(T("f.x", {"k": X("DoesNotExist")}))], [])
    result = evaluate(spec, FeatureTable.from_features([]), ["ghost"], implementation=impl)
    assert result.known.tolist() == [False]
    assert result.status.tolist() == [[int(N), int(N), int(M)]]


# -- several nodes at once: each node's answer is its own ----------------------------------------
def test_match_any_on_several_nodes_each_by_its_own_element(impl: Implementation) -> None:
    """Node a is matched by the first element only, b by the second only, c by neither."""
    nodes = [
        node("a", flags={"f.x": ["one"]}),
        node("b", flags={"f.x": ["two"]}),
        node("c", flags={"f.x": []}),
    ]
    rule = R(any_of=[[T("f.x", {"one": X("Exists")})], [T("f.x", {"two": X("Exists")})]])
    result = evaluate(S([rule]), FeatureTable.from_features(nodes), ["a", "b", "c"], implementation=impl)
    assert result.status[:, 0].tolist() == [int(M), int(M), int(N)]


def test_an_error_of_any_expression_on_an_instance_surfaces(impl: Implementation) -> None:
    """The first of two expressions errors on node a's instance, the second on node b's: both nodes
    are errors; node c's instance errs on neither."""
    nodes = [
        node("a", instances={"f.x": [{"n": "x", "v": "1"}]}),
        node("b", instances={"f.x": [{"n": "5", "v": "y"}]}),
        node("c", instances={"f.x": [{"n": "5", "v": "1"}]}),
    ]
    term = T("f.x", {"n": X("Gt", "1"), "v": X("Lt", "9")})
    result = evaluate(S([R(term)]), FeatureTable.from_features(nodes), ["a", "b", "c"], implementation=impl)
    assert result.status[:, 0].tolist() == [int(E), int(E), int(M)]


def test_an_error_of_any_expression_on_flags_and_attributes_surfaces(impl: Implementation) -> None:
    nodes = [
        node("a", attrs={"f.x": {"n": "x", "v": "1"}}),
        node("b", attrs={"f.x": {"n": "5", "v": "y"}}),
        node("c", attrs={"f.x": {"n": "5", "v": "1"}}),
        node("d", flags={"f.x": ["n", "v"]}),
    ]
    term = T("f.x", {"n": X("Gt", "1"), "v": X("Lt", "9")})
    result = evaluate(
        S([R(term)]), FeatureTable.from_features(nodes), ["a", "b", "c", "d"], implementation=impl
    )
    assert result.status[:, 0].tolist() == [int(E), int(E), int(M), int(N)]


def test_errors_of_every_term_and_rule_surface_on_their_own_nodes(impl: Implementation) -> None:
    """Node a errs in the first term of the first rule, b in the second term, c in the second rule."""
    nodes = [
        node("a", attrs={"f.x": {"k": "x"}, "f.y": {"k": "5"}, "f.z": {"k": "5"}}),
        node("b", attrs={"f.x": {"k": "5"}, "f.y": {"k": "x"}, "f.z": {"k": "5"}}),
        node("c", attrs={"f.x": {"k": "5"}, "f.y": {"k": "5"}, "f.z": {"k": "x"}}),
        node("d", attrs={"f.x": {"k": "5"}, "f.y": {"k": "5"}, "f.z": {"k": "5"}}),
    ]
    gt = {"k": X("Gt", "1")}
    spec = S([R(T("f.x", gt), T("f.y", gt), name="r1"), R(T("f.z", gt), name="r2")])
    result = evaluate(spec, FeatureTable.from_features(nodes), ["a", "b", "c", "d"], implementation=impl)
    assert result.status[:, 0].tolist() == [int(E), int(E), int(E), int(M)]
    assert [result.errors.get((i, 0), "") for i in range(4)] == [
        "rule 'r1': not a number 'x'",
        "rule 'r1': not a number 'x'",
        "rule 'r2': not a number 'x'",
        "",
    ]


def test_match_name_errors_surface_per_term(impl: Implementation) -> None:
    """Two terms, each with a matchName that errs on a different node."""
    nodes = [
        node("a", flags={"f.x": ["x"], "f.y": ["5"]}),
        node("b", flags={"f.x": ["5"], "f.y": ["x"]}),
        node("c", flags={"f.x": ["5"], "f.y": ["5"]}),
    ]
    spec = S([R(T("f.x", name=X("Gt", "1")), T("f.y", name=X("Gt", "1")))])
    result = evaluate(spec, FeatureTable.from_features(nodes), ["a", "b", "c"], implementation=impl)
    assert result.status[:, 0].tolist() == [int(E), int(E), int(M)]


def test_an_error_in_an_earlier_match_any_element_surfaces(impl: Implementation) -> None:
    nf = node(attrs={"f.x": {"k": "x"}}, flags={"f.y": ["a"]})
    rule = R(any_of=[[T("f.x", {"k": BROKEN})], [T("f.y", {"a": X("Exists")})]])
    assert verdict(impl, rule, nf) == E


def test_an_error_in_match_any_surfaces_when_match_features_is_fine(impl: Implementation) -> None:
    nf = node(attrs={"f.x": {"k": "x"}}, flags={"f.y": ["a"]})
    rule = R(T("f.y", {"a": X("Exists")}), any_of=[[T("f.x", {"k": BROKEN})]])
    assert verdict(impl, rule, nf) == E


def test_a_feature_with_zero_instances_evaluates_no_expression(impl: Implementation) -> None:
    """No flag set, no attribute set, no instance: nothing is evaluated, so even an expression that
    errs wherever it is evaluated does not; the term is false."""
    nf = node(instances={"f.x": []})
    assert verdict(impl, T("f.x", {"k": X("DoesNotExist", "x")}), nf) == N
    assert verdict(impl, T("f.x", {"k": BROKEN}), nf) == N
    assert verdict(impl, T("f.x", {"k": X("Bogus")}), nf) == N
    assert verdict(impl, T("f.x", {}), nf) == N
    assert verdict(impl, T("f.x"), nf) == M


def test_vars_of_several_rules_land_on_their_own_nodes(impl: Implementation) -> None:
    """Rule r1 feeds k=a on node a only, r2 feeds k=b on node b only; node c gets no var and keeps its
    own rule.matched attribute; r3 and r4 read the back-reference on every node."""
    nodes = [
        node("a", flags={"f.x": ["one"]}),
        node("b", flags={"f.x": ["two"]}),
        node("c", flags={"f.x": []}, attrs={"rule.matched": {"k": "own"}}),
        node("d", flags={"f.x": []}),
    ]
    r1 = R(T("f.x", {"one": X("Exists")}), vars={"k": "a", "v": "a"}, name="r1")
    r2 = R(T("f.x", {"two": X("Exists")}), vars={"k": "b", "v": "b"}, name="r2")
    spec = S(
        [r1, r2],
        [R(T("rule.matched", {"k": X("In", "a", "own")}), name="r3")],
        [R(T("rule.matched", {"k": X("Exists")}), name="r4")],
        [R(T("rule.matched", {"v": X("Exists")}), name="r5")],  # no node has its own "v"
    )
    result = evaluate(spec, FeatureTable.from_features(nodes), ["a", "b", "c", "d"], implementation=impl)
    assert result.status.tolist() == [
        [int(N), int(M), int(M), int(M)],
        [int(N), int(N), int(M), int(M)],
        [int(N), int(M), int(M), int(N)],
        [int(N), int(N), int(N), int(N)],
    ]


def test_the_status_matrix_is_one_byte_per_node_and_set(impl: Implementation) -> None:
    """It is cached per spec and table generation: int8, not a wider type."""
    result = evaluate(
        S([R(T("f.x"))], []), FeatureTable.from_features([node(flags={"f.x": []})]), implementation=impl
    )
    assert result.status.dtype == np.int8 and result.status.tolist() == [[int(M), int(M)]]


def test_expressions_after_a_failed_does_not_exist_are_still_evaluated(impl: Implementation) -> None:
    """A failing DoesNotExist does not end the term's evaluation: a later broken expression errs, on
    flags and on attributes alike."""
    term = T("f.x", {"a": X("DoesNotExist"), "b": X("Bogus")})
    assert verdict(impl, term, node(flags={"f.x": ["a"]})) == E
    assert verdict(impl, term, node(attrs={"f.x": {"a": "1"}})) == E
    assert (
        verdict(
            impl, T("f.x", {"a": X("DoesNotExist"), "b": BROKEN}), node(attrs={"f.x": {"a": "1", "b": "2"}})
        )
        == E
    )


def test_match_any_sees_vars_of_earlier_rules(impl: Implementation) -> None:
    nf = node(flags={"f.x": ["one"]})
    r1 = R(T("f.x", {"one": X("Exists")}), vars={"k": "v"}, name="r1")
    r2 = R(any_of=[[T("rule.matched", {"k": X("In", "v")})]], name="r2")
    assert statuses(impl, S([r1, r2]), nf) == [M]
