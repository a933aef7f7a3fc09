"""Every op against an oracle that shares no code with the matcher (``tests/oracle.py``).

Two layers, both aimed at both implementations:

* A table written by hand from docs/nfd-semantics.md §2 (not from running the code): every op, with
  integers and ``type: version``, below / equal / above each bound, unparsable inputs and bounds,
  empty and wrong-length value lists, unknown types, missing keys, flags and missing features. Each
  row runs on attributes, on instances and (for absent keys) on flags, through a whole spec, and
  the oracle must give the same answer, so the table checks the oracle too.
* Properties: the oracle against the reference's ``eval_expression`` on random expressions and
  elements drawn around the bounds, and against whole evaluations of a many-node table by both
  implementations (values, absent keys, flags and missing features mixed in one table), and for
  ``matchName``.

The vectorized matcher evaluates each distinct value with the reference's scalar function, so the
equivalence property alone cannot see a wrong operator: these tests can.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.errors import EvaluationError
from extender.features.nodefeature import NodeFeatures
from extender.match.evaluate import Implementation, evaluate
from extender.match.reference import eval_expression
from extender.match.result import Status
from extender.match.table import FeatureTable
from tests import oracle
from tests.fuzz import examples
from tests.helpers import IMPLEMENTATIONS, R, S, T, X, node, plain_id, verdict
from tests.oracle import ERROR, FALSE, TRUE, Element, Flag, Missing, Value

STATUS = {TRUE: Status.MATCHED, FALSE: Status.NOT_MATCHED, ERROR: Status.ERROR}
F, T_, E = FALSE, TRUE, ERROR


@dataclass(frozen=True)
class Case:
    op: str
    values: tuple[str, ...]
    type: str
    element: Element | None  # None: the node has no feature of that name at all
    expected: str

    def __str__(self) -> str:
        where = "no feature" if self.element is None else repr(self.element)
        return f"{self.op or '<any>'}{list(self.values)}{'/' + self.type if self.type else ''} on {where}"


def _c(op: str, values: tuple[str, ...], type_: str, element: Element | None, expected: str) -> Case:
    return Case(op, values, type_, element, expected)


# ---- ordering ops, hand-labelled positions -------------------------------------------------------

# The answer per position, straight from the table in §2: Gt is "input > bound", and so on.
SINGLE = {
    "Gt": {"below": F, "equal": F, "above": T_},
    "Ge": {"below": F, "equal": T_, "above": T_},
    "Lt": {"below": T_, "equal": F, "above": F},
    "Le": {"below": T_, "equal": T_, "above": F},
}
RANGE = {
    "GtLt": {"below": F, "low": F, "inside": T_, "high": F, "above": F},
    "GeLe": {"below": F, "low": T_, "inside": T_, "high": T_, "above": F},
}

# Integers against the bound 10 (leading zeros and a '+' are fine for strconv.Atoi).
INT_SINGLE_INPUTS = {
    "9": "below",
    "-11": "below",
    "-10": "below",
    "10": "equal",
    "010": "equal",
    "+10": "equal",
    "11": "above",
    "9223372036854775807": "above",
}
# Integers against 10 and 20.
INT_RANGE_INPUTS = {"9": "below", "10": "low", "+0010": "low", "15": "inside", "20": "high", "21": "above"}
# Versions against 5.15.0: missing parts are 0, the pre-release is dropped, build metadata ignored,
# parts compare as numbers (5.9 < 5.15), leading zeros allowed.
VERSION_SINGLE_INPUTS = {
    "5.14.99": "below",
    "5.9.0": "below",
    "v5.14": "below",
    "5.15": "equal",
    "v5.15.0": "equal",
    "5.15.0-91-generic": "equal",
    "5.15.0+build.7": "equal",
    "5.15.0-0": "equal",  # a numeric identifier "0" is fine
    "5.15.0-0a": "equal",  # and so is a leading zero in an identifier that is not all digits
    "5.15.0-rc.0.x-y": "equal",
    "5.15.0-1.01a+007": "equal",  # build identifiers may have leading zeros
    "05.015.00": "equal",
    "5.15.1": "above",
    "6": "above",
}
# Versions against 5.10 and 6.0.
VERSION_RANGE_INPUTS = {
    "5.9.9": "below",
    "5.10.0": "low",
    "v5.10-rc1": "low",
    "5.15.2": "inside",
    "6.0.0-rc1": "high",
    "6": "high",
    "6.0.1": "above",
}
INT_UNPARSABLE = ["ten", "1.5", " 10", "10 ", "1_0", "0x10", "", "\u0661", "9223372036854775808", "+", "--1"]
VERSION_UNPARSABLE = [
    "",
    "5.14.0-427.el9_4",
    "1.2.3.4",
    "-1",
    "1.0.0-01",
    "1.0.0-rc.01",  # a numeric identifier with a leading zero, after the first
    "1.0.0-rc..1",  # an empty identifier
    "1.0.0-",
    "1.0.0+",
    "x",
    "v",
    "5..1",
    " 5.15",
    "V5.15",
]
BROKEN_BOUND = {"": "ten", "version": "5.x"}
BOUND = {"": ("10",), "version": ("5.15.0",)}
BOUNDS = {"": ("10", "20"), "version": ("5.10", "6.0")}
SAMPLE_INPUT = {"": "15", "version": "5.15.2"}


def _ordering_cases() -> list[Case]:
    cases: list[Case] = []
    for type_, single_inputs, range_inputs, unparsable in (
        ("", INT_SINGLE_INPUTS, INT_RANGE_INPUTS, INT_UNPARSABLE),
        ("version", VERSION_SINGLE_INPUTS, VERSION_RANGE_INPUTS, VERSION_UNPARSABLE),
    ):
        for op, answers in SINGLE.items():
            cases += [_c(op, BOUND[type_], type_, Value(x), answers[pos]) for x, pos in single_inputs.items()]
            cases += [_c(op, BOUND[type_], type_, Value(x), E) for x in unparsable]
            cases += [
                _c(op, (BROKEN_BOUND[type_],), type_, Value(SAMPLE_INPUT[type_]), E),
                _c(op, (), type_, Value(SAMPLE_INPUT[type_]), E),  # no value
                _c(op, BOUNDS[type_], type_, Value(SAMPLE_INPUT[type_]), E),  # two values
            ]
        for op, answers in RANGE.items():
            cases += [_c(op, BOUNDS[type_], type_, Value(x), answers[pos]) for x, pos in range_inputs.items()]
            cases += [_c(op, BOUNDS[type_], type_, Value(x), E) for x in unparsable]
            lo, hi = BOUNDS[type_]
            cases += [
                _c(op, (BROKEN_BOUND[type_], hi), type_, Value(SAMPLE_INPUT[type_]), E),
                _c(op, (lo, BROKEN_BOUND[type_]), type_, Value(SAMPLE_INPUT[type_]), E),
                _c(op, (), type_, Value(SAMPLE_INPUT[type_]), E),
                _c(op, (lo,), type_, Value(SAMPLE_INPUT[type_]), E),  # one value
                _c(op, (lo, hi, hi), type_, Value(SAMPLE_INPUT[type_]), E),  # three values
            ]
        for op in (*SINGLE, *RANGE):
            values = BOUND[type_] if op in SINGLE else BOUNDS[type_]
            # An absent key or a flag: false, and nothing about the expression is checked.
            for element in (Missing(), Flag()):
                cases += [
                    _c(op, values, type_, element, F),
                    _c(op, (), type_, element, F),
                    _c(op, ("ten", "x", "y"), type_, element, F),
                    _c(op, values, "bogus", element, F),
                ]
            cases.append(_c(op, values, type_, None, F))
            cases.append(_c(op, (), "bogus", None, F))
    for op in (*SINGLE, *RANGE):
        values = BOUND[""] if op in SINGLE else BOUNDS[""]
        # type is case-sensitive and only "" and "version" exist
        cases += [_c(op, values, t, Value("15"), E) for t in ("Version", "int", "integer", " version")]
    # Integer ranges need lower < upper (equal bounds included); version ranges are simply false.
    for op in RANGE:
        cases += [
            _c(op, ("20", "10"), "", Value("15"), E),
            _c(op, ("10", "10"), "", Value("10"), E),
            _c(op, ("20", "10"), "", Value("x"), E),  # the input is parsed before the bounds are checked
        ]
        cases += [_c(op, ("6.0", "5.10"), "version", Value(x), F) for x in VERSION_RANGE_INPUTS]
    cases += [
        _c("GeLe", ("5.15", "5.15.0"), "version", Value("5.15.0-rc1"), T_),
        _c("GtLt", ("5.15", "5.15.0"), "version", Value("5.15.0"), F),
        _c("GeLe", ("5.15", "5.15.0"), "version", Value("5.15.1"), F),
        # int64 limits
        _c("Lt", ("-9223372036854775807",), "", Value("-9223372036854775808"), T_),
        _c("Gt", ("9223372036854775806",), "", Value("9223372036854775807"), T_),
        _c("Ge", ("-9223372036854775809",), "", Value("1"), E),
        # unsigned 64-bit version parts
        _c("Gt", ("18446744073709551614",), "version", Value("18446744073709551615"), T_),
        _c("Gt", ("1",), "version", Value("18446744073709551616"), E),
    ]
    return cases


# ---- the other ops ------------------------------------------------------------------------------


def _other_cases() -> list[Case]:
    v = Value
    cases = [
        # unknown ops: an error wherever an element is looked at, absent keys and flags included
        *[
            _c(op, (), "", el, E)
            for op in ("in", "Bogus", "EXISTS", " In")
            for el in (Missing(), Flag(), v("a"))
        ],
        _c("in", ("a",), "", v("a"), E),
        _c("Bogus", (), "", None, F),  # no feature: nothing is evaluated
        # "", Exists, DoesNotExist: presence only; any value is an error, even where absent
        _c("", (), "", v("a"), T_),
        _c("", (), "", Missing(), T_),
        _c("", (), "", Flag(), T_),
        _c("", ("a",), "", Missing(), E),
        _c("", ("a",), "", Flag(), E),
        _c("", ("a",), "", v("a"), E),
        _c("", (), "", None, F),
        _c("Exists", (), "", v(""), T_),
        _c("Exists", (), "", Flag(), T_),
        _c("Exists", (), "", Missing(), F),
        _c("Exists", ("a",), "", Missing(), E),
        _c("Exists", ("a",), "", v("a"), E),
        _c("Exists", (), "", None, F),
        _c("DoesNotExist", (), "", Missing(), T_),
        _c("DoesNotExist", (), "", v(""), F),
        _c("DoesNotExist", (), "", Flag(), F),
        _c("DoesNotExist", ("a",), "", Missing(), E),
        _c("DoesNotExist", ("a",), "", Flag(), E),
        _c("DoesNotExist", ("a",), "", v("a"), E),
        _c("DoesNotExist", (), "", None, F),
        # In / NotIn: exact and case-sensitive; no values is an error only where a value is compared
        _c("In", ("a", "b"), "", v("b"), T_),
        _c("In", ("a", "b"), "", v("c"), F),
        _c("In", ("A",), "", v("a"), F),
        _c("In", ("a",), "", v("a "), F),
        _c("In", ("",), "", v(""), T_),
        _c("In", (), "", v("a"), E),
        _c("In", (), "", Missing(), F),
        _c("In", ("a",), "", Missing(), F),
        _c("In", ("k",), "", Flag(), F),
        _c("In", ("a",), "", None, F),
        _c("In", ("a",), "bogus", v("a"), T_),  # type is ignored by In
        _c("NotIn", ("a", "b"), "", v("c"), T_),
        _c("NotIn", ("a", "b"), "", v("a"), F),
        _c("NotIn", ("A",), "", v("a"), T_),
        _c("NotIn", (), "", v("a"), E),
        _c("NotIn", ("a",), "", Missing(), F),  # absent is false, not "not in"
        _c("NotIn", ("a",), "", Flag(), F),
        _c("NotIn", ("a",), "", None, F),
        # InRegexp: unanchored search, RE2 (Go) dialect, every pattern compiled first
        _c("InRegexp", ("b",), "", v("abc"), T_),
        _c("InRegexp", ("^b",), "", v("abc"), F),
        _c("InRegexp", ("x", "^a"), "", v("abc"), T_),
        _c("InRegexp", ("^a", "("), "", v("abc"), E),
        _c("InRegexp", ("(", "^a"), "", v("abc"), E),
        _c("InRegexp", ("(?=a)",), "", v("abc"), E),  # no look-around
        _c("InRegexp", ("(a)\\1",), "", v("aa"), E),  # no back-references
        _c("InRegexp", ("c$",), "", v("abc\n"), F),  # $ is the end of the text
        _c("InRegexp", ("\\d",), "", v("\u0661"), F),  # \d is ASCII
        _c("InRegexp", ("(?i)ABC",), "", v("xabcx"), T_),
        _c("InRegexp", ("^$",), "", v(""), T_),
        _c("InRegexp", (), "", v("a"), E),
        _c("InRegexp", ("(",), "", Missing(), F),
        _c("InRegexp", ("(",), "", Flag(), F),
        _c("InRegexp", ("a",), "", None, F),
        # IsTrue / IsFalse: exactly "true" / "false"; no values allowed
        _c("IsTrue", (), "", v("true"), T_),
        _c("IsTrue", (), "", v("True"), F),
        _c("IsTrue", (), "", v("1"), F),
        _c("IsTrue", (), "", v("false"), F),
        _c("IsTrue", ("true",), "", v("true"), E),
        _c("IsTrue", (), "", Missing(), F),
        _c("IsTrue", ("x",), "", Flag(), F),
        _c("IsTrue", (), "", None, F),
        _c("IsFalse", (), "", v("false"), T_),
        _c("IsFalse", (), "", v("true"), F),
        _c("IsFalse", (), "", v("FALSE"), F),
        _c("IsFalse", (), "", v(""), F),
        _c("IsFalse", ("false",), "", v("false"), E),
        _c("IsFalse", (), "", Missing(), F),  # absent is not false
        _c("IsFalse", (), "", Flag(), F),
        _c("IsFalse", (), "", None, F),
    ]
    return cases


CASES = _ordering_cases() + _other_cases()


def _nodes_for(case: Case) -> list[tuple[str, NodeFeatures]]:
    """Every way to put the case's element on a node under feature ``f.x``, key ``k``."""
    el = case.element
    if el is None:
        return [("no feature", node(attrs={"g.y": {"k": "1"}}, flags={"g.z": ["k"]}))]
    if isinstance(el, Flag):
        return [("flag", node(flags={"f.x": ["k"]}))]
    if isinstance(el, Missing):
        return [
            ("attribute key absent", node(attrs={"f.x": {"other": "1"}})),
            ("instance key absent", node(instances={"f.x": [{"other": "1"}]})),
            ("flag absent", node(flags={"f.x": ["other"]})),
        ]
    return [
        ("attribute", node(attrs={"f.x": {"k": el.text}})),
        ("instance", node(instances={"f.x": [{"k": el.text}]})),
    ]


