"""The one report of an explanation: the text the server's ``format=text`` answers and the CLI's
``validate-node`` and ``explain`` print, and the ``failures`` the JSON carries, grouped per block.

Everything here reads the JSON form of an explanation
(:meth:`extender.match.explain.Explanation.to_dict`), so the ``explain`` client renders what a
running extender sent exactly as the extender renders its own accounts, without rebuilding objects.

The layout follows what ``nfd compat validate-node`` prints (``docs/nfd-semantics.md`` §6.3) where
the two say the same thing: a ``COMPATIBILITY SET #N Weight: W; Tag: T`` heading and its
``Description:``, then per rule a table titled ``RULE: NAME - OK|FAIL`` with a numbered row per
expression (feature, expression, matcher, status ``OK``/``FAIL``) and the ``matchAny`` blocks
separated by a rule line. What differs from NFD's client, and why:

* set numbers are the set's index in the spec, from 0 (NFD counts the sets it evaluated, from 1), the
  same number the filter's reasons and the JSON ``index`` use;
* a ``NODE name: COMPATIBLE|INCOMPATIBLE`` verdict comes first, and each set heading ends with the
  set's own status; a rule's name is shown as written (NFD upper-cases it);
* a ``FOUND ON NODE`` column says what the node has for each expression (the value, a missing key,
  how many instances match), and a row ``(the rows above together)`` says when a term fails although
  each of its expressions matched on some instance (NFD's per-expression marks would all say OK);
* statuses are ``OK``, ``FAIL``, ``ERROR`` (the expression could not be evaluated; NFD's client stops
  there) and ``SKIPPED`` (not evaluated: the feature is absent, or an earlier matcher failed);
* inside ``matchAny`` each block opens with a label giving its own status and, when it failed, the
  expressions that failed, since one matching block is enough;
* no line is wider than :data:`WIDTH` (120) columns: when the six columns do not fit, what was
  found moves to a line of its own under its row (``found: ...``), the other columns share the width
  and long cells wrap inside their column, long value lists in expressions keep the values that fit
  and ``... N more``, and any other long line wraps with an indented continuation (:func:`fit`);
* a set without a description has no ``Description:`` line;
* plain ASCII, no colours: it goes to logs, files and ``curl`` as often as to a terminal.

:func:`failures` lists what made a set fail, per block: for a failing rule its ``matchFeatures``
when a term there failed, and its ``matchAny`` blocks when none of them matched (a block whose
evaluation failed is listed always). Pure: no I/O.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from extender.spec.model import MatchExpression

#: The widest line of a report.
WIDTH = 120
#: An expression longer than this (or than its column, when the table must be narrowed) shows its
#: first values and "... N more".
EXPRESSION_MAX = 48
#: How many failing expressions a ``matchAny`` block's label names before "... N more".
LABEL_NAMES = 4

MATCHED, FAILED, ERROR, SKIPPED = "matched", "not matched", "error", "not evaluated"
#: An explanation's statuses as the report shows them (NFD's client says OK and FAIL).
WORDS = {MATCHED: "OK", FAILED: "FAIL", ERROR: "ERROR", SKIPPED: "SKIPPED"}

_HEADER = ("#", "FEATURE", "EXPRESSION", "MATCHER", "STATUS", "FOUND ON NODE")
#: The columns that give way when a table is too wide (feature, expression), and how narrow each may
#: become before the other has given way too.
_FLEX = (1, 2)
_FLEX_MIN = (24, 24)


def word(status: Any) -> str:
    return WORDS.get(str(status), str(status).upper())


def render_expression(expression: Mapping[str, Any], max_len: int | None = None) -> str:
    """``{op: "In", value: ["x"]}``: the JSON form of an expression, rendered as the spec model does;
    with ``max_len``, a longer one keeps its first values and says how many more there are."""
    values = tuple(str(v) for v in expression.get("value") or ())
    op, kind = str(expression.get("op", "")), str(expression.get("type") or "")
    full = MatchExpression(op, values, kind).render()
    if max_len is None or len(full) <= max_len or len(values) < 2:
        return full
    tail = f', type: "{kind}"}}' if kind else "}"
    for keep in range(len(values) - 1, 0, -1):
        shown = ", ".join(f'"{v}"' for v in values[:keep])
        text = f'{{op: "{op}", value: [{shown}, ... {len(values) - keep} more]{tail}'
        if len(text) <= max_len or keep == 1:
            return text
    return full  # not reached: the loop returns at keep == 1


def block_status(terms: Sequence[Mapping[str, Any]]) -> str:
    """A block's (a ``matchFeatures`` list's) status: error if a term could not be evaluated, else
    matched when every term matched."""
    statuses = [t.get("status") for t in terms]
    if ERROR in statuses:
        return ERROR
    return MATCHED if all(s == MATCHED for s in statuses) else FAILED


def _failed_items(terms: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What did not match in one block: its expressions that did not, or a term that failed as a
    whole (no single instance satisfies every expression, an error, nothing to check)."""
    out: list[dict[str, Any]] = []
    for t in terms:
        if t.get("status") == MATCHED:
            continue
        feature = t.get("feature", "")
        bad = [e for e in t.get("expressions") or [] if e.get("status") != MATCHED]
        if not bad:
            found = t.get("note") or t.get("error") or ""
            out.append({"feature": feature, "status": t.get("status", ""), "found": found})
        for e in bad:
            item = {
                "feature": feature,
                "key": e.get("key", ""),
                "expression": render_expression(e.get("expression") or {}),
                "status": e.get("status", ""),
                "found": e.get("found", ""),
            }
            if e.get("error"):
                item["error"] = e["error"]
            out.append(item)
    return out


