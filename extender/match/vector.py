"""The vectorized matcher: a compiled walk of the spec over the whole :class:`FeatureTable`.

Every boolean below is an array over node slots. The control flow is the reference evaluator's
(``reference.py``), lifted from one node to all of them:

* an expression on an attribute key is evaluated once per *distinct value* in the key's vocabulary
  (with the reference's own ``eval_expression``; results are memoised on the column and extended when
  the vocabulary grows) and then gathered by the per-node codes; the "key absent" answer sits in the
  last slot, where code ``-1`` lands;
* an instance term is evaluated per instance row and reduced per node with ``bincount``;
* ``matchName`` is evaluated once per distinct element name;
* NFD's stale per-term flag and the ``rule.matched`` back-references are threaded per node.

Only statuses are computed here. The message of an ERROR cell comes from the reference evaluator
on demand (errors are rare, and this keeps messages identical between the two implementations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from extender.errors import EvaluationError
from extender.match.reference import eval_expression
from extender.match.table import BoolArray, Column, FeatureColumns, FeatureTable
from extender.spec.model import RULE_BACKREF_FEATURE, FeatureTerm, MatchExpression, Rule, Spec

StatusMatrix = npt.NDArray[np.int8]


def _scalar(expr: MatchExpression, present: bool, value: str | None) -> tuple[bool, bool]:
    """(result, error) of the reference's one-element evaluation."""
    try:
        return eval_expression(expr, present, value), False
    except EvaluationError:
        return False, True


@dataclass(slots=True)
class _VocabResult:
    res: list[bool] = field(default_factory=list)
    err: list[bool] = field(default_factory=list)
    res_arr: BoolArray | None = None
    err_arr: BoolArray | None = None
    any_err: bool = False


_MEMO_LIMIT = 512  # expressions remembered per column before the memo starts over


def _vocab_eval(col: Column, expr: MatchExpression) -> tuple[BoolArray, BoolArray | None]:
    vr: _VocabResult | None = col.memo.get(expr)
    if vr is None:
        if len(col.memo) >= _MEMO_LIMIT:
            col.memo.clear()
        vr = col.memo[expr] = _VocabResult()
    n = len(col.vocab)
    if vr.res_arr is None or len(vr.res) != n:
        for value in col.vocab[len(vr.res) :]:
            r, e = _scalar(expr, True, value)
            vr.res.append(r)
            vr.err.append(e)
        ra, ea = _scalar(expr, False, None)  # key absent: the last slot, where code -1 lands
        vr.res_arr = np.array([*vr.res, ra], dtype=np.bool_)
        vr.err_arr = np.array([*vr.err, ea], dtype=np.bool_)
        vr.any_err = bool(vr.err_arr.any())
    assert vr.err_arr is not None
    return vr.res_arr, (vr.err_arr if vr.any_err else None)


@dataclass(slots=True)
class _Ctx:
    table: FeatureTable
    n: int
    backref: FeatureColumns | None = None  # rule.matched as seen after the first rule

    def zeros(self) -> BoolArray:
        return np.zeros(self.n, dtype=np.bool_)

    def ones(self) -> BoolArray:
        return np.ones(self.n, dtype=np.bool_)

    def lookup(self, key: str) -> FeatureColumns | None:
        if key == RULE_BACKREF_FEATURE and self.backref is not None:
            return self.backref
        return self.table.feature(key)

    def gather(
        self, col: Column | None, expr: MatchExpression, length: int
    ) -> tuple[BoolArray, BoolArray | None]:
        """Per element: the expression's result, and its error mask (None: no element can error)."""
        if col is None:
            r, e = _scalar(expr, False, None)
            return np.full(length, r, dtype=np.bool_), (np.ones(length, dtype=np.bool_) if e else None)
        res, err = _vocab_eval(col, expr)
        codes = col.codes[:length]
        return res[codes], (None if err is None else err[codes])


