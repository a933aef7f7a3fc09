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
from extender.match.result import Status
from extender.match.table import BoolArray, Column, Columns, FeatureColumns
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
    value_results: list[bool] = field(default_factory=list)
    value_errors: list[bool] = field(default_factory=list)
    results_by_code: BoolArray | None = None
    errors_by_code: BoolArray | None = None
    any_error: bool = False


_MEMO_LIMIT = 512  # expressions remembered per column before the memo starts over


def _vocab_eval(col: Column, expr: MatchExpression) -> tuple[BoolArray, BoolArray | None]:
    memo_entry: _VocabResult | None = col.memo.get(expr)
    if memo_entry is None:
        if len(col.memo) >= _MEMO_LIMIT:
            col.memo.clear()
        memo_entry = col.memo[expr] = _VocabResult()
    vocab_size = len(col.vocab)
    if memo_entry.results_by_code is None or len(memo_entry.value_results) != vocab_size:
        for value in col.vocab[len(memo_entry.value_results) :]:
            value_result, value_error = _scalar(expr, True, value)
            memo_entry.value_results.append(value_result)
            memo_entry.value_errors.append(value_error)
        # key absent: the last slot, where code -1 lands
        absent_result, absent_error = _scalar(expr, False, None)
        memo_entry.results_by_code = np.array([*memo_entry.value_results, absent_result], dtype=np.bool_)
        memo_entry.errors_by_code = np.array([*memo_entry.value_errors, absent_error], dtype=np.bool_)
        memo_entry.any_error = bool(memo_entry.errors_by_code.any())
    assert memo_entry.errors_by_code is not None
    return memo_entry.results_by_code, (memo_entry.errors_by_code if memo_entry.any_error else None)


@dataclass(slots=True)
class _Ctx:
    table: Columns
    n_slots: int
    backref: FeatureColumns | None = None  # rule.matched as seen after the first rule

    def zeros(self) -> BoolArray:
        return np.zeros(self.n_slots, dtype=np.bool_)

    def ones(self) -> BoolArray:
        return np.ones(self.n_slots, dtype=np.bool_)

    def lookup(self, key: str) -> FeatureColumns | None:
        if key == RULE_BACKREF_FEATURE and self.backref is not None:
            return self.backref
        return self.table.feature(key)

    def gather(
        self, col: Column | None, expr: MatchExpression, length: int
    ) -> tuple[BoolArray, BoolArray | None]:
        """Per element: the expression's result, and its error mask (None: no element can error)."""
        if col is None:
            absent_result, absent_error = _scalar(expr, False, None)
            return np.full(length, absent_result, dtype=np.bool_), (
                np.ones(length, dtype=np.bool_) if absent_error else None
            )
        results_by_code, errors_by_code = _vocab_eval(col, expr)
        codes = col.codes[:length]
        return results_by_code[codes], (None if errors_by_code is None else errors_by_code[codes])