def failures(set_account: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Why a set failed, one entry per block: ``{"rule", "block", "status", "failed": [...]}`` with
    ``block`` ``"matchFeatures"`` or ``"matchAny[i]"`` and, in ``failed``, each expression that did
    not match (``feature``, ``key``, ``expression``, ``status``, ``found``, ``error`` if any) or a
    term that failed as a whole (``feature``, ``status``, ``found``). Empty for a set that matched."""
    out: list[dict[str, Any]] = []
    for r in set_account.get("rules") or []:
        if r.get("status") == MATCHED:
            continue
        blocks: list[tuple[str, Sequence[Mapping[str, Any]]]] = []
        match_features = r.get("matchFeatures") or []
        if block_status(match_features) != MATCHED:
            blocks.append(("matchFeatures", match_features))
        match_any = r.get("matchAny") or []
        statuses = [block_status(el) for el in match_any]
        for i, (el, status) in enumerate(zip(match_any, statuses, strict=True)):
            if status == ERROR or (status == FAILED and MATCHED not in statuses):
                blocks.append((f"matchAny[{i}]", el))
        for where, terms in blocks:
            out.append(
                {
                    "rule": r.get("name", ""),
                    "block": where,
                    "status": block_status(terms),
                    "failed": _failed_items(terms),
                }
            )
    return out


def _name(feature: str, key: str) -> str:
    return f"{feature}.{key}" if key else feature


def _rows(terms: Sequence[Mapping[str, Any]]) -> Iterator[tuple[Any, ...]]:
    """One row per expression (feature, expression, matcher, status, found), and one for a term that
    fails as a whole or has nothing to check. The expression is its JSON form (rendered once the
    table knows how wide its column is), or a note."""
    for t in terms:
        feature = str(t.get("feature", ""))
        expressions = t.get("expressions") or []
        status = word(t.get("status"))
        if not expressions:  # a term with nothing to check: its status is the term's own
            note = t.get("note") or t.get("error") or ", ".join(t.get("parts") or []) or "absent"
            yield feature, "(feature exists)", "-", status, str(note)
            continue
        for e in expressions:
            found = str(e.get("found", ""))
            if e.get("error"):
                found = f"{found}; error: {e['error']}"
            yield (
                _name(feature, str(e.get("key") or "")),
                e.get("expression") or {},
                "matchName" if e.get("matcher") == "matchName" else "matchExpression",
                word(e.get("status")),
                found,
            )
        if t.get("status") != MATCHED:
            why = t.get("note") or (
                t.get("error") if t.get("error") and not any(e.get("error") for e in expressions) else ""
            )
            if why:  # e.g. no one instance satisfies them all
                yield feature, "(the rows above together)", "-", status, str(why)


def _block_label(where: str, terms: Sequence[Mapping[str, Any]], of: int) -> str:
    """``matchAny[i]: FAIL (one of the N blocks must match); failed: a.b, c.d``."""
    status = block_status(terms)
    label = f"{where}: {word(status)} (one of the {of} blocks must match)"
    if status == MATCHED:
        return label
    names = [_name(str(f.get("feature", "")), str(f.get("key") or "")) for f in _failed_items(terms)]
    shown = ", ".join(names[:LABEL_NAMES]) + (
        f", ... {len(names) - LABEL_NAMES} more" if len(names) > LABEL_NAMES else ""
    )
    return f"{label}; {'error in' if status == ERROR else 'failed'}: {shown}"


def _widths(rows: Sequence[tuple[str, ...]], columns: int, width: int) -> list[int]:
    """The first ``columns`` columns' widths: each one's widest cell, FEATURE and EXPRESSION narrowed
    (the one further above its floor first) until the table fits ``width``."""
    widths = [len(h) for h in _HEADER[:columns]]
    for cells in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, cells, strict=False)]
    budget = width - (3 * columns + 1)  # "| " + " | " between cells + " |"
    for floors in (_FLEX_MIN, (8, 8)):
        while sum(widths) > budget:
            excess, col = max((widths[c] - f, c) for c, f in zip(_FLEX, floors, strict=True))
            if excess <= 0:
                break
            widths[col] -= 1
    return widths


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def _table(title: str, groups: Sequence[tuple[str, Sequence[tuple[Any, ...]]]], width: int) -> list[str]:
    """A rule's table: ``groups`` of (label, rows); a label opens a block, on a line of its own.

    Six columns when they fit in ``width`` as they are; else the first five, and what was found on
    the node on a line of its own under each row, spanning the columns after ``#``."""
    numbered: list[tuple[str, ...]] = []
    expressions: list[Mapping[str, Any] | None] = []
    for _, group in groups:
        for feature, expression, *others in group:
            is_expression = isinstance(expression, Mapping)
            expressions.append(expression if is_expression else None)
            shown = render_expression(expression, EXPRESSION_MAX) if is_expression else expression
            cells = (str(len(numbered) + 1), feature, shown, *others)
            numbered.append(tuple(" ".join(str(c).split()) for c in cells))
    widths = _widths(numbered, len(_HEADER), 10**9)
    if sum(widths) + 3 * len(widths) + 1 > width:
        widths = _widths(numbered, len(_HEADER) - 1, width)
        # an expression wider than its column keeps the values that fit
        numbered = [
            row if e is None else (row[0], row[1], render_expression(e, widths[2]), *row[3:])
            for row, e in zip(numbered, expressions, strict=True)
        ]
        widths = _widths(numbered, len(_HEADER) - 1, width)
    inner = sum(widths) + 3 * (len(widths) - 1)
    rest = inner - widths[0] - 3  # the columns after "#"
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def lines(cells: Sequence[str]) -> list[str]:
        wrapped = [_wrap(c, w) for c, w in zip(cells, widths, strict=False)]
        height = max(len(w) for w in wrapped)
        out = [
            "| "
            + " | ".join(
                (col[i] if i < len(col) else "").ljust(w) for col, w in zip(wrapped, widths, strict=True)
            )
            + " |"
            for i in range(height)
        ]
        if len(cells) > len(widths) and cells[len(widths)]:  # the found column, on lines of its own
            blank = " " * widths[0]
            out.extend(f"| {blank} | {part.ljust(rest)} |" for part in _wrap(f"found: {cells[-1]}", rest))
        return out

    out = [*_wrap(title, width), rule, *lines(_HEADER[: len(widths)]), rule]
    header_end = len(out)
    rows = iter(numbered)
    for label, group in groups:
        if label:
            if len(out) > header_end:
                out.append(rule)
            out.extend("| " + part.ljust(inner) + " |" for part in _wrap(label, inner))
        for _ in group:
            out.extend(lines(next(rows)))
    if not numbered:
        out.extend(lines(("", "(nothing to check)", "", "", "", "")))
    out.append(rule)
    return out


def _rule_groups(r: Mapping[str, Any]) -> list[tuple[str, Sequence[tuple[Any, ...]]]]:
    groups: list[tuple[str, Sequence[tuple[Any, ...]]]] = []
    match_any = r.get("matchAny") or []
    match_features = r.get("matchFeatures") or []
    if match_features or not match_any:
        label = ""
        if match_any:
            label = f"matchFeatures: {word(block_status(match_features))} (every term must match)"
        groups.append((label, list(_rows(match_features))))
    for i, el in enumerate(match_any):
        groups.append((_block_label(f"matchAny[{i}]", el, len(match_any)), list(_rows(el))))
    return groups


def render(explanation: Mapping[str, Any], *, heading: bool = True, width: int = WIDTH) -> str:
    """Every selected set of one node's explanation, rule by rule, as a table per rule (``heading``:
    start with the node's name and verdict). No line is wider than ``width``."""
    sets = explanation.get("sets") or []
    out: list[str] = []
    if heading:
        verdict = "COMPATIBLE" if explanation.get("compatible") else "INCOMPATIBLE"
        node = explanation.get("node") or "(this host)"
        known = "" if explanation.get("known", True) else " (no NodeFeature: nothing is known about it)"
        out.append(f"NODE {node}{known}: {verdict}")
    if not sets:
        out.append("  no compatibility set selected (check the tags)")
    for s in sets:
        head = f"COMPATIBILITY SET #{s.get('index', 0)} Weight: {s.get('weight', 0)}"
        if s.get("tag"):
            head += f"; Tag: {s['tag']}"
        if out:
            out.append("")
        out.append(f"{head} - {word(s.get('status'))}")
        if s.get("description"):
            out.append(f"Description: {s['description']}")
        if s.get("error"):
            out.append(f"Error: {s['error']}")
        for r in s.get("rules") or []:
            title = f"RULE: {r.get('name') or '(unnamed)'} - {word(r.get('status'))}"
            if r.get("error"):
                title += f" ({r['error']})"
            out.extend(_table(title, _rule_groups(r), width))
    return fit("\n".join(out), width) + "\n"


def fit(text: str, width: int = WIDTH) -> str:
    """``text`` with every line wider than ``width`` wrapped at spaces (a word longer than a line is
    cut), its continuation lines indented four more than the line; the other lines as they are."""
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip(" "))]
        if len(indent) > width // 2:
            indent = ""
        out.extend(
            textwrap.wrap(
                line.strip(" "),
                width,
                initial_indent=indent,
                subsequent_indent=indent + "    ",
                break_long_words=True,
                break_on_hyphens=False,
            )
        )
    return "\n".join(out)
