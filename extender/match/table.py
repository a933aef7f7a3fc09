"""A columnar, dictionary-encoded table of every node's features, updated one node at a time.

Layout, per feature name (exactly as published; term lookups lower-case the term's name):

* ``has_flags`` / ``has_attrs`` / ``has_instances``: bool per node slot — does the node have that
  part of the feature at all (a part with zero elements still counts).
* flags: one bool membership column per element name.
* attributes: one :class:`Column` per key — integer codes per node slot (``-1`` = key absent) into a
  vocabulary of the distinct values seen. Predicates are evaluated once per distinct value and then
  gathered by code, so an expression costs O(distinct values + nodes), not O(nodes) regex runs.
* instances: rows, each carrying its node slot (``-1`` once the row is dead), and one code column
  per attribute key over rows.

Each node also has a platform (``os/arch/variant``, :func:`extender.platforms.platform_key`): what a
multi-arch image's variant is chosen by. It is dictionary-encoded like an attribute
(:meth:`FeatureTable.platform_codes`, :meth:`FeatureTable.platforms`); a source that knows it (the Node
object's labels) passes it to :meth:`FeatureTable.set_node`, otherwise it is told from the features
(:func:`extender.features.platform.platform_from_features`) with the table's default.

Node slots are stable: removing a node frees its slot for reuse. ``generation`` increases with every
change, so results can be cached per (spec, generation); the table owns those caches
(``table.caches``). Not thread-safe: one writer, one reader at
a time (the extender runs on one event loop).
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from extender.features.nodefeature import DEFAULT_NFD_NAMESPACE, NodeFeatures, node_features_from_objects
from extender.features.platform import platform_from_features
from extender.match.caches import TableCaches
from extender.platforms import DEFAULT_PLATFORM

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]  # native index width: numpy gathers without converting

_INITIAL_CAPACITY = 64
#: Changes remembered for :meth:`FeatureTable.changed_since` (a result older than that is recomputed).
_CHANGE_LOG = 8192

_ScalarT = TypeVar("_ScalarT", bound=np.generic)


class _SlotIndex(dict[str, int]):
    """node name -> slot; a missing name reads as -1 so lookups can run through ``map`` in C."""

    def __missing__(self, key: str) -> int:
        return -1


#: Rebuild the name index once this share of its entries was inserted since the last rebuild.
_LOOSE_SHARE = 4  # a quarter


def _compact_index(index: _SlotIndex) -> _SlotIndex:
    """The same mapping, its key strings and slot integers allocated afresh, one after another.

    Why: every lookup of a request's name reads the key it hits (to compare the strings) and the slot
    it maps to. The keys a source inserts are the ``metadata.name`` strings of the NodeFeature
    documents it decoded, each next to its own document somewhere in a heap of hundreds of MiB, and
    the slots are integers allocated between them; a lookup then costs a cache (and often a TLB) miss
    or two. Measured in a process holding 5,000 decoded NodeFeature documents (5,000 fresh request
    names, interleaved, p50): 5.8 ms through the index the table was built with, 1.4 ms through this
    copy, 0.55 ms of which is hashing the request's strings. Copies of the keys made by one
    ``str.split`` sit next to each other, and so do integers made by one ``tolist``."""
    names = list(index)
    joined = "\x00".join(names)
    keys = joined.split("\x00") if len(names) > 0 else []
    if len(keys) != len(names):  # a name holding NUL: keep the key objects, still copy the slots
        keys = names
    slots = np.fromiter(index.values(), dtype=np.int64, count=len(index)).tolist()
    return _SlotIndex(zip(keys, slots, strict=True))


def _same_rows(new: tuple[Mapping[str, str], ...] | None, old: tuple[Mapping[str, str], ...]) -> bool:
    """The same instance rows, object for object (the tuples themselves are built per parse)."""
    return new is old or (new is not None and len(new) == len(old) and all(map(operator.is_, new, old)))


def _grow(arr: npt.NDArray[_ScalarT], size: int, fill: object) -> npt.NDArray[_ScalarT]:
    out = np.full(size, fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


@dataclass(slots=True)
class Column:
    """Dictionary-encoded strings: ``codes[i]`` indexes ``vocab`` (or is -1 for absent)."""

    codes: IntArray
    vocab: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    #: Per-expression results over ``vocab`` (owned by the vectorized matcher). They depend only on
    #: the values, never on the codes, so they stay valid as nodes change and only grow.
    memo: dict[Any, Any] = field(default_factory=dict)

    def code_for(self, value: str) -> int:
        code = self.index.get(value)
        if code is None:
            code = len(self.vocab)
            self.vocab.append(value)
            self.index[value] = code
        return code

    def grow(self, size: int) -> None:
        self.codes = _grow(self.codes, size, -1)


@dataclass(slots=True)
class FeatureColumns:
    """All columns of one feature name."""

    has_flags: BoolArray
    has_attrs: BoolArray
    has_instances: BoolArray
    flags: dict[str, BoolArray] = field(default_factory=dict)
    attrs: dict[str, Column] = field(default_factory=dict)
    row_node: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    #: matchName results per expression and element name (owned by the vectorized matcher).
    name_memo: dict[Any, dict[str, tuple[bool, bool]]] = field(default_factory=dict)
    n_rows: int = 0
    dead_rows: int = 0
    inst_attrs: dict[str, Column] = field(default_factory=dict)


class Columns(Protocol):
    """What the vectorized matcher reads: per feature its columns, over ``capacity`` slots."""

    @property
    def capacity(self) -> int: ...

    def feature(self, name: str) -> FeatureColumns | None: ...


class _GatheredFlags(dict[str, BoolArray]):
    """The flag columns of a :class:`SlotSubset`, each gathered the first time it is read (a
    feature can have hundreds of flags, and a spec reads a few)."""

    def __init__(self, source: dict[str, BoolArray], slots: IntArray) -> None:
        super().__init__()
        self._source = source
        self._slots = slots

    def get(self, key: str, default: Any = None) -> Any:
        col = dict.get(self, key)
        if col is None:
            src = self._source.get(key)
            if src is None:
                return default
            col = self[key] = src[self._slots]
        return col

    def items(self) -> Any:
        for key in self._source:
            self.get(key)
        return dict.items(self)


class SlotSubset:
    """Some slots of a table, as a table of their own to the vectorized matcher: slot ``i`` here is
    ``slots[i]`` there. Columns are gathered per feature as the matcher asks for them, and share the
    table's vocabularies and per-value results (Column.memo, name_memo), so evaluating a spec over a
    few changed nodes costs a few small gathers per expression, not a table of their own to fill
    and every expression's values to evaluate again. Read it before the table changes again."""

    def __init__(self, table: FeatureTable, slots: IntArray) -> None:
        self._table = table
        self._slots = slots
        self._features: dict[str, FeatureColumns | None] = {}

    @property
    def capacity(self) -> int:
        return len(self._slots)

    def feature(self, name: str) -> FeatureColumns | None:
        if name in self._features:
            return self._features[name]
        fc = self._table.feature(name)
        found = None if fc is None else self._gather(name, fc)
        self._features[name] = found
        return found

    def _gather(self, name: str, fc: FeatureColumns) -> FeatureColumns:
        slots = self._slots
        out = FeatureColumns(
            has_flags=fc.has_flags[slots],
            has_attrs=fc.has_attrs[slots],
            has_instances=fc.has_instances[slots],
            flags=_GatheredFlags(fc.flags, slots),
            attrs={
                key: Column(col.codes[slots], col.vocab, col.index, col.memo) for key, col in fc.attrs.items()
            },
            name_memo=fc.name_memo,
        )
        rows: list[int] = []
        at: list[int] = []
        node_rows = self._table._node_rows
        for i, slot in enumerate(slots.tolist()):
            mine = node_rows[slot].get(name)
            if mine:
                rows += mine
                at += [i] * len(mine)
        if rows:
            picked = np.array(rows, dtype=np.intp)
            out.row_node = np.array(at, dtype=np.intp)
            out.n_rows = len(rows)
            out.inst_attrs = {
                key: Column(col.codes[picked], col.vocab, col.index, col.memo)
                for key, col in fc.inst_attrs.items()
            }
        return out