def _match_multi(
    ctx: _Ctx, fc: FeatureColumns, exprs: tuple[tuple[str, MatchExpression], ...]
) -> tuple[BoolArray, BoolArray]:
    has_f, has_a = fc.has_flags, fc.has_attrs
    fa = has_f | has_a
    err = ctx.zeros()
    for key, e in exprs:
        member = fc.flags.get(key)
        rp, ep = _scalar(e, True, None)
        ra, ea = _scalar(e, False, None)
        if member is None:
            match_k = np.full(ctx.n, ra, dtype=np.bool_)
            err_k = np.full(ctx.n, ea, dtype=np.bool_)
        else:
            match_k = np.where(member, rp, ra)
            err_k = np.where(member, ep, ea)
        match_v, err_v = ctx.gather(fc.attrs.get(key), e, ctx.n)
        dne = e.op == "DoesNotExist"
        err |= has_f & err_k
        if dne:
            if err_v is not None:
                err |= has_a & ~(has_f & ~match_k) & err_v
            ok = ((has_f & match_k) | (has_a & match_v)) & ~(has_f & ~match_k) & ~(has_a & ~match_v)
        else:
            if err_v is not None:
                err |= has_a & err_v
            ok = (has_f & match_k) | (has_a & match_v)
        fa &= ok
    if fc.n_rows:
        rows = fc.row_node[: fc.n_rows]
        live = rows >= 0
        row_ok = live.copy()
        row_err = np.zeros(fc.n_rows, dtype=np.bool_)
        for key, e in exprs:
            r, er = ctx.gather(fc.inst_attrs.get(key), e, fc.n_rows)
            row_ok &= r
            if er is not None:
                row_err |= er
        inst = np.bincount(rows[row_ok], minlength=ctx.n)[: ctx.n] > 0
        if row_err.any():
            err |= np.bincount(rows[row_err & live], minlength=ctx.n)[: ctx.n] > 0
        return fa | inst, err
    return fa, err


def _match_names(ctx: _Ctx, fc: FeatureColumns, expr: MatchExpression) -> tuple[BoolArray, BoolArray]:
    memo = fc.name_memo.get(expr)
    if memo is None:
        if len(fc.name_memo) >= _MEMO_LIMIT:
            fc.name_memo.clear()
        memo = fc.name_memo[expr] = {}

    def named(name: str) -> tuple[bool, bool]:
        hit = memo.get(name)
        if hit is None:
            hit = memo[name] = _scalar(expr, True, name)
        return hit

    res, err = ctx.zeros(), ctx.zeros()
    for name, member in fc.flags.items():
        r, e = named(name)
        if r:
            res |= member
        if e:
            err |= member
    for name, col in fc.attrs.items():
        r, e = named(name)
        if r or e:
            present = col.codes[: ctx.n] >= 0
            if r:
                res |= present
            if e:
                err |= present
    if fc.n_rows:
        rows = fc.row_node[: fc.n_rows]
        row_res = np.zeros(fc.n_rows, dtype=np.bool_)
        row_err = np.zeros(fc.n_rows, dtype=np.bool_)
        for name, col in fc.inst_attrs.items():
            r, e = named(name)
            if r or e:
                present = (col.codes[: fc.n_rows] >= 0) & (rows >= 0)
                if r:
                    row_res |= present
                if e:
                    row_err |= present
        res |= np.bincount(rows[row_res], minlength=ctx.n)[: ctx.n] > 0
        err |= np.bincount(rows[row_err], minlength=ctx.n)[: ctx.n] > 0
    return res, err