@pytest.mark.parametrize("case", [c for c in CASES if c.element is not None], ids=lambda c: plain_id(str(c)))
def test_the_table_holds_for_the_oracle(case: Case) -> None:
    """The oracle answers for one element; rows about a missing feature are the matchers' alone."""
    assert case.element is not None
    assert oracle.evaluate(case.op, case.values, case.type, case.element) == case.expected


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: plain_id(str(c)))
def test_the_table_holds_for_the_matcher(impl: Implementation, case: Case) -> None:
    term = T("f.x", {"k": X(case.op, *case.values, type=case.type)})
    for where, nf in _nodes_for(case):
        assert verdict(impl, term, nf) == STATUS[case.expected], where


def test_the_table_covers_every_op_and_outcome() -> None:
    """Every known op appears with each outcome it can have, on values and on absent keys."""
    seen = {(c.op, c.expected, type(c.element).__name__) for c in CASES}
    for op in oracle.KNOWN_OPS:
        assert (op, T_, "Value") in seen or (op, T_, "Missing") in seen, op
        assert (op, F, "Value") in seen or (op, F, "Missing") in seen or op == "", op
        assert (op, E, "Value") in seen, op
        assert (op, F, "NoneType") in seen, op
    for op in (*SINGLE, *RANGE):
        for type_ in ("", "version"):
            outcomes = {c.expected for c in CASES if c.op == op and c.type == type_}
            assert outcomes == {T_, F, E}, (op, type_)


