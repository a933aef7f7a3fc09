"""The table's explanation cache (:class:`extender.match.caches.ReasonCache`): reasons grouped per
spec and tag selection, valid only for the NodeFeatures object they were computed from, and bounded
in entries and bytes however they arrive."""

from __future__ import annotations

from extender.caching import RECORD_BYTES
from extender.features.nodefeature import NodeFeatures
from extender.match.caches import ReasonCache


def nf(node: str) -> NodeFeatures:
    return NodeFeatures(node=node)


def test_a_reason_is_valid_for_the_features_it_was_computed_from() -> None:
    cache = ReasonCache("explanations", max_entries=10, max_bytes=1 << 20)
    group = cache.group("sha256:a", None)
    before = nf("n1")
    cache.remember(group, "n1", before, "why")
    assert cache.reason(cache.group("sha256:a", None), "n1", before) == "why"
    assert cache.reason(group, "n1", nf("n1")) is None  # an equal but new object: the node changed
    assert cache.reason(cache.group("sha256:a", frozenset({"t"})), "n1", before) is None  # other tags
    assert (cache.hits, cache.misses) == (1, 2)
    cache.remember(group, "n1", before, "longer why")  # replacing counts once
    assert len(cache) == 1 and cache.bytes == RECORD_BYTES + len("longer why")


def test_the_least_recently_used_group_goes_first() -> None:
    cache = ReasonCache("explanations", max_entries=4, max_bytes=1 << 20)
    a, b = cache.group("a", None), cache.group("b", None)
    for i in range(2):
        cache.remember(a, f"n{i}", None, "x")
        cache.remember(b, f"n{i}", None, "x")
    cache.group("a", None)  # a is used again: b is now the oldest
    cache.remember(cache.group("c", None), "n0", None, "x")
    assert cache.reason(cache.group("b", None), "n0", None) is None
    assert cache.reason(cache.group("a", None), "n0", None) == "x"
    assert len(cache) == 3 and cache.evictions == 2


def test_one_group_over_the_bounds_drops_its_oldest_reasons() -> None:
    cache = ReasonCache("explanations", max_entries=100, max_bytes=3 * (RECORD_BYTES + 1))
    group = cache.group("a", None)
    for i in range(10):
        cache.remember(group, f"n{i}", None, "x")
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes and cache.evictions == 7
    assert set(group) == {"n7", "n8", "n9"}
    cache.remember(group, "huge", None, "y" * cache.max_bytes)  # larger than the cap alone: not kept
    assert "huge" not in group and len(cache) == 3
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0
