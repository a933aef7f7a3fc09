"""Every op and every error case of NFD's rule language, from docs/nfd-semantics.md §2.

Each case runs against both implementations (reference and vectorized).
"""

from __future__ import annotations

import pytest

from extender.match.evaluate import Implementation
from extender.match.result import Status
from tests.helpers import IMPLEMENTATIONS, T, X, node, plain_id, verdict

M, N, E = Status.MATCHED, Status.NOT_MATCHED, Status.ERROR


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Implementation:
    return request.param  # type: ignore[no-any-return]


def attr(value: str | None) -> object:
    """One node with attribute f.x/k = value (or without key k when value is None)."""
    return node(attrs={"f.x": {} if value is None else {"k": value}})


# (expression, value of attribute k or None for "key absent", expected)
ATTRIBUTE_CASES = [
    # §2.1 unknown op: always an error, even for a missing key
    (X("in", "a"), "a", E),
    (X("Bogus"), None, E),
    # §2.2 "", Exists, DoesNotExist
    (X(""), None, M),
    (X(""), "a", M),
    (X("", "a"), None, E),
    (X("Exists"), "", M),
    (X("Exists"), None, N),
    (X("Exists", "a"), None, E),
    (X("DoesNotExist"), None, M),
    (X("DoesNotExist"), "a", N),
    (X("DoesNotExist", "a"), "a", E),
    # §2.3 missing key: false for every value op, NotIn and IsFalse included, nothing checked
    (X("NotIn", "a"), None, N),
    (X("IsFalse"), None, N),
    (X("In"), None, N),
    (X("Gt", "x", "y", type="bogus"), None, N),
    (X("InRegexp", "("), None, N),
    # In / NotIn: exact, case-sensitive; zero values is an error only when a value is compared
    (X("In", "a", "b"), "b", M),
    (X("In", "A"), "a", N),
    (X("In"), "a", E),
    (X("In", ""), "", M),
    (X("NotIn", "a"), "b", M),
    (X("NotIn", "a"), "a", N),
    (X("NotIn"), "a", E),
    # InRegexp: unanchored search, RE2 dialect, all patterns compiled first
    (X("InRegexp", "b"), "abc", M),
    (X("InRegexp", "^b"), "abc", N),
    (X("InRegexp", "x", "^a"), "abc", M),
    (X("InRegexp", "^a", "("), "abc", E),
    (X("InRegexp", "(?=a)"), "abc", E),
    (X("InRegexp", "(a)\\1"), "aa", E),
    (X("InRegexp", "c$"), "abc\n", N),
    (X("InRegexp", "(?m)c$"), "abc\n", M),
    (X("InRegexp", "\\d"), "\u0661", N),
    (X("InRegexp", "(?i)ABC"), "xabcx", M),
    (X("InRegexp", "(a+)+$"), "a" * 5000 + "b", N),
    (X("InRegexp"), "a", E),
    # Integers: Go strconv.Atoi
    (X("Gt", "6"), "007", M),
    (X("Gt", "+6"), "7", M),
    (X("Lt", "0"), "-1", M),
    (X("Ge", "7"), "7", M),
    (X("Le", "7"), "8", N),
    (X("Gt", "1"), " 2", E),
    (X("Gt", "1"), "1_000", E),
    (X("Gt", "1"), "0x10", E),
    (X("Gt", "1"), "1.5", E),
    (X("Gt", "1"), "", E),
    (X("Gt", "1"), "\u0661", E),
    (X("Gt", "1"), "9223372036854775808", E),
    (X("Gt", "1"), "9223372036854775807", M),
    (X("Lt", "1"), "-9223372036854775808", M),
    (X("Gt", "x"), "5", E),
    (X("Gt"), "5", E),
    (X("Gt", "1", "2"), "5", E),
    (X("Gt", "1", type="bogus"), "5", E),
    (X("Gt", "1", type="Version"), "5", E),
    (X("GtLt", "1", "10"), "5", M),
    (X("GtLt", "1", "10"), "10", N),
    (X("GeLe", "1", "10"), "10", M),
    (X("GtLt", "10", "1"), "5", E),
    (X("GeLe", "5", "5"), "5", E),  # equal bounds: an error for integers
    (X("GtLt", "1"), "5", E),
    (X("GtLt", "1", "2", "3"), "5", E),
    (X("GtLt", "10", "1"), "x", E),  # the input is parsed first
    # Versions: Masterminds coerce mode, pre-release dropped, build metadata ignored
    (X("Gt", "5.15.0", type="version"), "5.15.0-91-generic", N),
    (X("Ge", "5.15.0", type="version"), "5.15.0-91-generic", M),
    (X("Gt", "5.4", type="version"), "5.15", M),
    (X("Lt", "v6", type="version"), "5.15.0", M),
    (X("Ge", "1.0.0", type="version"), "1+build.5", M),
    (X("Gt", "1", type="version"), "1.2.3.4", E),
    (X("Gt", "1", type="version"), "5.14.0-427.13.1.el9_4.x86_64", E),
    (X("Gt", "1", type="version"), "", E),
    (X("Gt", "1", type="version"), "-1", E),
    (X("Gt", "1", type="version"), "1.0.0-01", E),
    (X("Gt", "1", type="version"), "1.0.0-", E),
    (X("Gt", "1.x", type="version"), "2", E),
    (X("Ge", "007.0", type="version"), "7", M),
    (X("GtLt", "5.10", "6.0", type="version"), "5.15.0", M),
    (X("GtLt", "6.0", "5.10", type="version"), "5.15.0", N),  # inverted version range: just false
    (X("GeLe", "5.15", "5.15", type="version"), "5.15.0", M),
    (X("GeLe", "5.15", type="version"), "5.15.0", E),
    # IsTrue / IsFalse: exact spelling, no values
    (X("IsTrue"), "true", M),
    (X("IsTrue"), "True", N),
    (X("IsTrue"), "1", N),
    (X("IsFalse"), "false", M),
    (X("IsTrue", "true"), "true", E),
    (X("IsFalse", "x"), None, N),
    # type is only read by the ordering ops
    (X("In", "a", type="bogus"), "a", M),
]


@pytest.mark.parametrize(("expr", "value", "expected"), ATTRIBUTE_CASES, ids=plain_id)
def test_expression_on_attribute(
    impl: Implementation, expr: object, value: str | None, expected: Status
) -> None:
    from extender.spec.model import MatchExpression

    assert isinstance(expr, MatchExpression)
    nf = node(attrs={"f.x": {} if value is None else {"k": value}})
    assert verdict(impl, T("f.x", {"k": expr}), nf) == expected


# On a flag there is no value: value ops are false and nothing else is checked.
FLAG_CASES = [
    (X("Exists"), True, M),
    (X("Exists"), False, N),
    (X("DoesNotExist"), False, M),
    (X("DoesNotExist"), True, N),
    (X(""), False, M),
    (X("In", "k"), True, N),
    (X("In"), True, N),
    (X("Gt", "bogus", type="bogus"), True, N),
    (X("IsTrue"), True, N),
    (X("NotIn", "x"), True, N),
    (X("Bogus"), True, E),
    (X("Exists", "x"), False, E),
]


@pytest.mark.parametrize(("expr", "has_flag", "expected"), FLAG_CASES, ids=plain_id)
def test_expression_on_flag(impl: Implementation, expr: object, has_flag: bool, expected: Status) -> None:
    from extender.spec.model import MatchExpression

    assert isinstance(expr, MatchExpression)
    nf = node(flags={"f.x": ["k"] if has_flag else ["other"]})
    assert verdict(impl, T("f.x", {"k": expr}), nf) == expected