# ---- properties ----------------------------------------------------------------------------------


def _int_text(n: int, style: str) -> str:
    body = str(abs(n))
    body = "0" + body if style == "zero" else body
    sign = "-" if n < 0 else ("+" if style == "plus" else "")
    return sign + body


ints = st.one_of(
    st.integers(-12, 12),
    st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64]),
)
int_texts = st.builds(_int_text, ints, st.sampled_from(["plain", "plain", "zero", "plus"]))


@st.composite
def version_texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4))
    core = ".".join(str(p) for p in parts)
    prefix = draw(st.sampled_from(["", "", "v", "V"]))
    suffix = draw(
        st.sampled_from(
            [
                "",
                "",
                "",
                "-rc1",
                "-91-generic",
                "+b.1",
                "-01",
                "-0",
                "_4",
                "-",
                "-a..b",
                "-rc.01",
                "-rc.0",
                "+b.01",
            ]
        )
    )
    return prefix + core + suffix


JUNK = ["", " 1", "1.5", "0x10", "ten", "true", "false", "abc", "\u0661", "1_0", "-", "a b"]
PATTERNS = ["^1", "a|b", "(", "\\d+", "^$", "e$", "(?i)ABC", "(?=x)", "1$", "^v", "\\.", "[0-3]{2}"]
texts = st.one_of(int_texts, version_texts(), st.sampled_from(JUNK))
OPS = [*oracle.KNOWN_OPS, "in", "Bogus"]
TYPES = ["", "", "version", "version", "Version", "int"]


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, tuple[str, ...], str]:
    op = draw(st.sampled_from(OPS))
    value = st.one_of(texts, st.sampled_from(PATTERNS)) if op == "InRegexp" else texts
    count = draw(st.sampled_from([0, 1, 1, 2, 2, 3]))
    return op, tuple(draw(st.lists(value, min_size=count, max_size=count))), draw(st.sampled_from(TYPES))