def _match_multi(
    ctx: _Ctx, feature_cols: FeatureColumns, exprs: tuple[tuple[str, MatchExpression], ...]
) -> tuple[BoolArray, BoolArray]:
    has_flags, has_attrs = feature_cols.has_flags, feature_cols.has_attrs
    flags_attrs_match = has_flags | has_attrs
    errors = ctx.zeros()
    for key, expr in exprs:
        flag_column = feature_cols.flags.get(key)
        flag_result, flag_error = _scalar(expr, True, None)
        absent_result, absent_error = _scalar(expr, False, None)
        if flag_column is None:
            match_by_flag = np.full(ctx.n_slots, absent_result, dtype=np.bool_)
            error_by_flag = np.full(ctx.n_slots, absent_error, dtype=np.bool_)
        else:
            match_by_flag = np.where(flag_column, flag_result, absent_result)
            error_by_flag = np.where(flag_column, flag_error, absent_error)
        match_by_attr, error_by_attr = ctx.gather(feature_cols.attrs.get(key), expr, ctx.n_slots)
        is_does_not_exist = expr.op == "DoesNotExist"
        errors |= has_flags & error_by_flag
        if is_does_not_exist:
            if error_by_attr is not None:
                errors |= has_attrs & ~(has_flags & ~match_by_flag) & error_by_attr
            expr_match = (
                ((has_flags & match_by_flag) | (has_attrs & match_by_attr))
                & ~(has_flags & ~match_by_flag)
                & ~(has_attrs & ~match_by_attr)
            )
        else:
            if error_by_attr is not None:
                errors |= has_attrs & error_by_attr
            expr_match = (has_flags & match_by_flag) | (has_attrs & match_by_attr)
        flags_attrs_match &= expr_match
    if feature_cols.n_rows:
        row_nodes = feature_cols.row_node[: feature_cols.n_rows]
        live_rows = row_nodes >= 0
        row_match = live_rows.copy()
        row_errors = np.zeros(feature_cols.n_rows, dtype=np.bool_)
        for key, expr in exprs:
            expr_row_match, expr_row_errors = ctx.gather(
                feature_cols.inst_attrs.get(key), expr, feature_cols.n_rows
            )
            row_match &= expr_row_match
            if expr_row_errors is not None:
                row_errors |= expr_row_errors
        instance_match = np.bincount(row_nodes[row_match], minlength=ctx.n_slots)[: ctx.n_slots] > 0
        if row_errors.any():
            errors |= np.bincount(row_nodes[row_errors & live_rows], minlength=ctx.n_slots)[: ctx.n_slots] > 0
        return flags_attrs_match | instance_match, errors
    return flags_attrs_match, errors


def _match_names(
    ctx: _Ctx, feature_cols: FeatureColumns, expr: MatchExpression
) -> tuple[BoolArray, BoolArray]:
    results_by_name = feature_cols.name_memo.get(expr)
    if results_by_name is None:
        if len(feature_cols.name_memo) >= _MEMO_LIMIT:
            feature_cols.name_memo.clear()
        results_by_name = feature_cols.name_memo[expr] = {}

    def named(name: str) -> tuple[bool, bool]:
        result_and_error = results_by_name.get(name)
        if result_and_error is None:
            result_and_error = results_by_name[name] = _scalar(expr, True, name)
        return result_and_error

    matched, errors = ctx.zeros(), ctx.zeros()
    for name, flag_column in feature_cols.flags.items():
        name_matched, name_erred = named(name)
        if name_matched:
            matched |= flag_column
        if name_erred:
            errors |= flag_column
    for name, col in feature_cols.attrs.items():
        name_matched, name_erred = named(name)
        if name_matched or name_erred:
            has_key = col.codes[: ctx.n_slots] >= 0
            if name_matched:
                matched |= has_key
            if name_erred:
                errors |= has_key
    if feature_cols.n_rows:
        row_nodes = feature_cols.row_node[: feature_cols.n_rows]
        row_matched = np.zeros(feature_cols.n_rows, dtype=np.bool_)
        row_errors = np.zeros(feature_cols.n_rows, dtype=np.bool_)
        for name, col in feature_cols.inst_attrs.items():
            name_matched, name_erred = named(name)
            if name_matched or name_erred:
                has_key = (col.codes[: feature_cols.n_rows] >= 0) & (row_nodes >= 0)
                if name_matched:
                    row_matched |= has_key
                if name_erred:
                    row_errors |= has_key
        matched |= np.bincount(row_nodes[row_matched], minlength=ctx.n_slots)[: ctx.n_slots] > 0
        errors |= np.bincount(row_nodes[row_errors], minlength=ctx.n_slots)[: ctx.n_slots] > 0
    return matched, errors