def _match_terms(ctx: _Ctx, terms: tuple[FeatureTerm, ...]) -> tuple[BoolArray, BoolArray]:
    is_match, stale, err = ctx.ones(), ctx.ones(), ctx.zeros()
    for term in terms:
        fc = ctx.lookup(term.feature_key)
        if fc is None:
            is_match[:] = False
            continue
        exists = fc.has_flags | fc.has_attrs | fc.has_instances
        if term.match_expressions is not None:
            tm, e = _match_multi(ctx, fc, term.match_expressions)
            err |= exists & e
        else:
            tm = stale  # NFD's stale flag: the previous evaluated term's result
        if term.match_name is not None:
            gate = exists & tm
            nm, ne = _match_names(ctx, fc, term.match_name)
            err |= gate & ne
            tm = tm & nm
        stale = np.where(exists, tm, stale)
        is_match &= exists & tm
    return is_match, err


def _eval_rule(ctx: _Ctx, rule: Rule) -> tuple[BoolArray, BoolArray, BoolArray]:
    """(matched, error, returns_vars) per node slot."""
    err = ctx.zeros()
    any_ok = ctx.zeros()
    for element in rule.match_any:
        r, e = _match_terms(ctx, element)
        any_ok |= r
        err |= e
    mf = ctx.ones()
    if rule.match_features:
        mf, e = _match_terms(ctx, rule.match_features)
        err |= e
    matched = (any_ok if rule.match_any else ctx.ones()) & mf & ~err
    return matched, err, mf & ~err


def _start_backref(ctx: _Ctx) -> FeatureColumns:
    """rule.matched after the first rule: the node's own attributes of that name (if any) as the
    base, present on every node, with copied columns that rules' vars are written into."""
    base = ctx.table.feature(RULE_BACKREF_FEATURE)
    n = ctx.n
    fc = FeatureColumns(
        has_flags=np.zeros(n, np.bool_), has_attrs=np.ones(n, np.bool_), has_instances=np.zeros(n, np.bool_)
    )
    if base is not None:
        fc.has_flags, fc.flags = base.has_flags, base.flags
        fc.has_instances, fc.row_node, fc.n_rows, fc.inst_attrs = (
            base.has_instances,
            base.row_node,
            base.n_rows,
            base.inst_attrs,
        )
        for key, col in base.attrs.items():
            fc.attrs[key] = Column(col.codes.copy(), list(col.vocab), dict(col.index))
    return fc


def evaluate_table(spec: Spec, table: FeatureTable, set_indexes: tuple[int, ...]) -> StatusMatrix:
    """Status of every selected set on every node slot of ``table`` (rows = slots)."""
    ctx = _Ctx(table=table, n=table.capacity)
    out = np.zeros((ctx.n, len(set_indexes)), dtype=np.int8)
    for col_i, idx in enumerate(set_indexes):
        ok, bad = ctx.ones(), ctx.zeros()
        for rule in spec.compatibilities[idx].rules:
            matched, err, returns_vars = _eval_rule(ctx, rule)
            ok &= matched
            bad |= err
            if ctx.backref is None:
                ctx.backref = _start_backref(ctx)
            for key, value in rule.vars:
                col = ctx.backref.attrs.get(key)
                if col is None:
                    col = ctx.backref.attrs[key] = Column(np.full(ctx.n, -1, dtype=np.intp))
                col.codes[returns_vars] = col.code_for(value)
        out[:, col_i] = np.where(bad, 2, ok.astype(np.int8))
    return out


class LazyErrors(Mapping[tuple[int, int], str]):
    """ERROR cells' messages, computed by the reference evaluator the first time they are read."""

    def __init__(self, cells: list[tuple[int, int]], explain_row: Callable[[int], list[str]]) -> None:
        self._cells = cells
        self._cell_set = frozenset(cells)
        self._explain_row = explain_row
        self._rows: dict[int, list[str]] = {}

    def __getitem__(self, key: tuple[int, int]) -> str:
        if key not in self._cell_set:
            raise KeyError(key)
        row, col = key
        if row not in self._rows:
            self._rows[row] = self._explain_row(row)
        return self._rows[row][col]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self._cells)

    def __len__(self) -> int:
        return len(self._cells)