elements = st.one_of(st.builds(Value, texts), st.just(Missing()), st.just(Flag()))


@settings(max_examples=examples(2000), deadline=None)
@given(expr=expressions(), element=elements)
def test_the_reference_agrees_with_the_oracle(
    expr: tuple[str, tuple[str, ...], str], element: Element
) -> None:
    op, values, type_ = expr
    present = not isinstance(element, Missing)
    value = element.text if isinstance(element, Value) else None
    try:
        got = TRUE if eval_expression(X(op, *values, type=type_), present, value) else FALSE
    except EvaluationError:
        got = ERROR
    assert got == oracle.evaluate(op, values, type_, element)


PLACES = ["attribute", "instance", "flag"]


def _place(name: str, where: str, element: Element | None) -> NodeFeatures:
    """A node holding ``element`` under feature f.x key k, as an attribute, an instance or a flag
    (``None``: no f.x at all)."""
    if element is None:
        return node(name, attrs={"g.y": {"k": "1"}})
    if where == "flag":
        return node(name, flags={"f.x": [] if isinstance(element, Missing) else ["k"]})
    kv = {"k": element.text} if isinstance(element, Value) else {"other": "1"}
    return node(name, attrs={"f.x": kv}) if where == "attribute" else node(name, instances={"f.x": [kv]})


