"""parse_spec: Go-faithful decoding into the model, exact error paths, and evaluation-time warnings.

Go behaviour referenced here: sigs.k8s.io/yaml v1.6.0 ``yaml.go`` (number/bool -> string coercion for
string fields, key conversion), encoding/json (case-insensitive fields, sorted keys from json.Marshal,
null handling, merging into existing maps/structs/slices), go-yaml v2 ``resolve.go`` (YAML 1.1).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.errors import SpecError, SpecLimitError
from extender.spec import yamlgo
from extender.spec.model import CompatibilitySet, FeatureTerm, MatchExpression, Rule, Spec
from extender.spec.parse import SpecLimits, parse_spec
from tests.fuzz import examples

SPECS = Path(__file__).parent / "data" / "specs"


def spec_of(text: str) -> Spec:
    return parse_spec(text.encode())


def one_rule(rule: str) -> str:
    """A spec with one set holding the rule given as YAML lines indented for a rules item."""
    return "version: v1alpha1\ncompatibilities:\n- rules:\n  - " + rule.strip().replace("\n", "\n    ")


def term_yaml(exprs: str, feature: str = "f.x") -> str:
    return one_rule(f"matchFeatures:\n- feature: {feature}\n  matchExpressions: {exprs}")


def first_term(spec: Spec) -> FeatureTerm:
    return spec.compatibilities[0].rules[0].match_features[0]


def expr(exprs: str) -> MatchExpression:
    term = first_term(spec_of(term_yaml(exprs)))
    assert term.match_expressions is not None
    return term.match_expressions[0][1]


def warnings_of(text: str) -> list[tuple[str, str]]:
    return [(w.path, w.message) for w in spec_of(text).warnings]


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec_of(text)
    return info.value


TERM0 = "compatibilities[0].rules[0].matchFeatures[0]"


# ---------------------------------------------------------------------------------------------------
# The seeds and the model shape.


def test_nfd_docs_example_parses() -> None:
    data = (SPECS / "nfd-docs-example.yaml").read_bytes()
    spec = parse_spec(data)
    assert spec.version == "v1alpha1" and spec.warnings == ()
    assert spec.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    (cset,) = spec.compatibilities
    assert cset.description == "My image requirements" and cset.weight == 0 and cset.tag == ""
    kernel_cpu, nics = cset.rules
    assert kernel_cpu == Rule(
        name="kernel and cpu",
        match_features=(
            FeatureTerm("kernel.loadedmodule", (("vfio-pci", MatchExpression("Exists")),)),
            FeatureTerm("cpu.model", (("vendor_id", MatchExpression("In", ("Intel", "AMD"))),)),
        ),
    )
    assert nics.name == "one of available nics" and nics.match_features == ()
    assert [t[0].match_expressions for t in nics.match_any] == [
        (("vendor", MatchExpression("In", ("0eee",))), ("class", MatchExpression("In", ("0200",)))),
        (("vendor", MatchExpression("In", ("0fff",))), ("class", MatchExpression("In", ("0200",)))),
    ]


def test_article_example_parses() -> None:
    spec = parse_spec((SPECS / "article-example.yaml").read_bytes())
    term = spec.compatibilities[0].rules[0].match_features[1]
    assert term.match_expressions == (
        ("vendor", MatchExpression("In", ("0x10de",))),
        ("class", MatchExpression("In", ("0x0300",))),
    )
    assert spec.warnings == ()


def test_json_input_parses_like_yaml() -> None:
    data = (SPECS / "nfd-docs-example.yaml").read_bytes()
    as_json = json.dumps(yaml.safe_load(data), indent=2).encode()
    assert parse_spec(as_json).compatibilities == parse_spec(data).compatibilities
    assert parse_spec(b'{"version": "v1alpha1", "compatibilities": []}').compatibilities == ()


def test_spec_is_frozen_and_identified_by_the_bytes() -> None:
    a = spec_of("version: v1alpha1\ncompatibilities: []\n")
    b = spec_of("version: v1alpha1\ncompatibilities: [ ]\n")
    assert a.compatibilities == b.compatibilities and a.digest != b.digest
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.version = "x"  # type: ignore[misc]
    assert hash(a) == hash(spec_of("version: v1alpha1\ncompatibilities: []\n"))


def test_absent_null_and_empty_matchers() -> None:
    text = one_rule(
        "matchFeatures:\n"
        "- feature: a.b\n"
        "- feature: a.b\n  matchExpressions: ~\n  matchName: null\n"
        "- feature: a.b\n  matchExpressions: {}\n"
        "- feature: a.b\n  matchExpressions: {k: {}, j: {value: []}}\n  matchName: {op: Exists}\n"
    )
    terms = spec_of(text).compatibilities[0].rules[0].match_features
    assert [t.match_expressions for t in terms[:3]] == [None, None, ()]
    assert terms[0].match_name is None and terms[1].match_name is None
    assert terms[3].match_expressions == (("k", MatchExpression("")), ("j", MatchExpression("")))
    assert terms[3].match_name == MatchExpression("Exists")


def test_null_list_elements_are_zero_values() -> None:
    text = "version: v1alpha1\ncompatibilities: [~, {rules: [~, {matchAny: [~], matchFeatures: [~]}]}]"
    spec = spec_of(text)
    assert spec.compatibilities[0] == CompatibilitySet()
    assert spec.compatibilities[1].rules == (Rule(), Rule(match_features=(FeatureTerm(""),), match_any=((),)))
    assert ("compatibilities[1].rules[1].matchFeatures[0]", "feature is empty: this term never matches") in [
        (w.path, w.message) for w in spec.warnings
    ]


def test_compatibilities_may_be_empty() -> None:
    spec = spec_of("version: v1alpha1\ncompatibilities: []")
    assert spec.compatibilities == () and spec.warnings == ()


# ---------------------------------------------------------------------------------------------------
# Go's scalar coercion into typed fields.

STRING_COERCIONS = [
    ("0200", "128"),
    ("0300", "192"),
    ("0x10", "16"),
    ("08", "8"),
    ("1_000", "1000"),
    ("6.10", "6.1"),
    ("1.0", "1"),
    ("1e3", "1000"),
    ("1e6", "1e+06"),
    ("3.14159265358979", "3.1415927"),
    ("-0.0", "-0"),
    ("yes", "true"),
    ("on", "true"),
    ("y", "true"),
    ("True", "true"),
    ("off", "false"),
    ("n", "false"),
    ("0eee", "0eee"),
    ("10de", "10de"),
    ("2024-01-02", "2024-01-02"),
    ("1:30", "1:30"),
    (".inf", "+Inf"),
    ("-.inf", "-Inf"),
    (".nan", "NaN"),
    ("9223372036854775808", "9223372036854775808"),
    ('"0200"', "0200"),
    ("'yes'", "yes"),
    ("!!str 0x10", "0x10"),
    ("~", ""),
]


@pytest.mark.parametrize(("written", "expected"), STRING_COERCIONS)
def test_value_items_are_coerced_like_go(written: str, expected: str) -> None:
    assert expr("{k: {op: In, value: [" + written + "]}}").value == (expected,)


@pytest.mark.parametrize(("written", "expected"), STRING_COERCIONS[:-1])
def test_every_string_field_is_coerced(written: str, expected: str) -> None:
    text = (
        f"version: v1alpha1\ncompatibilities:\n- description: {written}\n  tag: {written}\n  rules:\n"
        f"  - name: {written}\n    vars: {{k: {written}}}\n"
        f"    matchFeatures:\n    - feature: {written}\n      matchExpressions:\n"
        f"        k: {{op: Gt, value: ['1'], type: {written}}}\n"
    )
    cset = spec_of(text).compatibilities[0]
    rule = cset.rules[0]
    assert (cset.description, cset.tag, rule.name, rule.match_features[0].feature) == (expected,) * 4
    assert rule.match_features[0].match_expressions == (("k", MatchExpression("Gt", ("1",), expected)),)
    assert rule.vars == (("k", expected),)


def test_null_vars_values_become_empty_strings() -> None:
    assert spec_of(one_rule("vars: {a: ~, b: '', c: x}")).compatibilities[0].rules[0].vars == (
        ("a", ""),
        ("b", ""),
        ("c", "x"),
    )


def test_version_and_op_are_coerced_too() -> None:
    assert (
        error_of("version: 1.0\ncompatibilities: []").message
        == 'unsupported version "1" (expected "v1alpha1")'
    )
    assert error_of(term_yaml("{k: {op: yes}}")).message.startswith('unknown op "true"')


def test_map_keys_are_strings_like_sigs_k8s_yaml() -> None:
    term = first_term(spec_of(term_yaml("{1: {op: Exists}, 0x10: {}, yes: {}, 1.50: {}, '~': {}}")))
    assert term.match_expressions is not None
    assert [k for k, _ in term.match_expressions] == ["1", "16", "true", "1.5", "~"]
    assert error_of(term_yaml("{~: {op: Exists}}")).message.endswith("unsupported map key: null")


@pytest.mark.parametrize(
    ("written", "weight"),
    [
        ("10", 10),
        ("-5", -5),
        ("0x10", 16),
        ("0200", 128),
        ("10.0", 10),  # json.Marshal prints 10, which decodes into an int
        ("1e3", 1000),
        ("-0.0", 0),
        ("9223372036854775807", 9223372036854775807),
        ("4611686018427387904.0", 4611686018427388000),  # json.Marshal prints the shortest digits
        ("~", 0),
        ("", 0),
    ],
)
def test_weight_accepts_what_go_accepts(written: str, weight: int) -> None:
    assert spec_of(f"version: v1alpha1\ncompatibilities:\n- weight: {written}\n  rules: []").compatibilities[
        0
    ].weight == (weight)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ('"10"', "expected an integer, got a string ('10')"),
        ("'10'", "expected an integer, got a string ('10')"),
        ("abc", "expected an integer, got a string ('abc')"),
        ("yes", "expected an integer, got a boolean ('yes')"),
        ("1.5", "expected an integer, got the number 1.5"),
        ("1e21", "expected an integer, got the number 1e21"),  # json.Marshal: 1e+21
        ("1e20", "expected an integer, got the number 1e20"),  # prints as 100000000000000000000
        ("1e-7", "expected an integer, got the number 1e-7"),
        (".inf", "expected an integer, got the number .inf"),
        ("9223372036854775808", "integer 9223372036854775808 overflows a Go int (64 bits)"),
        # a float in go-yaml, printed by json.Marshal as -9223372036854776000: out of range
        ("-9223372036854775809", "expected an integer, got the number -9223372036854775809"),
        ("[1]", "expected an integer, got a list"),
        ("{a: 1}", "expected an integer, got a mapping"),
    ],
)
def test_weight_rejects_what_go_rejects(written: str, message: str) -> None:
    err = error_of(f"version: v1alpha1\ncompatibilities:\n- weight: {written}\n  rules: []")
    assert (err.path, err.message) == ("compatibilities[0].weight", message)


# ---------------------------------------------------------------------------------------------------
# encoding/json struct decoding: case-insensitive keys, unknown keys, duplicates.


def test_keys_match_fields_case_insensitively() -> None:
    text = (
        "VERSION: v1alpha1\nCompatibilities:\n- WEIGHT: 3\n  Tag: t\n  DESCRIPTION: d\n  ruleſ:\n"
        "  - Name: r\n    VARS: {a: b}\n    MatchFeatures:\n    - FEATURE: f.x\n      MATCHEXPRESSIONS:\n"
        "        k: {OP: Gt, Value: ['1'], TYPE: version}\n      MatchName: {Op: Exists}\n"
        "    matchany:\n    - MATCHFEATURES: [{Feature: f.y}]\n"
    )
    spec = spec_of(text)
    cset = spec.compatibilities[0]
    assert (cset.weight, cset.tag, cset.description) == (3, "t", "d")
    assert cset.rules == (
        Rule(
            name="r",
            vars=(("a", "b"),),
            match_features=(
                FeatureTerm(
                    "f.x", (("k", MatchExpression("Gt", ("1",), "version")),), MatchExpression("Exists")
                ),
            ),
            match_any=((FeatureTerm("f.y"),),),
        ),
    )
    assert spec.warnings == ()


def test_unknown_keys_are_ignored_with_a_warning() -> None:
    text = term_yaml("{vendor: {op: In, values: ['0x10de']}}")
    spec = spec_of(text)
    assert expr("{vendor: {op: In, values: ['0x10de']}}") == MatchExpression("In")
    path = f"{TERM0}.matchExpressions.vendor"
    assert [(w.path, w.message) for w in spec.warnings] == [
        (f"{path}.values", 'unknown field "values" is ignored (did you mean "value"?)'),
        (path, 'op "In" has no values: NFD reports an error on every node where it is compared'),
    ]


def test_old_shorthand_term_leaves_an_empty_feature() -> None:
    warnings = warnings_of(one_rule("matchFeatures:\n- pci.device: {vendor: ['8086']}"))
    assert warnings == [
        (f"{TERM0}.pci.device", 'unknown field "pci.device" is ignored'),
        (TERM0, "feature is empty: this term never matches"),
    ]


def test_nan_in_an_unknown_field_breaks_go_json_conversion() -> None:
    err = error_of("version: v1alpha1\ncompatibilities: []\nextra: {a: [.nan]}")
    assert (err.path, err.message) == (
        "extra",
        "NaN/Inf outside a string field: Go cannot convert the spec to JSON",
    )


def test_yaml_duplicate_keys_last_wins() -> None:
    assert expr("{k: {op: In, value: [a], op: NotIn}}") == MatchExpression("NotIn", ("a",))
    term = first_term(spec_of(term_yaml("{b: {op: Exists}, a: {op: In, value: [x]}, b: {}}")))
    assert term.match_expressions == (("b", MatchExpression("")), ("a", MatchExpression("In", ("x",))))


@pytest.mark.parametrize(
    ("exprs", "expected"),
    [
        # json.Marshal sorts keys ("OP" < "Op" < "op"): the byte-order-last variant is applied last.
        ("{k: {op: In, OP: NotIn, value: [a]}}", MatchExpression("In", ("a",))),
        ("{k: {OP: NotIn, op: In, value: [a]}}", MatchExpression("In", ("a",))),
        ("{k: {Op: NotIn, OP: In, value: [a]}}", MatchExpression("NotIn", ("a",))),
        # null leaves a string field alone but clears a list
        ("{k: {Op: In, op: ~, value: [a]}}", MatchExpression("In", ("a",))),
        ("{k: {op: In, Value: [a], value: ~}}", MatchExpression("In")),
        # a second list reuses the elements decoded by the first; a null element keeps the old one
        ("{k: {op: In, Value: [a, b], value: [~]}}", MatchExpression("In", ("a",))),
        ("{k: {op: In, Value: [a, b], value: [c, ~, ~]}}", MatchExpression("In", ("c", "b", ""))),
    ],
)
def test_case_variant_keys_follow_encoding_json(exprs: str, expected: MatchExpression) -> None:
    assert expr(exprs) == expected


def test_case_variant_maps_and_structs_merge() -> None:
    text = one_rule(
        "matchFeatures:\n- feature: f.x\n"
        "  matchExpressions: {a: {op: Exists}, c: {op: In, value: [x]}}\n"
        "  MatchExpressions: {b: {op: Exists}, c: {op: DoesNotExist}}\n"
        "  MatchName: {op: In, value: [m]}\n"
        "  matchName: {op: NotIn}\n"
        "Name: first\nname: second\nVars: {a: '1'}\nvars: {b: '2'}"
    )
    rule = spec_of(text).compatibilities[0].rules[0]
    (term,) = rule.match_features
    assert term.match_expressions == (
        ("b", MatchExpression("Exists")),
        ("c", MatchExpression("In", ("x",))),
        ("a", MatchExpression("Exists")),
    )
    assert term.match_name == MatchExpression("NotIn", ("m",))
    assert rule.name == "second" and rule.vars == (("a", "1"), ("b", "2"))


def test_case_variant_lists_of_structs_reuse_elements() -> None:
    text = "version: v1alpha1\ncompatibilities:\n- Rules: [{name: r, vars: {a: b}}]\n  rules: [{}, {}]"
    # json.Marshal sorts "Rules" before "rules": the second list decodes into the first one's elements
    rules = spec_of(text).compatibilities[0].rules
    assert rules == (Rule(name="r", vars=(("a", "b"),)), Rule())


# ---------------------------------------------------------------------------------------------------
# Errors, with exact paths.

R = "compatibilities[0].rules[0]"


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("", "", "spec is empty: expected a mapping with version and compatibilities"),
        ("~", "", "spec is empty: expected a mapping with version and compatibilities"),
        ("- a", "", "spec must be a mapping, got a list"),
        ("hello", "", "spec must be a mapping, got a string ('hello')"),
        ("compatibilities: []", "version", 'required field is missing (expected "v1alpha1")'),
        ("version: ~\ncompatibilities: []", "version", 'required field is missing (expected "v1alpha1")'),
        ("version: v1\ncompatibilities: []", "version", 'unsupported version "v1" (expected "v1alpha1")'),
        ("version: [v1alpha1]", "version", "expected a string, got a list"),
        ("version: v1alpha1", "compatibilities", "required field is missing or null (use [] for no sets)"),
        (
            "version: v1alpha1\ncompatibilities:",
            "compatibilities",
            "required field is missing or null (use [] for no sets)",
        ),
        ("version: v1alpha1\ncompatibilities: {a: b}", "compatibilities", "expected a list, got a mapping"),
        (
            "version: v1alpha1\ncompatibilities: [x]",
            "compatibilities[0]",
            "expected a mapping, got a string ('x')",
        ),
        (
            "version: v1alpha1\ncompatibilities: [{rules: {}}]",
            "compatibilities[0].rules",
            "expected a list, got a mapping",
        ),
        (
            "version: v1alpha1\ncompatibilities: [{tag: [a]}]",
            "compatibilities[0].tag",
            "expected a string, got a list",
        ),
        (one_rule("name: {a: b}"), f"{R}.name", "expected a string, got a mapping"),
        (one_rule("vars: [a]"), f"{R}.vars", "expected a mapping, got a list"),
        (one_rule("vars: {a: [b]}"), f"{R}.vars.a", "expected a string, got a list"),
        (one_rule("varsTemplate: [a]"), f"{R}.varsTemplate", "expected a string, got a list"),
        (one_rule("matchFeatures: f.x"), f"{R}.matchFeatures", "expected a list, got a string ('f.x')"),
        (one_rule("matchAny: {a: b}"), f"{R}.matchAny", "expected a list, got a mapping"),
        (
            one_rule("matchAny: [{matchFeatures: 1}]"),
            f"{R}.matchAny[0].matchFeatures",
            "expected a list, got an integer ('1')",
        ),
        (one_rule("matchFeatures: [{feature: [a]}]"), f"{TERM0}.feature", "expected a string, got a list"),
        (term_yaml("[a]"), f"{TERM0}.matchExpressions", "expected a mapping, got a list"),
        (
            term_yaml("{vendor: Exists}"),
            f"{TERM0}.matchExpressions.vendor",
            "expected a mapping, got a string ('Exists')",
        ),
        (
            term_yaml("{vendor: ~}"),
            f"{TERM0}.matchExpressions.vendor",
            "expression is null (NFD would crash evaluating it)",
        ),
        (
            term_yaml("{vendor: {op: In, value: '1'}}"),
            f"{TERM0}.matchExpressions.vendor.value",
            "expected a list, got a string ('1')",
        ),
        (
            term_yaml("{vendor: {op: In, value: [[a]]}}"),
            f"{TERM0}.matchExpressions.vendor.value[0]",
            "expected a string, got a list",
        ),
        (
            term_yaml("{vendor: {op: {a: b}}}"),
            f"{TERM0}.matchExpressions.vendor.op",
            "expected a string, got a mapping",
        ),
        (
            one_rule("matchFeatures: [{feature: f, matchName: In}]"),
            f"{TERM0}.matchName",
            "expected a mapping, got a string ('In')",
        ),
    ],
)
def test_structural_errors_have_exact_paths(text: str, path: str, message: str) -> None:
    err = error_of(text)
    assert type(err) is SpecError
    assert (err.path, err.message) == (path, message)


def test_a_null_expression_is_an_error() -> None:
    # Decoded by Go as a nil *MatchExpression, which NFD's evaluator dereferences.
    err = error_of(term_yaml("{vendor: {}, class: {op: Exists}}").replace("vendor: {}", "vendor: "))
    assert err.path == f"{TERM0}.matchExpressions.vendor"


def test_unknown_op_path_deep_in_the_spec() -> None:
    text = (
        "version: v1alpha1\ncompatibilities:\n- rules: []\n- rules:\n  - matchFeatures:\n"
        "    - feature: a.a\n    - feature: b.b\n"
        "    - feature: pci.device\n      matchExpressions:\n        vendor: {op: in, value: ['10de']}\n"
    )
    err = error_of(text)
    assert err.path == "compatibilities[1].rules[0].matchFeatures[2].matchExpressions.vendor"
    assert err.message == 'unknown op "in" (op names are case-sensitive: did you mean "In"?)'
    assert str(err) == f"{err.path}: {err.message}"
    assert error_of(term_yaml("{k: {op: Foo}}")).message == 'unknown op "Foo"'


@pytest.mark.parametrize("op", ['""', "Exists", "DoesNotExist"])
def test_values_on_no_value_ops_are_errors(op: str) -> None:
    text = (
        "version: v1alpha1\ncompatibilities:\n- rules:\n  - {}\n  - matchAny:\n    - matchFeatures:\n"
        f"      - feature: f.x\n        matchName: {{op: {op}, value: [a]}}\n"
    )
    err = error_of(text)
    assert err.path == "compatibilities[0].rules[1].matchAny[0].matchFeatures[0].matchName"
    name = "" if op == '""' else op
    assert err.message == f'op "{name}" takes no values but has 1: NFD fails on every node'


# ---------------------------------------------------------------------------------------------------
# Warnings: evaluation-time errors in NFD, and what this project does not execute.

E = "NFD reports an error on every node where it is compared"
K = f"{TERM0}.matchExpressions.k"


@pytest.mark.parametrize(
    ("exprs", "messages"),
    [
        ("{op: In}", [f'op "In" has no values: {E}']),
        ("{op: NotIn, value: []}", [f'op "NotIn" has no values: {E}']),
        ("{op: InRegexp}", [f'op "InRegexp" has no values: {E}']),
        ("{op: InRegexp, value: ['^a.*$', '(?i)b\\d']}", []),
        (
            "{op: InRegexp, value: ['a(', '(?<=x)y']}",
            [
                f"value[0] 'a(' is not a valid RE2 regular expression: {E}",
                f"value[1] '(?<=x)y' is not a valid RE2 regular expression: {E}",
            ],
        ),
        ("{op: Gt, value: ['1', '2']}", [f'op "Gt" needs exactly 1 value(s), has 2: {E}']),
        ("{op: Le}", [f'op "Le" needs exactly 1 value(s), has 0: {E}']),
        ("{op: GtLt, value: ['1']}", [f'op "GtLt" needs exactly 2 value(s), has 1: {E}']),
        ("{op: GeLe, value: ['1', '2', '3']}", [f'op "GeLe" needs exactly 2 value(s), has 3: {E}']),
        (
            "{op: Gt, value: ['1'], type: semver}",
            [f'type "semver" is not supported (use "" or "version"): {E}'],
        ),
        ("{op: Gt, value: ['1.0']}", [f"value[0] '1.0' is not an integer: {E}"]),
        ("{op: Ge, value: [' 1']}", [f"value[0] ' 1' is not an integer: {E}"]),
        ("{op: Lt, value: ['1.2.3.4'], type: version}", [f"value[0] '1.2.3.4' is not a version: {E}"]),
        ("{op: Lt, value: ['v5.15.0-91-generic'], type: version}", []),
        ("{op: GtLt, value: ['5', '5']}", [f'op "GtLt" needs value[0] < value[1] for integers: {E}']),
        ("{op: GeLe, value: ['10', '1']}", [f'op "GeLe" needs value[0] < value[1] for integers: {E}']),
        ("{op: GeLe, value: ['-1', '007']}", []),
        ("{op: GtLt, value: ['2.0', '1.0'], type: version}", []),  # inverted version range: just false
        ("{op: GtLt, value: [x, '1']}", [f"value[0] 'x' is not an integer: {E}"]),
        ("{op: IsTrue, value: ['true']}", [f'op "IsTrue" takes no values but has 1: {E}']),
        ("{op: IsFalse}", []),
        (
            "{op: In, value: [a], type: version}",
            ['type "version" is ignored by op "In" (only ordering ops use it)'],
        ),
        ("{op: Exists, type: x}", ['type "x" is ignored by op "Exists" (only ordering ops use it)']),
        ("{}", []),
    ],
)
def test_expression_warnings(exprs: str, messages: list[str]) -> None:
    assert warnings_of(term_yaml("{k: " + exprs + "}")) == [(K, m) for m in messages]


def test_match_name_is_checked_like_an_expression() -> None:
    text = one_rule("matchFeatures:\n- feature: f.x\n  matchName: {op: InRegexp, value: ['[']}")
    assert warnings_of(text) == [
        (f"{TERM0}.matchName", f"value[0] '[' is not a valid RE2 regular expression: {E}"),
    ]


def test_rule_and_set_warnings() -> None:
    text = (
        "version: v1alpha1\ncompatibilities:\n- tag: none\n- rules:\n  - name: r\n"
        "    varsTemplate: '{{ range .cpu.cpuid }}{{ .Name }}=x\n{{ end }}'\n"
        "    matchFeatures: [{feature: ''}]\n"
    )
    assert warnings_of(text) == [
        ("compatibilities[0].rules", "no rules: this compatibility set matches every node"),
        (
            "compatibilities[1].rules[0].varsTemplate",
            "varsTemplate is not executed by this extender: its variables never reach rule.matched",
        ),
        ("compatibilities[1].rules[0].matchFeatures[0]", "feature is empty: this term never matches"),
    ]


# ---------------------------------------------------------------------------------------------------
# Limits, hostile input, speed.


def test_limits_are_applied_through_parse_spec() -> None:
    data = (SPECS / "nfd-docs-example.yaml").read_bytes()
    assert SpecLimits is yamlgo.SpecLimits
    for limits in (SpecLimits(max_bytes=100), SpecLimits(max_nodes=20), SpecLimits(max_depth=5)):
        with pytest.raises(SpecLimitError):
            parse_spec(data, limits=limits)
    with pytest.raises(SpecLimitError, match="over the limit"):
        parse_spec(b"#" * (10 << 20))


def test_warnings_are_capped() -> None:
    data = "version: v1alpha1\ncompatibilities: []\n" + "".join(f"x{i}: 1\n" for i in range(150))
    warnings = spec_of(data).warnings
    assert len(warnings) == 101 and warnings[0].path == "x0"
    assert (warnings[-1].path, warnings[-1].message) == ("", "50 more warnings not shown")


@pytest.mark.parametrize(
    "data",
    [
        b"!!python/object/apply:os.system ['echo pwned']",
        b"version: !!python/object/new:os.system [ls]\ncompatibilities: []",
        b"\x00\x01\x02\xff" * 100,
        b"version: v1alpha1\ncompatibilities: [\n",
        b"version: v1alpha1\n compatibilities: []\n",
        b"version: \xc0\xaf\ncompatibilities: []",
        b"version: v1alpha1\ncompatibilities: " + b"[" * 10_000,
        b"version: v1alpha1\ncompatibilities:\n" + b"- " * 10_000,
    ],
)
def test_hostile_input_raises_spec_error(data: bytes) -> None:
    with pytest.raises(SpecError):
        parse_spec(data)


def test_a_typical_three_set_spec_parses() -> None:
    # (How fast it parses is measured in benchmarks/, never asserted here.)
    data = (SPECS / "nfd-docs-example.yaml").read_bytes()
    one_set = data[data.index(b"- description") :]
    data += one_set.replace(b"My image", b"Other") + one_set.replace(b"My image", b"Third")
    assert 1500 < len(data) < 3000
    spec = parse_spec(data)
    assert [c.description for c in spec.compatibilities] == [
        "My image requirements",
        "Other requirements",
        "Third requirements",
    ]


SEED = (SPECS / "nfd-docs-example.yaml").read_text()


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_spec_error(data: bytes) -> None:
    with contextlib.suppress(SpecError):
        parse_spec(data)


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_spec_error(text: str) -> None:
    with contextlib.suppress(SpecError):
        parse_spec(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(SEED)),
            st.integers(0, 8),
            st.text(alphabet="[]{}:,-'\"&*!~ \n\tyn0x.eIK<>|#", max_size=4),
        ),
        max_size=4,
    )
)
def test_mutated_specs_raise_only_spec_error(edits: list[tuple[int, int, str]]) -> None:
    text = SEED
    for pos, cut, insert in edits:
        text = text[:pos] + insert + text[pos + cut :]
    try:
        spec = parse_spec(text.encode())
    except SpecError:
        return
    assert spec.version == "v1alpha1"
