"""The message of every evaluation error, as `explain`, `/debug/explain` and the scheduler's events show
it, through both implementations (the vectorized one asks the reference for the message of an ERROR
cell). NFD's own wording where it has one (``%v`` of a Go string slice is ``[a b]``).

Also the vectorized matcher's bookkeeping that a wrong answer would hide behind: per-column results
extended when the vocabulary grows after they were first computed, and the lazy error map.
"""

from __future__ import annotations

import pytest

from extender.match.evaluate import Implementation, evaluate
from extender.match.result import Status
from extender.match.table import FeatureTable
from extender.spec.model import MatchExpression
from tests.helpers import IMPLEMENTATIONS, R, S, T, X, node, plain_id

CASES: list[tuple[MatchExpression, str, str]] = [
    (X("Bogus"), "a", "invalid Op 'Bogus'"),
    (
        X("Exists", "a", "b"),
        "a",
        "invalid expression, 'value' field must be empty for Op 'Exists' (have [a b])",
    ),
    (X("", "x"), "a", "invalid expression, 'value' field must be empty for Op '' (have [x])"),
    (X("IsTrue", "t"), "true", "invalid expression, 'value' field must be empty for Op 'IsTrue' (have [t])"),
    (X("In"), "a", "invalid expression, 'value' field must be non-empty for Op 'In'"),
    (X("NotIn"), "a", "invalid expression, 'value' field must be non-empty for Op 'NotIn'"),
    (
        X("InRegexp", "a", "("),
        "a",
        "invalid expression, 'value' field must only contain valid regexps for Op 'InRegexp'",
    ),
    (X("Gt"), "1", "invalid expression, 'value' field must contain exactly 1 element(s) for Op 'Gt'"),
    (
        X("GeLe", "1"),
        "1",
        "invalid expression, 'value' field must contain exactly 2 element(s) for Op 'GeLe'",
    ),
    (X("Gt", "1"), "x", "not a number 'x'"),
    (X("Gt", "ten"), "1", 'not a number \'ten\' in {op: "Gt", value: ["ten"]}'),
    (X("GtLt", "3", "1"), "2", "invalid expression, value[0] must be less than Value[1] for Op 'GtLt'"),
    (X("Lt", "1", type="version"), "1.2.3.4", "not a version '1.2.3.4'"),
    (
        X("Lt", "5.x", type="version"),
        "1",
        'not a version \'5.x\' in {op: "Lt", value: ["5.x"], type: "version"}',
    ),
    (
        X("Ge", "1", type="int"),
        "1",
        "invalid expression, 'type' field only accepts \"version\" value for Op 'Ge'",
    ),
]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(("expr", "value", "message"), CASES, ids=plain_id)
def test_error_messages(impl: Implementation, expr: MatchExpression, value: str, message: str) -> None:
    spec = S([R(T("f.x", {"k": expr}), name="r")])
    result = evaluate(
        spec, FeatureTable.from_features([node(attrs={"f.x": {"k": value}})]), implementation=impl
    )
    assert result.status.tolist() == [[int(Status.ERROR)]]
    assert dict(result.errors) == {(0, 0): f"rule 'r': {message}"}


def test_the_first_error_of_a_set_is_reported() -> None:
    spec = S([R(T("f.x", {"k": X("Bogus")}), name="r1"), R(T("f.x", {"k": X("In")}), name="r2")])
    for impl in IMPLEMENTATIONS:
        result = evaluate(
            spec, FeatureTable.from_features([node(attrs={"f.x": {"k": "a"}})]), implementation=impl
        )
        assert dict(result.errors) == {(0, 0): "rule 'r1': invalid Op 'Bogus'"}, impl


def test_lazy_errors_is_a_mapping_of_error_cells_only() -> None:
    spec = S([R(T("f.x", {"k": X("Gt", "1")}), name="r")], [R(T("f.x"))])
    table = FeatureTable.from_features(
        [node("bad", attrs={"f.x": {"k": "x"}}), node("ok", attrs={"f.x": {"k": "2"}})]
    )
    errors = evaluate(spec, table, ["bad", "ok"]).errors
    assert list(errors) == [(0, 0)] and len(errors) == 1
    assert errors[(0, 0)] == "rule 'r': not a number 'x'"
    with pytest.raises(KeyError) as missing:
        errors[(1, 0)]
    assert missing.value.args == ((1, 0),)
    assert (0, 1) not in errors and (0, 0) in errors


def test_results_follow_a_vocabulary_that_grew_after_they_were_computed() -> None:
    """The vectorized matcher remembers an expression's answer per distinct value of a column; values
    that arrive later (a node changes) must be evaluated too, not read from a stale array."""
    expr = X("In", "new")
    spec = S([R(T("f.x", {"k": expr}))])
    table = FeatureTable.from_features(
        [node("a", attrs={"f.x": {"k": "old"}}), node("b", attrs={"f.x": {"k": "b"}})]
    )
    assert evaluate(spec, table, ["a", "b"]).status[:, 0].tolist() == [int(Status.NOT_MATCHED)] * 2
    table.set_node(node("b", attrs={"f.x": {"k": "new"}}))
    assert evaluate(spec, table, ["a", "b"]).status[:, 0].tolist() == [
        int(Status.NOT_MATCHED),
        int(Status.MATCHED),
    ]
    table.set_node(node("c", attrs={"f.x": {"k": "newer"}}))
    table.set_node(node("a", attrs={"f.x": {"k": "new"}}))
    got = evaluate(spec, table, ["a", "b", "c"]).status[:, 0].tolist()
    assert got == [int(Status.MATCHED), int(Status.MATCHED), int(Status.NOT_MATCHED)]