def _match_terms(ctx: _Ctx, terms: tuple[FeatureTerm, ...]) -> tuple[BoolArray, BoolArray]:
    is_match, stale_match, errors = ctx.ones(), ctx.ones(), ctx.zeros()
    for term in terms:
        feature_cols = ctx.lookup(term.feature_key)
        if feature_cols is None:
            is_match[:] = False
            continue
        feature_exists = feature_cols.has_flags | feature_cols.has_attrs | feature_cols.has_instances
        if term.match_expressions is not None:
            term_match, term_errors = _match_multi(ctx, feature_cols, term.match_expressions)
            errors |= feature_exists & term_errors
        else:
            term_match = stale_match  # NFD's stale flag: the previous evaluated term's result
        if term.match_name is not None:
            names_evaluated = feature_exists & term_match
            name_match, name_errors = _match_names(ctx, feature_cols, term.match_name)
            errors |= names_evaluated & name_errors
            term_match = term_match & name_match
        stale_match = np.where(feature_exists, term_match, stale_match)
        is_match &= feature_exists & term_match
    return is_match, errors


def _eval_rule(ctx: _Ctx, rule: Rule) -> tuple[BoolArray, BoolArray, BoolArray]:
    """(matched, error, returns_vars) per node slot."""
    errors = ctx.zeros()
    any_element_matched = ctx.zeros()
    for element in rule.match_any:
        element_match, element_errors = _match_terms(ctx, element)
        any_element_matched |= element_match
        errors |= element_errors
    features_match = ctx.ones()
    if rule.match_features:
        features_match, features_errors = _match_terms(ctx, rule.match_features)
        errors |= features_errors
    matched = (any_element_matched if rule.match_any else ctx.ones()) & features_match & ~errors
    return matched, errors, features_match & ~errors


def _start_backref(ctx: _Ctx) -> FeatureColumns:
    """rule.matched after the first rule: the node's own attributes of that name (if any) as the
    base, present on every node, with copied columns that rules' vars are written into."""
    base_cols = ctx.table.feature(RULE_BACKREF_FEATURE)
    n_slots = ctx.n_slots
    backref_cols = FeatureColumns(
        has_flags=np.zeros(n_slots, np.bool_),
        has_attrs=np.ones(n_slots, np.bool_),
        has_instances=np.zeros(n_slots, np.bool_),
    )
    if base_cols is not None:
        backref_cols.has_flags, backref_cols.flags = base_cols.has_flags, base_cols.flags
        backref_cols.has_instances, backref_cols.row_node, backref_cols.n_rows, backref_cols.inst_attrs = (
            base_cols.has_instances,
            base_cols.row_node,
            base_cols.n_rows,
            base_cols.inst_attrs,
        )
        for key, col in base_cols.attrs.items():
            backref_cols.attrs[key] = Column(col.codes.copy(), list(col.vocab), dict(col.index))
    return backref_cols


def evaluate_table(spec: Spec, table: Columns, set_indexes: tuple[int, ...]) -> StatusMatrix:
    """Status of every selected set on every node slot of ``table`` (rows = slots): a
    :class:`~extender.match.table.FeatureTable`, or some of its slots (``table.subset(slots)``)."""
    ctx = _Ctx(table=table, n_slots=table.capacity)
    status = np.zeros((ctx.n_slots, len(set_indexes)), dtype=np.int8)
    for set_col, set_index in enumerate(set_indexes):
        all_rules_matched, any_rule_erred = ctx.ones(), ctx.zeros()
        for rule in spec.compatibilities[set_index].rules:
            matched, rule_errors, returns_vars = _eval_rule(ctx, rule)
            all_rules_matched &= matched
            any_rule_erred |= rule_errors
            if ctx.backref is None:
                ctx.backref = _start_backref(ctx)
            for key, value in rule.vars:
                var_col = ctx.backref.attrs.get(key)
                if var_col is None:
                    var_col = ctx.backref.attrs[key] = Column(np.full(ctx.n_slots, -1, dtype=np.intp))
                var_col.codes[returns_vars] = var_col.code_for(value)
        # .value: a plain int stays int8 under NEP 50; the IntEnum member itself would widen to int64
        status[:, set_col] = np.where(any_rule_erred, Status.ERROR.value, all_rules_matched.astype(np.int8))
    return status


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
