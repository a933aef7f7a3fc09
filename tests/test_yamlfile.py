"""The safe file loader: JSON texts take orjson, and give exactly what the PyYAML path gives (objects
and errors alike); the safety limits hold on both paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.cluster import iter_cluster
from extender import yamlfile
from extender.errors import DuplicateKeyError, FileLoadError
from extender.yamlfile import load_documents

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "nodefeatures"


def _reference(data: bytes) -> list[Any] | str:
    """What the PyYAML path alone makes of ``data``: its documents, or its error message."""
    try:
        return yamlfile._load_yaml(data.decode("utf-8"), "f.json")
    except FileLoadError as exc:
        return str(exc)


def _fast(data: bytes) -> list[Any] | str:
    try:
        return load_documents(data, "f.json")
    except FileLoadError as exc:
        return str(exc)


def _json_forms(obj: Any) -> list[bytes]:
    """The ways a JSON file of ``obj`` is written: compact, indented (kubectl), ASCII-escaped."""
    return [
        orjson.dumps(obj),
        orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n",
        json.dumps(obj, indent=4, ensure_ascii=True).encode(),
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode(),
    ]


def _took_json_path(monkeypatch: pytest.MonkeyPatch, data: bytes) -> bool:
    calls: list[str] = []
    real = yamlfile._load_yaml

    def spy(text: str, source: str) -> list[Any]:
        calls.append(source)
        return real(text, source)

    monkeypatch.setattr(yamlfile, "_load_yaml", spy)
    load_documents(data, "f.json")
    monkeypatch.undo()
    return not calls


def _example_objects() -> list[Any]:
    objs: list[Any] = []
    for path in sorted(EXAMPLES.iterdir()):
        objs.extend(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    assert objs
    return objs


def test_examples_and_generated_nodefeatures_are_identical_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objs = [*_example_objects(), *iter_cluster(60, seed=3)]
    objs.append({"kind": "List", "items": objs[:5]})
    for obj in objs:
        for data in _json_forms(obj):
            assert _fast(data) == _reference(data) == [obj]
            assert _took_json_path(monkeypatch, data)


def test_yaml_files_still_load_through_pyyaml() -> None:
    for path in sorted(EXAMPLES.iterdir()):
        data = path.read_bytes()
        assert load_documents(data, str(path)) == [
            d for d in yaml.safe_load_all(data.decode()) if d is not None
        ]


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1e5, "b": 1.5e+5, "c": 1.0}',  # YAML 1.1 floats: '1e5' is a string there
        '{"a": "\\ud83d\\ude00"}',  # escaped surrogates
        '{"a": "\x85\x7f"}',  # characters PyYAML refuses
        '{\n  "\x85": null\n}',  # NEL: a line break to YAML, in a key (found by the property test below)
        '{"a": "x\u2028y", "b": "\u2029"}',  # LS, PS: line breaks to YAML, text to JSON
        '\t{"a": 1}',  # a tab where YAML takes none
        '{"a"\n: 1}',  # a key and its colon on two lines
        '{"' + "k" * 1100 + '": 1}',  # a key longer than YAML's simple keys
        '{"' + 'k\\"' * 400 + '": 1}',  # the same, with escaped quotes
        '{"k"' + " " * 1100 + ": 1}",  # a key far from its colon
        '{"a": "' + "v" * 2000 + '"}',  # a long value (PyYAML takes it)
        '{"a": "x: 1.5", "b": [1, 2]}',  # float-like text in a string (PyYAML takes it)
        '{"a": 1} {"b": 2}',  # not one JSON value
        '{"a": [1, 2,]}',  # not JSON at all
        "[1, *x]",
        '{"a": 123456789012345678901234567890}',  # beyond orjson's integers
        '{"a": 18446744073709551616, "b": -9223372036854775809}',  # just past 64 bits: floats in orjson
        '{"a": 9223372036854775807, "b": -9223372036854775808, "c": 1000000000000000000}',  # 64 bits
        "[1E5, -2.5e-3, 0.0, 1e400]",  # exponents, a negative fraction, a float beyond float range
        '{"a": [1,\n   2.5], "b": {"c":\r\n 3.25}}',  # a float after a line break
        '{"a": "x,1.5", "b": "[2e3"}',  # number-like text after a comma or bracket inside a string
        "\ufeff" + '{"a": 1}',  # a byte-order mark
        "null",
        "  \n  ",
        '{"a": null, "<<": {"b": 1}, "c": [true, false, -0, "1e5", ""]}',
    ],
)
def test_texts_where_json_and_yaml_could_differ_agree(text: str) -> None:
    data = text.encode()
    assert _fast(data) == _reference(data)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(value=st.dictionaries(st.text(max_size=8), _json_values, max_size=5) | st.lists(_json_values))
def test_any_json_value_loads_as_pyyaml_loads_it(value: Any) -> None:
    for data in (
        json.dumps(value).encode(),
        json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8", "surrogatepass"),
    ):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # a lone surrogate written raw: not UTF-8, refused before either path
        assert _fast(data) == _reference(data)


def test_safety_holds_on_the_json_path() -> None:
    big = orjson.dumps({"a": "x" * 100})
    with pytest.raises(FileLoadError, match="over the 50-byte limit"):
        load_documents(big, "f.json", max_bytes=50)
    with pytest.raises(FileLoadError, match="not UTF-8"):
        load_documents(b'{"a": "\xff"}', "f.json")
    with pytest.raises(FileLoadError, match="YAML aliases are not accepted"):
        load_documents(b"a: &x [1]\nb: *x\n", "f.yaml")
    deep = b"[" * 5000 + b"]" * 5000  # beyond orjson's depth: PyYAML's error, as before
    assert isinstance(_reference(deep), str) and _fast(deep) == _reference(deep)


# -- duplicate keys: an error on both paths, with the key and its line ---------------------------------


@pytest.mark.parametrize(
    ("text", "key", "line", "first_line"),
    [
        ('{"a": 1, "b": 2, "a": 3}', "a", 1, 1),  # JSON, compact
        ('{\n  "a": {\n    "x": 1,\n    "y": 2,\n    "x": 3\n  }\n}\n', "x", 5, 3),  # JSON, nested
        ('[{"a": 1}, {"b": {"c": [{"d": 1, "d": 1}]}}]', "d", 1, 1),  # in a list, the same value twice
        ('{"a": "x\\"y", "b": 1, "b": 2}', "b", 1, 1),  # an escaped quote
        ('{"a": "\\u003a", "b": 1, "b": 2}', "b", 1, 1),  # an escaped colon: checked while decoding
        ('{"a": {"k": "\\u003a"},\n "a": 1}', "a", 2, 1),  # ... the dropped value held it
        ('{"a:b": "c:d", "a:b": "e"}', "a:b", 1, 1),  # colons inside strings
        ('{"a": 1, "a" : 2}', "a", 1, 1),  # a space before the colon
        ("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n", "c", 5, 3),  # YAML, nested
        ("- x: {p: 1, p: 2}\n", "p", 1, 1),  # YAML flow mapping in a list
        ("a: 1\n0x1: 2\n1: 3\n", "1", 3, 2),  # keys compared as constructed: 0x1 is 1
        ("---\na: 1\n---\nb: 1\nb: 2\n", "b", 5, 4),  # the second document
        ("a: 1\n<<: {b: 2, b: 3}\n", "b", 2, 2),  # inside a merged mapping
    ],
)
def test_a_duplicate_key_is_an_error_on_both_paths(text: str, key: str, line: int, first_line: int) -> None:
    data = text.encode()
    with pytest.raises(DuplicateKeyError) as raised:
        load_documents(data, "f.json")
    exc = raised.value
    assert (exc.key, exc.line, exc.first_line, exc.source) == (key, line, first_line, "f.json")
    assert str(exc).startswith(f"f.json: duplicate key {key!r} at line {line}, column ")
    assert isinstance(exc, FileLoadError)
    assert _fast(data) == _reference(data) == str(exc)
    # the JSON path does not decide for itself: it leaves every such text to PyYAML
    assert yamlfile._load_json(text) is yamlfile._NOT_JSON


@pytest.mark.parametrize(
    "text",
    [
        '{"a": {"k": 1}, "b": {"k": 1}, "c": [{"k": 1}, {"k": 2}]}',  # the same key in sibling mappings
        '{"a": ":", "b": "x:y", "c": "  :", "d": ": "}',  # colons in strings
        '{"a": "\\u003a", "b": "\\u003A:", "c": {"\\u003a": 1}}',  # escaped colons
        '{"a": "x\\"y:", "b\\"": 1, "\\\\": 2}',  # escaped quotes and backslashes
        '{\n  "a" : 1,\n  "b"   :   {}\n}',  # spaces before colons
        '{"a": 123456789012345678901234567890, "b": 1}',  # an integer orjson cannot encode
    ],
)
def test_no_false_duplicates(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = text.encode()
    assert _fast(data) == _reference(data) == [json.loads(text)]
    if "1234567890" not in text:
        assert _took_json_path(monkeypatch, data)


def test_merging_may_repeat_a_key_of_the_mapping() -> None:
    """``<<`` is YAML's way of giving defaults: a key of the merged mapping that the mapping has too
    is not a duplicate (the mapping's own value wins)."""
    assert load_documents(b"a: 1\n<<: {a: 2, b: 3}\n", "f.yaml") == [{"a": 1, "b": 3}]
    assert load_documents(b"a: 1\n<<: [{b: 2}, {b: 3}]\n", "f.yaml") == [{"a": 1, "b": 2}]


_keys = st.sampled_from(["a", "b", ":", "a:b", "\\u003a"])  # written as is into the JSON text


def _tree(depth: int = 2) -> st.SearchStrategy[Any]:
    leaf = st.integers(-5, 5) | _keys
    if depth == 0:
        return leaf
    inner = _tree(depth - 1)
    return leaf | st.lists(inner, max_size=3) | st.lists(st.tuples(_keys, inner), max_size=4).map(_Pairs)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as written, keys in order, repeats allowed."""


def _write(tree: Any, indent: str) -> str:
    if isinstance(tree, _Pairs):
        return "{" + ",".join(f'{indent}"{k}": {_write(v, indent)}' for k, v in tree) + "}"
    if isinstance(tree, list):
        return "[" + ",".join(indent + _write(v, indent) for v in tree) + "]"
    return f'"{tree}"' if isinstance(tree, str) else str(tree)


def _value(tree: Any) -> Any:
    """What the text means when no key repeats; None when one does (anywhere)."""
    if isinstance(tree, _Pairs):
        keys = [json.loads(f'"{k}"') for k, _ in tree]
        values = [_value(v) for _, v in tree]
        if len(set(keys)) != len(keys) or any(v is None for v in values):
            return None
        return dict(zip(keys, values, strict=True))
    if isinstance(tree, list):
        items = [_value(v) for v in tree]
        return None if any(v is None for v in items) else items
    return json.loads(f'"{tree}"') if isinstance(tree, str) else tree


@given(tree=st.lists(st.tuples(_keys, _tree()), max_size=4).map(_Pairs), indent=st.sampled_from(["", "\n  "]))
def test_repeated_keys_anywhere_are_found_on_both_paths(tree: _Pairs, indent: str) -> None:
    data = _write(tree, indent).encode()
    expected = _value(tree)
    assert _fast(data) == _reference(data)
    if expected is None:
        with pytest.raises(DuplicateKeyError):
            load_documents(data, "f.json")
    else:
        assert load_documents(data, "f.json") == [expected]
