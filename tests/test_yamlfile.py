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
from extender.errors import FileLoadError
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
