"""Bounded caches (cachetools underneath): every cache has a cap on entries *and* on bytes, an
optional time to live, and counters for metrics and /debug/sources (hits, misses, evictions).

Every cache of the extender is one of these, owned by an object (the feature table owns its result
cache, the registry spec source its lookup caches), never a module global. The one exception is the
table's explanation cache (:class:`extender.match.caches.ReasonCache`), read once per detailed
reason on the filter's hot path: plain dicts per spec, with the same bounds and counters.

The byte cost of an entry is what the caller says it is (the spec document's size for parsed specs,
a fixed estimate for small records), so a flood of large specs cannot grow memory past the cap any
more than a flood of small ones can grow the entry count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import cachetools

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

RECORD_BYTES = 512  # the estimate for a small record (a digest, a descriptor) and its key


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    size: int


class BoundedCache(Generic[K, V]):
    """LRU, or TTL when ``ttl`` is given (``ttl == 0`` disables the cache: nothing is stored).

    An entry larger than ``max_bytes`` on its own is not stored."""

    def __init__(
        self,
        name: str,
        *,
        max_entries: int,
        max_bytes: int,
        ttl: float | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError(f"cache {name}: max_entries and max_bytes must be positive")
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._data: cachetools.Cache[K, _Entry[V]]

        def _size(entry: _Entry[V]) -> int:
            return entry.size

        if ttl is None:
            self._data = cachetools.LRUCache(maxsize=max_bytes, getsizeof=_size)
        else:
            self._data = cachetools.TTLCache(
                maxsize=max_bytes, ttl=max(ttl, 1e-9), timer=timer, getsizeof=_size
            )
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def bytes(self) -> int:
        return int(self._data.currsize)

    def get(self, key: K, valid: Callable[[V], bool] | None = None) -> V | None:
        """The value under ``key``, or None. ``valid``: a value it rejects (stale: built from inputs
        that have changed since) counts as a miss, and the caller's ``put`` replaces it."""
        entry = self._data.get(key)
        if entry is None or (valid is not None and not valid(entry.value)):
            self.misses += 1
            return None
        self.hits += 1
        return entry.value

    def put(self, key: K, value: V, size: int = RECORD_BYTES) -> None:
        if self.ttl == 0 or size > self.max_bytes:
            return
        self._data.pop(key, None)
        if isinstance(self._data, cachetools.TTLCache):
            self._data.expire()
        while len(self._data) >= self.max_entries:
            self._data.popitem()
            self.evictions += 1
        before = len(self._data)
        self._data[key] = _Entry(value, size)  # evicts least recently used entries past max_bytes
        self.evictions += max(0, before + 1 - len(self._data))

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()
