"""The extender wire format against request bodies a real kube-scheduler v1.36 sent."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.errors import WireError
from extender.http.wire import (
    decode_args,
    encode_filter_error,
    encode_filter_result,
    encode_priorities,
    encode_score_list,
)

CAPTURES = Path(__file__).parent / "data" / "captures"


def capture(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


def test_node_names_capture() -> None:
    args = decode_args(capture("filter-args.nodecachecapable-true.json"))
    assert args.node_names == ["node-a", "node-c", "node-b"] and not args.full_nodes
    out = orjson.loads(encode_filter_result(args, ["node-b", "node-a"], unresolvable={"node-c": "why"}))
    assert out == {
        "Nodes": None,
        "NodeNames": ["node-a", "node-b"],  # the scheduler's order, only names that were sent
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {"node-c": "why"},
        "Error": "",
    }


def test_full_nodes_capture_echoes_objects_unmodified() -> None:
    raw = capture("filter-args.nodecachecapable-false.json")
    sent = orjson.loads(raw)
    args = decode_args(raw)
    assert args.full_nodes and len(args.node_names) == 3
    out = orjson.loads(encode_filter_result(args, [args.node_names[0], args.node_names[2]]))
    assert out["Nodes"]["metadata"] == sent["Nodes"]["metadata"]
    assert out["Nodes"]["items"] == [sent["Nodes"]["items"][0], sent["Nodes"]["items"][2]]
    assert out["NodeNames"] is None


def test_prioritize_capture_and_priorities() -> None:
    args = decode_args(capture("prioritize-args.nodecachecapable-true.json"))
    body = encode_priorities((n, 10 if n == "node-a" else 0) for n in args.node_names)
    assert orjson.loads(body) == [
        {"Host": "node-a", "Score": 10},
        {"Host": "node-c", "Score": 0},
        {"Host": "node-b", "Score": 0},
    ]


def test_keys_are_case_insensitive_like_go() -> None:
    args = decode_args(b'{"pod": {}, "nodenames": ["x"], "nodes": null}')
    assert args.node_names == ["x"]


def test_both_null_means_no_nodes() -> None:
    assert decode_args(b'{"Pod": {}, "Nodes": null, "NodeNames": null}').node_names == []


def test_error_answer() -> None:
    assert orjson.loads(encode_filter_error("registry down"))["Error"] == "registry down"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty request body"),
        (b"   ", "empty request body"),
        (b"{not json", "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"Nodes": null}', "ExtenderArgs.Pod: required"),
        (b'{"Pod": "x"}', "ExtenderArgs.Pod: expected an object"),
        (b'{"Pod": {}, "Nodes": "node-a"}', "ExtenderArgs.Nodes: expected a NodeList object"),
        (b'{"Pod": {}, "Nodes": {"items": {}}}', "ExtenderArgs.Nodes.items: expected a list"),
        (b'{"Pod": {}, "Nodes": {"items": [{"metadata": {}}]}}', "items[0].metadata.name"),
        (b'{"Pod": {}, "NodeNames": "a"}', "ExtenderArgs.NodeNames: expected a list"),
        (b'{"Pod": {}, "NodeNames": ["a", 3]}', "ExtenderArgs.NodeNames[1]: expected a string, got int"),
    ],
)
def test_bad_input_is_a_clear_wire_error(body: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_args(body)


# encode_score_list splices scores into orjson's encoding of the names: byte for byte what
# encode_priorities gives, whatever the names hold (quotes, backslashes, the "," separator itself,
# control characters, non-ASCII, empty) and whatever the scores (out of 0..10 it falls back).
_awkward_names = st.one_of(
    st.text(max_size=12),
    st.sampled_from(['","', '\\",\\"', "\\", '"', "", "node-a", '{"Host":"x"}', "\u2028", "\x00"]),
)


@settings(max_examples=400)
@given(
    st.lists(st.tuples(_awkward_names, st.one_of(st.integers(0, 10), st.integers(-3, 1 << 40))), max_size=30)
)
def test_encode_score_list_is_encode_priorities(pairs: list[tuple[str, int]]) -> None:
    names = [n for n, _ in pairs]
    scores = [s for _, s in pairs]
    assert encode_score_list(names, scores) == encode_priorities(pairs)


def test_encode_score_list_needs_a_score_per_name() -> None:
    with pytest.raises(ValueError, match="2 names, 1 scores"):
        encode_score_list(["a", "b"], [1])


@pytest.mark.parametrize(
    "names",
    [
        [f"node-{i}.pool-{i % 7}.example.com" for i in range(300)],  # ASCII, nothing to escape: str joins
        ["node-a", 'quo"te', "node-b"],  # one name orjson escapes: the pieces of its encoding
        ["node-a", "n\u00f6de", "node-b"],  # non-ASCII, written as it is
        ["node-a", "tab\there", "back\\slash", "\x7f", ""],
        ["only"],
    ],
)
def test_encode_score_list_either_way(names: list[str]) -> None:
    scores = [(7 * i) % 11 for i in range(len(names))]
    assert encode_score_list(names, scores) == encode_priorities(zip(names, scores, strict=True))
    assert encode_score_list(names, [10] * len(names)) == encode_priorities((n, 10) for n in names)
    assert orjson.loads(encode_score_list(names, scores)) == [
        {"Host": n, "Score": s} for n, s in zip(names, scores, strict=True)
    ]
