"""The YAML layer: go-yaml v2 (YAML 1.1) resolution, sigs.k8s.io/yaml key conversion, and the limits.

Expected values come from reading go-yaml v2 ``resolve.go``/``decode.go`` and sigs.k8s.io/yaml v1.6.0
``yaml.go`` (see the module docstring of ``extender.spec.yamlgo``), not from PyYAML.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.errors import SpecError, SpecLimitError
from extender.spec import yamlgo
from extender.spec.parse import parse_spec
from extender.spec.yamlgo import (
    Kind,
    Mapping,
    Scalar,
    Sequence,
    SpecLimits,
    decode_yaml,
    format_float32,
    resolve_plain,
)
from tests.fuzz import examples


def scalar(text: str) -> Scalar:
    node = decode_yaml(b"v: " + text.encode())
    assert isinstance(node, Mapping)
    value = node.items[0][1]
    assert isinstance(value, Scalar)
    return value


def keys(text: str) -> list[str]:
    node = decode_yaml(text.encode())
    assert isinstance(node, Mapping)
    return [k for k, _ in node.items]


RESOLVE_CASES: list[tuple[str, Kind, object]] = [
    ("0200", Kind.INT, 128),  # YAML 1.1 octal
    ("0300", Kind.INT, 192),
    ("0x10", Kind.INT, 16),
    ("0X1f", Kind.INT, 31),
    ("0o17", Kind.INT, 15),  # strconv base 0 knows 0o and 0b
    ("0b101", Kind.INT, 5),
    ("0b+101", Kind.INT, 5),  # resolve.go's base-2 fallback parses the sign after 0b
    ("-0b101", Kind.INT, -5),
    ("+0x10", Kind.INT, 16),
    ("-0x10", Kind.INT, -16),
    ("1_000", Kind.INT, 1000),
    ("-0", Kind.INT, 0),
    ("00", Kind.INT, 0),
    ("9223372036854775807", Kind.INT, 9223372036854775807),
    ("9223372036854775808", Kind.INT, 9223372036854775808),  # uint64 in Go
    ("08", Kind.FLOAT, 8.0),  # not octal, not int: yamlStyleFloat
    ("6.10", Kind.FLOAT, 6.1),
    ("1e3", Kind.FLOAT, 1000.0),
    ("1_000.5", Kind.FLOAT, 1000.5),
    (".5", Kind.FLOAT, 0.5),
    ("-.5", Kind.FLOAT, -0.5),
    (".5_0", Kind.FLOAT, 0.5),
    ("18446744073709551616", Kind.FLOAT, 18446744073709551616.0),
    ("+18446744073709551615", Kind.FLOAT, 18446744073709551615.0),  # ParseUint takes no sign
    (".inf", Kind.FLOAT, math.inf),
    ("-.Inf", Kind.FLOAT, -math.inf),
    ("+.INF", Kind.FLOAT, math.inf),
    ("y", Kind.BOOL, True),
    ("Y", Kind.BOOL, True),
    ("yes", Kind.BOOL, True),
    ("YES", Kind.BOOL, True),
    ("on", Kind.BOOL, True),
    ("True", Kind.BOOL, True),
    ("n", Kind.BOOL, False),
    ("No", Kind.BOOL, False),
    ("off", Kind.BOOL, False),
    ("FALSE", Kind.BOOL, False),
    ("~", Kind.NULL, None),
    ("null", Kind.NULL, None),
    ("NULL", Kind.NULL, None),
    ("yEs", Kind.STR, "yEs"),
    ("nULL", Kind.STR, "nULL"),
    ("0eee", Kind.STR, "0eee"),
    ("10de", Kind.STR, "10de"),
    ("2024-01-02", Kind.STR, "2024-01-02"),  # a timestamp reaches JSON as written
    ("1:30", Kind.STR, "1:30"),  # no base-60 in go-yaml v2
    ("1e400", Kind.STR, "1e400"),  # ParseFloat range error
    ("0x", Kind.STR, "0x"),
    ("._5", Kind.STR, "._5"),
    ("1__0.5e", Kind.STR, "1__0.5e"),
    (".nan.", Kind.STR, ".nan."),
    ("<<x", Kind.STR, "<<x"),
]


@pytest.mark.parametrize(("text", "kind", "value"), RESOLVE_CASES)
def test_plain_scalars_resolve_like_go_yaml_v2(text: str, kind: Kind, value: object) -> None:
    assert resolve_plain(text) == (kind, value)
    node = scalar(text)
    assert (node.kind, node.value, node.text) == (kind, value, text)


def test_nan_resolves_to_float() -> None:
    kind, value = resolve_plain(".NaN")
    assert kind is Kind.FLOAT and isinstance(value, float) and math.isnan(value)


def test_empty_value_is_null_and_quoted_scalars_are_strings() -> None:
    assert scalar("").kind is Kind.NULL
    for text in ('"0200"', "'yes'", '"~"', "''", '"null"'):
        node = scalar(text)
        assert node.kind is Kind.STR and node.value == node.text == text[1:-1]
    literal = decode_yaml(b"v: |\n  123\n")
    assert isinstance(literal, Mapping) and literal.items[0][1] == Scalar(Kind.STR, "123\n", "123\n", 1, 4)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (6.1, "6.1"),
        (1.0, "1"),
        (1000.0, "1000"),
        (8.0, "8"),
        (123456.0, "123456"),
        (1e6, "1e+06"),  # 'g' switches to %e from exponent 6 in shortest mode
        (1234567.0, "1.234567e+06"),
        (3.14159265358979, "3.1415927"),  # float32 rounding (bitSize 32)
        (0.1, "0.1"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (1e21, "1e+21"),
        (1e100, "+Inf"),  # overflows float32
        (-0.0, "-0"),
        (0.0, "0"),
        (-2.5, "-2.5"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (18446744073709551616.0, "1.8446744e+19"),
    ],
)
def test_format_float32_matches_go_formatfloat_g_32(value: float, text: str) -> None:
    assert format_float32(value) == text


def test_keys_become_strings_like_sigs_k8s_yaml() -> None:
    assert keys("1: a\n0x10: b\ny: c\nno: d\n1.50: e\n.inf: f\n-.inf: g\n.nan: h\n2024-01-02: i\n'~': j") == [
        "1",
        "16",
        "true",
        "false",
        "1.5",
        ".inf",
        "-.inf",
        ".nan",
        "2024-01-02",
        "~",
    ]


def test_key_examples_from_sigs_k8s_yaml_tests() -> None:
    assert keys("1000000000000000000000000000000000000: a\n444.444: b\n9007199254740993: c\n3.3: d") == [
        "1e+36",
        "444.444",
        "9007199254740993",
        "3.3",
    ]


@pytest.mark.parametrize(
    "text",
    ["~: a", "? \n: a", "null: a", "9223372036854775808: a", "[a]: b", "{a: b}: c", "? [a]\n: b"],
)
def test_null_uint64_and_collection_keys_are_errors(text: str) -> None:
    with pytest.raises(SpecError, match="map key"):
        decode_yaml(text.encode())


def test_duplicate_keys_last_value_wins_at_first_position() -> None:
    node = decode_yaml(b"a: 1\nb: 2\na: 3\n1: x\n'1': z")
    assert isinstance(node, Mapping)
    assert [(k, v.value) for k, v in node.items if isinstance(v, Scalar)] == [("a", 3), ("b", 2), ("1", "z")]


def test_aliases_share_values_and_merge_keys_follow_go_yaml() -> None:
    node = decode_yaml(
        b"base: &b {op: In, value: [x]}\n"
        b"one: *b\n"
        b"two: {type: version, <<: *b, value: [z]}\n"
        b"three: {<<: [{op: Gt}, {op: Lt, type: t}]}\n"
    )
    assert isinstance(node, Mapping)
    items = dict(node.items)
    assert items["one"] is items["base"]
    two, three = items["two"], items["three"]
    assert isinstance(two, Mapping) and isinstance(three, Mapping)
    assert [(k, v.value if isinstance(v, Scalar) else "list") for k, v in two.items] == [
        ("type", "version"),
        ("op", "In"),
        ("value", "list"),
    ]
    assert [(k, v.value if isinstance(v, Scalar) else None) for k, v in three.items] == [
        ("op", "Gt"),
        ("type", "t"),
    ]
    value = dict(two.items)["value"]
    assert isinstance(value, Sequence) and [v.value for v in value.items if isinstance(v, Scalar)] == ["z"]


def test_an_anchor_is_bound_where_its_node_starts() -> None:
    # go-yaml binds anchors at node start: the inner redefinition is the one that stays.
    node = decode_yaml(b"a: &x [&x inner, *x]\nb: *x\n")
    assert isinstance(node, Mapping)
    b = dict(node.items)["b"]
    assert isinstance(b, Scalar) and b.value == "inner"
    with pytest.raises(SpecError, match="anchor 'c' value contains itself"):
        decode_yaml(b"a: &c [1]\nb: &c [*c]")


@pytest.mark.parametrize("text", ["a: {<<: x}", "a: {<<: [x]}", "a: {<<: [[{b: c}]]}", "a: {<<: ~}"])
def test_merge_of_a_non_mapping_is_an_error(text: str) -> None:
    with pytest.raises(SpecError, match="map merge requires"):
        decode_yaml(text.encode())


def test_quoted_merge_key_is_an_ordinary_key() -> None:
    assert keys("'<<': {a: b}") == ["<<"]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("!!str 0200", Kind.STR, "0200"),
        ('!!int "0x10"', Kind.INT, 16),
        ("!!float 1", Kind.FLOAT, 1.0),
        ("!!bool yes", Kind.BOOL, True),
        ("!!null ~", Kind.NULL, None),
        ("! 12", Kind.STR, "12"),
        ("!<tag:yaml.org,2002:str> yes", Kind.STR, "yes"),
    ],
)
def test_core_tags(text: str, kind: Kind, value: object) -> None:
    node = scalar(text)
    assert (node.kind, node.value) == (kind, value)


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['echo pwned']",
        "!!python/name:os.system ''",
        "!!binary aGVsbG8=",
        "!!timestamp 2024-01-02",
        "!custom x",
        "!!set {a, b}",
        "!!map [a]",
        "!!int 1.5",
        "!!int abc",
        "!!bool 1",
        "!!null x",
        "!!float 18446744073709551615",
    ],
)
def test_other_tags_and_failed_tag_resolution_are_errors(text: str) -> None:
    with pytest.raises(SpecError) as info:
        decode_yaml(b"v: " + text.encode())
    assert type(info.value) is SpecError and "line 1, column 4" in str(info.value)


def test_only_the_first_document_is_read() -> None:
    node = decode_yaml(b"a: 1\n---\n[this is never parsed\n")
    assert isinstance(node, Mapping) and keys("a: 1\n--- {b: 2}") == ["a"]
    assert decode_yaml(b"") is None
    assert decode_yaml(b"# only a comment\n") is None
    empty = decode_yaml(b"---\n...\n")
    assert isinstance(empty, Scalar) and empty.kind is Kind.NULL


def test_utf8_bom_is_accepted() -> None:
    assert keys("\ufeffa: 1") == ["a"]


def test_pure_python_parser_fallback_builds_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"a: &a {b: [0200, yes, 1e3, '~', !!int '7']}\nc: *a\nd: {<<: *a, e: 'x y'}\nf: |\n  z\n"
    expected = decode_yaml(data)
    monkeypatch.setattr(yamlgo, "_Loader", yaml.SafeLoader)
    assert decode_yaml(data) == expected
    with pytest.raises(SpecError, match="line 1"):
        decode_yaml(b"a: [1")


def test_json_is_yaml() -> None:
    node = decode_yaml(b'{"version": "v1alpha1", "n": 10, "f": 1.5, "b": true, "z": null, "l": [1, "x"]}')
    assert isinstance(node, Mapping)
    values = {k: v for k, v in node.items}
    assert isinstance(values["n"], Scalar) and values["n"].value == 10
    assert isinstance(values["z"], Scalar) and values["z"].kind is Kind.NULL


# ---------------------------------------------------------------------------------------------------
# Malformed input and limits: SpecError (or SpecLimitError), nothing else, quickly.


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"a: [1, 2", "did not find expected ',' or ']'"),
        (b"a: b\n  c: d\n", "line 2"),
        (b"a:\n  - b\n c: d\n", "line 3"),
        (b"{a: 1", "while parsing a flow mapping"),
        (b"a: 'unterminated", "line 1"),
        (b"a: *nowhere", "unknown anchor 'nowhere'"),
        (b"a: &x [1, *x]", "anchor 'x' value contains itself"),
        (b"\tname: x", "line 1"),
        (b"a: \x00", "control characters"),
        (b"version: \xff\xfe", "not valid UTF-8"),
        (b"\xc3\x28", "not valid UTF-8"),
        (b"\xed\xa0\x80", "not valid UTF-8"),  # an encoded surrogate
        (b"\xff\xfeu\x00", "not valid UTF-8"),  # UTF-16: go-yaml would accept it, this project rejects it
    ],
)
def test_malformed_input_is_a_spec_error(data: bytes, match: str) -> None:
    with pytest.raises(SpecError, match=match) as info:
        decode_yaml(data)
    assert type(info.value) is SpecError


LimitError = Callable[..., None]


@pytest.fixture
def limit_error(monkeypatch: pytest.MonkeyPatch) -> LimitError:
    """Assert that decoding fails on a limit *and stops early*: the parser events consumed are
    counted, so a limit that tripped only after reading (or expanding) everything would fail here.
    Deterministic: no clock involved."""
    consumed = [0]

    base: Any = yamlgo._Loader  # type: ignore[attr-defined]  # the class decode_yaml instantiates

    class CountingLoader(base):  # type: ignore[misc]
        def get_event(self) -> Any:
            consumed[0] += 1
            return super().get_event()

    monkeypatch.setattr(yamlgo, "_Loader", CountingLoader)

    def check(
        data: bytes, match: str, limits: SpecLimits | None = None, max_events: int | None = None
    ) -> None:
        consumed[0] = 0
        with pytest.raises(SpecLimitError, match=match):
            decode_yaml(data, limits)
        bound = max_events if max_events is not None else (limits or SpecLimits()).max_nodes + 16
        assert consumed[0] <= bound, f"read {consumed[0]} events before the limit tripped (bound {bound})"

    return check


def test_ten_megabytes_fail_before_parsing(limit_error: LimitError) -> None:
    limit_error(b"a: [" + b"x, " * ((10 << 20) // 3) + b"]", "over the limit of 1048576 bytes", max_events=0)


def test_billion_laughs_fails_on_alias_expansion(limit_error: LimitError) -> None:
    lines = [b"a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]".encode())
    limit_error(b"\n".join(lines), "alias")  # go-yaml's ratio guard or the expansion limit
    three = b"\n".join(lines[:3])  # 1,220 expanded nodes, 97% of the decode calls: go-yaml accepts it
    assert decode_yaml(three) is not None
    limit_error(three, "aliases expand to more than 500", SpecLimits(max_alias_expansion=500))


def test_go_yaml_excessive_aliasing_guard_is_reproduced(limit_error: LimitError) -> None:
    # 10 levels of doubling: ~4,000 expanded nodes (under max_alias_expansion) but more than 99% of
    # go-yaml's decode calls come from aliases, which its decoder refuses.
    lines = [b"l0: &l0 [x]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]".encode() for i in range(1, 11)]
    limit_error(b"\n".join(lines), "document contains excessive aliasing")
    assert decode_yaml(b"\n".join(lines[:8])) is not None


def test_alias_expansion_counts_towards_the_node_limit(limit_error: LimitError) -> None:
    data = b"a: &a [" + b"x, " * 50 + b"]\nb: [*a, *a, *a]"
    assert decode_yaml(data) is not None
    limit_error(data, "more than 100 YAML nodes", SpecLimits(max_nodes=100))
    limit_error(data, "aliases expand to more than 100", SpecLimits(max_alias_expansion=100))


def test_aliases_count_the_depth_they_expand_to(limit_error: LimitError) -> None:
    deep = b"a: &a " + b"[" * 10 + b"]" * 10 + b"\nb: [[[[*a]]]]"
    assert decode_yaml(deep, SpecLimits(max_depth=16)) is not None
    limit_error(deep, "nesting deeper than 14", SpecLimits(max_depth=14))


@pytest.mark.parametrize(
    "data",
    [
        # under libyaml's own flow limit (1,000 levels since PyYAML 6.0.4), so ours must trigger
        b"[" * 900 + b"]" * 900,
        b"{a: " * 900 + b"1" + b"}" * 900,
        b"- " * 10_000 + b"x",
        b"".join(b" " * i + b"k:\n" for i in range(1_000)),
    ],
    ids=["flow-seq", "flow-map", "block-seq", "block-map"],
)
def test_deep_nesting_fails_on_depth(limit_error: LimitError, data: bytes) -> None:
    limit_error(data, "nesting deeper than 64 levels", max_events=2 * 64 + 16)  # key + start per level


@pytest.mark.parametrize("data", [b"[" * 10_000 + b"]" * 10_000, b"{a: " * 10_000 + b"1" + b"}" * 10_000])
def test_very_deep_flow_nesting_is_a_clear_error(data: bytes) -> None:
    # whichever limit sees it first (ours at 64 levels, or libyaml's at 1,000), it is a SpecError
    with pytest.raises(SpecError, match="nesting"):
        parse_spec(data)


def test_wide_documents_fail_on_the_node_limit(limit_error: LimitError) -> None:
    limit_error(b"[" + b"a," * 200_000 + b"]", "more than 100000 YAML nodes")


def test_huge_scalars_and_keys_fail_on_the_scalar_limit(limit_error: LimitError) -> None:
    limit_error(b"a: " + b"x" * 70_000, "longer than 65536 characters", max_events=8)
    limit_error(b"x" * 70_000 + b": a", "longer than 65536 characters", max_events=8)
    limit_error(b'a: "' + b"x" * 70_000 + b'"', "longer than 65536 characters", max_events=8)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        SpecLimits(max_depth=0)


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_spec_error(data: bytes) -> None:
    with contextlib.suppress(SpecError):
        decode_yaml(data)


YAMLISH = st.text(alphabet=st.sampled_from(list("abyn01x.-+_~:,[]{}&*!<|>'\"#?% \t\n\\")), max_size=120)


@settings(max_examples=examples(500), deadline=None)
@given(YAMLISH)
def test_yaml_like_text_raises_only_spec_error(text: str) -> None:
    with contextlib.suppress(SpecError):
        decode_yaml(text.encode())