@st.composite
def placed(draw: st.DrawFn) -> tuple[str, Element | None]:
    """Where on its node an element sits, and the element that place can hold."""
    where = draw(st.sampled_from(PLACES))
    if where == "flag":
        return where, draw(st.sampled_from([Missing(), Flag(), None]))
    return where, draw(st.one_of(st.builds(Value, texts), st.just(Missing()), st.none()))


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions(), cells=st.lists(placed(), min_size=1, max_size=12))
def test_both_matchers_agree_with_the_oracle_on_a_table(
    expr: tuple[str, tuple[str, ...], str], cells: list[tuple[str, Element | None]]
) -> None:
    """One expression over a table whose nodes mix values, absent keys, flags and missing features,
    so the vectorized matcher's per-value memo, masks and instance reduction are all exercised."""
    op, values, type_ = expr
    nodes = [_place(f"n{i}", where, el) for i, (where, el) in enumerate(cells)]
    want = [
        Status.NOT_MATCHED if el is None else STATUS[oracle.evaluate(op, values, type_, el)]
        for _, el in cells
    ]
    spec = S([R(T("f.x", {"k": X(op, *values, type=type_)}))])
    table = FeatureTable.from_features(nodes)
    names = [n.node for n in nodes]
    for impl in IMPLEMENTATIONS:
        got = [Status(int(s)) for s in evaluate(spec, table, names, implementation=impl).status[:, 0]]
        assert got == want, impl