class FeatureTable:
    """All nodes' features, columnar. See the module docstring."""

    def __init__(self, *, default_platform: str = DEFAULT_PLATFORM) -> None:
        self.default_platform = default_platform
        self._capacity = _INITIAL_CAPACITY
        self._slot_of = _SlotIndex()
        self._loose = 0  # names inserted into _slot_of since it was last compacted
        self._names_cache: tuple[int, tuple[str, ...]] = (-1, ())
        self._slots_cache: tuple[int, npt.NDArray[np.int64]] = (-1, np.zeros(0, dtype=np.int64))
        self._names: list[str | None] = []  # slot -> node name (None = free)
        self._free: list[int] = []
        self._alive = np.zeros(self._capacity, dtype=np.bool_)
        self._features: dict[str, FeatureColumns] = {}
        self._node_features: dict[int, NodeFeatures] = {}
        self._node_rows: dict[int, dict[str, list[int]]] = {}
        #: per slot a code into ``_platform.vocab``; one element more than the capacity, for slot -1
        self._platform = Column(np.zeros(self._capacity + 1, dtype=np.intp))
        self._platform.code_for(default_platform)
        #: platform code -> how many nodes have it; the sorted keys of the non-zero ones, memoised
        #: until one appears or disappears (a per-generation recount cost every filter under churn)
        self._platform_nodes: dict[int, int] = {}
        self._platforms_cache: tuple[str, ...] | None = ()
        #: (generation after the change, slot) per change, oldest first, at most _CHANGE_LOG of them;
        #: ``_log_floor``: the newest generation whose changes are no longer all in the log
        self._log: deque[tuple[int, int]] = deque()
        self._log_floor = 0
        self.generation = 0
        #: results and explanations computed from this table (see extender/match/caches.py)
        self.caches = TableCaches()

    # -- reading -----------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def alive(self) -> BoolArray:
        return self._alive

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, node: object) -> bool:
        return node in self._slot_of

    def nodes(self) -> Iterator[str]:
        return iter(self._slot_of)

    def slot(self, node: str) -> int | None:
        return self._slot_of.get(node)

    def node_names(self) -> tuple[str, ...]:
        """Every node, in insertion order (memoised per generation)."""
        gen, names = self._names_cache
        if gen != self.generation:
            names = tuple(self._slot_of)
            self._names_cache = (self.generation, names)
        return names

    def all_slots(self) -> npt.NDArray[np.int64]:
        """Slots of :meth:`node_names`, in the same order (memoised per generation)."""
        gen, slots = self._slots_cache
        if gen != self.generation:
            slots = np.fromiter(self._slot_of.values(), dtype=np.int64, count=len(self._slot_of))
            self._slots_cache = (self.generation, slots)
        return slots

    def slots_of(self, names: tuple[str, ...] | list[str]) -> npt.NDArray[np.int64]:
        """Slots of ``names`` (``-1`` for a node the table does not know), without a Python loop.

        The name index is compacted first when a quarter of it or more was inserted since the last
        time (see :func:`_compact_index`): once after a table is built, then as nodes join."""
        if self._loose * _LOOSE_SHARE > len(self._slot_of):
            self._slot_of = _compact_index(self._slot_of)
            self._loose = 0
        return np.fromiter(map(self._slot_of.__getitem__, names), dtype=np.int64, count=len(names))

    def node_features(self, node: str) -> NodeFeatures | None:
        slot = self._slot_of.get(node)
        return None if slot is None else self._node_features[slot]

    def features_at(self, slot: int) -> NodeFeatures | None:
        """The features of the node in ``slot`` (``None`` for a free slot)."""
        return self._node_features.get(slot)

    def feature(self, name: str) -> FeatureColumns | None:
        return self._features.get(name)

    def subset(self, slots: IntArray) -> SlotSubset:
        """These live slots as a table of their own, for the vectorized matcher (:class:`SlotSubset`)."""
        return SlotSubset(self, slots)

    def changed_since(self, generation: int) -> set[int] | None:
        """The slots written or freed after ``generation`` (their features, platform or node
        changed), or ``None`` when the log no longer reaches back that far."""
        if generation < self._log_floor:
            return None
        changed: set[int] = set()
        for gen, slot in reversed(self._log):
            if gen <= generation:
                break
            changed.add(slot)
        return changed

    def _changed(self, slot: int) -> None:
        self.generation += 1
        self._log.append((self.generation, slot))
        while len(self._log) > _CHANGE_LOG:
            self._log_floor = self._log.popleft()[0]

    def platform_of(self, node: str) -> str | None:
        """The node's platform key, ``None`` for a node the table does not know."""
        slot = self._slot_of.get(node)
        return None if slot is None else self._platform.vocab[self._platform.codes[slot]]

    @property
    def platform_vocab(self) -> list[str]:
        """Every platform key a code of :meth:`platform_codes` can stand for (only grows)."""
        return self._platform.vocab

    def platform_codes(self) -> IntArray:
        """Per slot, a code into :attr:`platform_vocab`; one element more than the capacity, so a
        gather with slot ``-1`` (an unknown node) reads the default platform's code, 0."""
        return self._platform.codes

    def platforms(self) -> tuple[str, ...]:
        """The distinct platforms of the table's nodes, sorted."""
        found = self._platforms_cache
        if found is None:
            vocab = self._platform.vocab
            found = self._platforms_cache = tuple(sorted(vocab[c] for c in self._platform_nodes))
        return found

    def _count_platform(self, code: int, delta: int) -> None:
        count = self._platform_nodes.get(code, 0) + delta
        if count:
            self._platform_nodes[code] = count
        else:
            del self._platform_nodes[code]
        if count == 0 or count == delta:  # a platform appeared or disappeared
            self._platforms_cache = None

    # -- writing -----------------------------------------------------------------------------
    @classmethod
    def from_features(cls, features: Iterable[NodeFeatures]) -> FeatureTable:
        table = cls()
        for nf in features:
            table.set_node(nf)
        return table

    def set_node(self, nf: NodeFeatures, platform: str | None = None) -> None:
        """Insert or replace one node's features (incremental: touches only that node's cells) and
        its platform (``None``: told from the features, with the table's default)."""
        slot = self._slot_of.get(nf.node)
        if slot is None:
            slot = self._allocate(nf.node)
            self._write(slot, nf)
        else:
            self._rewrite(slot, self._node_features[slot], nf)
            self._count_platform(int(self._platform.codes[slot]), -1)
        if platform is None:
            platform = platform_from_features(nf, self.default_platform)
        code = self._platform.code_for(platform)
        self._platform.codes[slot] = code
        self._count_platform(code, 1)
        self._changed(slot)

    def remove_node(self, node: str) -> bool:
        slot = self._slot_of.pop(node, None)
        if slot is None:
            return False
        self._clear(slot)
        self._count_platform(int(self._platform.codes[slot]), -1)
        self._names[slot] = None
        self._alive[slot] = False
        self._free.append(slot)
        self._changed(slot)
        return True

    def _allocate(self, node: str) -> int:
        if self._free:
            slot = self._free.pop()
            self._names[slot] = node
        else:
            slot = len(self._names)
            self._names.append(node)
            if slot >= self._capacity:
                self._resize(self._capacity * 2)
        self._slot_of[node] = slot
        self._loose += 1
        self._alive[slot] = True
        return slot

    def _resize(self, size: int) -> None:
        self._capacity = size
        self._alive = _grow(self._alive, size, False)
        codes = np.zeros(size + 1, dtype=np.intp)
        codes[: len(self._platform.codes) - 1] = self._platform.codes[:-1]
        self._platform.codes = codes
        for fc in self._features.values():
            fc.has_flags = _grow(fc.has_flags, size, False)
            fc.has_attrs = _grow(fc.has_attrs, size, False)
            fc.has_instances = _grow(fc.has_instances, size, False)
            for name, col in fc.flags.items():
                fc.flags[name] = _grow(col, size, False)
            for acol in fc.attrs.values():
                acol.grow(size)

    def _columns(self, name: str) -> FeatureColumns:
        fc = self._features.get(name)
        if fc is None:
            cap = self._capacity
            fc = FeatureColumns(
                has_flags=np.zeros(cap, dtype=np.bool_),
                has_attrs=np.zeros(cap, dtype=np.bool_),
                has_instances=np.zeros(cap, dtype=np.bool_),
            )
            self._features[name] = fc
        return fc

    def _write(self, slot: int, nf: NodeFeatures) -> None:
        self._node_features[slot] = nf
        for name, names in nf.flags.items():
            self._write_flags(slot, name, names)
        for name, values in nf.attributes.items():
            self._write_attrs(slot, name, values)
        rows_of: dict[str, list[int]] = {}
        for name, instances in nf.instances.items():
            rows_of[name] = self._write_rows(slot, name, instances)
        self._node_rows[slot] = rows_of

    def _write_flags(self, slot: int, name: str, names: Iterable[str]) -> None:
        fc = self._columns(name)
        fc.has_flags[slot] = True
        for el in names:
            col = fc.flags.get(el)
            if col is None:
                col = fc.flags[el] = np.zeros(self._capacity, dtype=np.bool_)
            col[slot] = True

    def _write_attrs(self, slot: int, name: str, values: Mapping[str, str]) -> None:
        fc = self._columns(name)
        fc.has_attrs[slot] = True
        for key, value in values.items():
            acol = fc.attrs.get(key)
            if acol is None:
                acol = fc.attrs[key] = Column(np.full(self._capacity, -1, dtype=np.intp))
            acol.codes[slot] = acol.code_for(value)

    def _write_rows(self, slot: int, name: str, instances: Iterable[Mapping[str, str]]) -> list[int]:
        fc = self._columns(name)
        fc.has_instances[slot] = True
        return [self._add_row(fc, slot, inst) for inst in instances]

    def _rewrite(self, slot: int, old: NodeFeatures, nf: NodeFeatures) -> None:
        """Replace ``old`` by ``nf`` in ``slot``, touching only the features whose value is not the
        very same object in both (parsing shares equal flag sets and rows between objects, see
        extender/features/nodefeature.py, so an update that changes a kernel version and a module
        list rewrites those two features, not the node's hundreds of other cells). The result is the
        one clearing the slot and writing ``nf`` gives."""
        self._node_features[slot] = nf
        # flags: only the elements that came or went (a module loaded is one cell, not the node's 150)
        for name, names in old.flags.items():
            new = nf.flags.get(name)
            if new is not names:
                fc = self._features[name]
                if new is None:
                    fc.has_flags[slot] = False
                for el in names if new is None else names - new:
                    fc.flags[el][slot] = False
        for name, names in nf.flags.items():
            had = old.flags.get(name)
            if had is not names:
                self._write_flags(slot, name, names if had is None else names - had)
        for name, values in old.attributes.items():
            if nf.attributes.get(name) is not values:
                fc = self._features[name]
                fc.has_attrs[slot] = False
                for key in values:
                    fc.attrs[key].codes[slot] = -1
        for name, values in nf.attributes.items():
            if old.attributes.get(name) is not values:
                self._write_attrs(slot, name, values)
        rows_of = self._node_rows[slot]
        for name, instances in old.instances.items():
            if not _same_rows(nf.instances.get(name), instances):
                self._drop_rows(name, rows_of.pop(name), slot)
        for name, instances in nf.instances.items():
            if name not in rows_of:  # new, or dropped just above
                rows_of[name] = self._write_rows(slot, name, instances)

    def _add_row(self, fc: FeatureColumns, slot: int, attrs: Mapping[str, str]) -> int:
        row = fc.n_rows
        if row >= len(fc.row_node):
            size = max(16, 2 * len(fc.row_node))
            fc.row_node = _grow(fc.row_node, size, -1)
            for c in fc.inst_attrs.values():
                c.grow(size)
        fc.n_rows += 1
        fc.row_node[row] = slot
        for key, value in attrs.items():
            col = fc.inst_attrs.get(key)
            if col is None:
                col = fc.inst_attrs[key] = Column(np.full(len(fc.row_node), -1, dtype=np.intp))
            col.codes[row] = col.code_for(value)
        return row

    def _clear(self, slot: int) -> None:
        nf = self._node_features.pop(slot)
        for name, names in nf.flags.items():
            fc = self._features[name]
            fc.has_flags[slot] = False
            for el in names:
                fc.flags[el][slot] = False
        for name, values in nf.attributes.items():
            fc = self._features[name]
            fc.has_attrs[slot] = False
            for key in values:
                fc.attrs[key].codes[slot] = -1
        for name, rows in self._node_rows.pop(slot).items():
            self._drop_rows(name, rows, slot)

    def _drop_rows(self, name: str, rows: list[int], slot: int) -> None:
        """Kill the instance rows of feature ``name`` that ``slot`` had. Call with ``rows`` already
        out of ``_node_rows``: a compaction renumbers the rows listed there."""
        fc = self._features[name]
        fc.has_instances[slot] = False
        # A dead row is marked by row_node = -1 alone: every reader masks rows by it.
        fc.row_node[rows] = -1
        fc.dead_rows += len(rows)
        if fc.dead_rows > 64 and fc.dead_rows * 2 > fc.n_rows:
            self._compact_rows(name, fc)

    def _compact_rows(self, name: str, fc: FeatureColumns) -> None:
        """Drop dead instance rows once they are the majority (keeps reductions O(live rows))."""
        live = np.flatnonzero(fc.row_node[: fc.n_rows] >= 0)
        remap = {int(old): new for new, old in enumerate(live)}
        fc.row_node = fc.row_node[live].copy()
        for col in fc.inst_attrs.values():
            col.codes = col.codes[live].copy()
        fc.n_rows = len(live)
        fc.dead_rows = 0
        for rows_of in self._node_rows.values():
            rows = rows_of.get(name)
            if rows is not None:
                rows_of[name] = [remap[r] for r in rows]


def table_from_nodefeatures(objs: Iterable[object], nfd_namespace: str | None = None) -> FeatureTable:
    """A table from raw NodeFeature objects (several per node are merged as nfd-master does)."""
    merged = node_features_from_objects(objs, nfd_namespace or DEFAULT_NFD_NAMESPACE)
    return FeatureTable.from_features(merged.values())