NAMES = ["a", "10", "007", "true", "false", "5.15.0", "-3", "x1", "", "AVX2"]


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expr=expressions(),
    per_node=st.lists(
        st.tuples(st.sampled_from(PLACES), st.lists(st.sampled_from(NAMES), max_size=3, unique=True)),
        min_size=1,
        max_size=8,
    ),
)
def test_match_name_agrees_with_the_oracle(
    expr: tuple[str, tuple[str, ...], str], per_node: list[tuple[str, list[str]]]
) -> None:
    """``matchName`` sees every name of the feature, each as a present value: the oracle's verdict over
    the names must be both matchers' (a feature with no names is false and never an error)."""
    op, values, type_ = expr
    nodes = []
    for i, (where, names) in enumerate(per_node):
        if where == "flag":
            nodes.append(node(f"n{i}", flags={"f.x": names}))
        elif where == "attribute":
            nodes.append(node(f"n{i}", attrs={"f.x": dict.fromkeys(names, "v")}))
        else:
            nodes.append(node(f"n{i}", instances={"f.x": [dict.fromkeys(names, "v")]}))
    want = [STATUS[oracle.evaluate_names(op, values, type_, names)] for _, names in per_node]
    spec = S([R(T("f.x", name=X(op, *values, type=type_)))])
    table = FeatureTable.from_features(nodes)
    for impl in IMPLEMENTATIONS:
        got = [
            Status(int(s))
            for s in evaluate(spec, table, [n.node for n in nodes], implementation=impl).status[:, 0]
        ]
        assert got == want, impl


# ---- the regular-expression dialect ---------------------------------------------------------------

# Go's regexp as RE2 compiles it: case-sensitive, '.' stops at a newline unless (?s), a newline in the
# pattern or a class matches one; and the one deliberate difference from Go, a memory budget per
# compiled pattern (8 MiB, RE2's default): a pattern that needs more is an invalid regexp here.
REGEXP_CASES = [
    ("A", "a", F),
    ("(?i)A", "a", T_),
    ("a.b", "a\nb", F),
    ("(?s)a.b", "a\nb", T_),
    ("a\nb", "xa\nbx", T_),
    ("a[^x]b", "a\nb", T_),
    ("a\\sb", "a\nb", T_),
    ("(?m)^b$", "a\nb\nc", T_),
    ("^b$", "a\nb\nc", F),
    ("\\pL{400}", "é" * 400, T_),
    ("\\pL{500}", "é" * 500, E),  # over the budget: refused, though Go would compile it
]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(("pattern", "text", "expected"), REGEXP_CASES, ids=plain_id)
def test_regexp_dialect(impl: Implementation, pattern: str, text: str, expected: str) -> None:
    term = T("f.x", {"k": X("InRegexp", pattern)})
    assert verdict(impl, term, node(attrs={"f.x": {"k": text}})) == STATUS[expected]


# ---- matchName over several nodes and names -------------------------------------------------------

NAME_NODES = {
    "flags-x1": {"flags": {"f.x": ["x1"]}},
    "flags-x2-y": {"flags": {"f.x": ["x2", "y"]}},
    "flags-y": {"flags": {"f.x": ["y"]}},
    "attrs-x1": {"attrs": {"f.x": {"x1": "v"}}},
    "attrs-x2-y": {"attrs": {"f.x": {"y": "v", "x2": "v"}}},
    "attrs-y": {"attrs": {"f.x": {"y": "v"}}},
    "inst-x1": {"instances": {"f.x": [{"y": "v"}, {"x1": "v"}]}},
    "inst-x2": {"instances": {"f.x": [{"x2": "v"}]}},
    "inst-y": {"instances": {"f.x": [{"y": "v"}, {}]}},
    "empty": {"flags": {"f.x": []}},
    "numbers-5": {"flags": {"f.x": ["5"]}, "attrs": {"f.x": {"7": "v"}}},
    "numbers-0": {"instances": {"f.x": [{"0": "v"}, {"1": "v"}]}},
}


def _name_table() -> tuple[FeatureTable, list[str]]:
    nodes = [node(name, **parts) for name, parts in NAME_NODES.items()]  # type: ignore[arg-type]
    return FeatureTable.from_features(nodes), list(NAME_NODES)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_match_name_sees_every_name_of_every_node(impl: Implementation) -> None:
    """Names from flags, attributes and instances, several per node and per table: each node's answer
    is its own, whichever names other nodes have (written out by hand)."""
    table, names = _name_table()
    cases = {
        X("In", "x1", "x2"): {"flags-x1", "flags-x2-y", "attrs-x1", "attrs-x2-y", "inst-x1", "inst-x2"},
        X("InRegexp", "^x"): {"flags-x1", "flags-x2-y", "attrs-x1", "attrs-x2-y", "inst-x1", "inst-x2"},
        X("Exists"): set(names) - {"empty"},
        X("NotIn", "y"): {"flags-x1", "flags-x2-y", "attrs-x1", "attrs-x2-y", "inst-x1", "inst-x2"}
        | {"numbers-5", "numbers-0"},
    }
    for expr, matching in cases.items():
        spec = S([R(T("f.x", name=expr))])
        got = evaluate(spec, table, names, implementation=impl).status[:, 0].tolist()
        want = [int(Status.MATCHED if n in matching else Status.NOT_MATCHED) for n in names]
        assert got == want, expr


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_match_name_errors_on_any_name_of_a_node(impl: Implementation) -> None:
    """``Gt`` parses every name as an integer: a node with any non-numeric name is an error, a node of
    numbers only is compared, a node without names is false."""
    table, names = _name_table()
    spec = S([R(T("f.x", name=X("Gt", "4")))])
    got = dict(
        zip(names, evaluate(spec, table, names, implementation=impl).status[:, 0].tolist(), strict=True)
    )
    numeric = {"numbers-5": Status.MATCHED, "numbers-0": Status.NOT_MATCHED, "empty": Status.NOT_MATCHED}
    assert got == {n: int(numeric.get(n, Status.ERROR)) for n in names}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_broken_pattern_writes_nothing_to_the_process_output(
    impl: Implementation, capfd: pytest.CaptureFixture[str]
) -> None:
    """A spec full of broken patterns is an error in the result, never a line on stderr per pattern
    (RE2 logs compile errors unless told not to; a hostile spec must not flood the extender's logs)."""
    patterns = ["(", "[", "a{2,1}", "(?P<x", "\\"]
    term = T("f.x", {"k": X("InRegexp", *patterns)})
    assert verdict(impl, term, node(attrs={"f.x": {"k": "a"}})) == Status.ERROR
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
