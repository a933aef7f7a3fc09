"""The pass/fail table people read: ``validate-node`` and ``explain`` print it.

It renders the JSON form of an explanation (:meth:`extender.match.explain.Explanation.to_dict`), so
the ``explain`` client can print what a running extender sent without rebuilding objects, and both
commands show the same layout: one block per compatibility set, one table per rule, one row per
expression with what was found on the node. :func:`failures` lists the expressions that made a set
fail, for the JSON output ("what is missing").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from extender.spec.model import MatchExpression

#: Longest cell before it is cut with "...", so one odd value cannot make the table unreadable.
MAX_CELL = 72

_HEADER = ("#", "FEATURE", "EXPRESSION", "MATCHER", "STATUS", "FOUND ON NODE")


def render_expression(expression: Mapping[str, Any]) -> str:
    """``{op: "In", value: ["x"]}``: the JSON form of an expression, rendered as the spec model does."""
    value = tuple(str(v) for v in expression.get("value") or ())
    return MatchExpression(str(expression.get("op", "")), value, str(expression.get("type") or "")).render()


def _cell(text: Any) -> str:
    s = " ".join(str(text).split())  # no newlines or tabs inside a cell
    return s if len(s) <= MAX_CELL else s[: MAX_CELL - 3] + "..."


def _rows(terms: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, ...]]:
    for t in terms:
        feature = str(t.get("feature", ""))
        expressions = t.get("expressions") or []
        if not expressions:  # a term with nothing to check: its status is the term's own
            note = t.get("note") or t.get("error") or ", ".join(t.get("parts") or []) or "absent"
            yield feature, "(feature exists)", "-", str(t.get("status", "")).upper(), note
            continue
        for e in expressions:
            key = e.get("key") or ""
            name = f"{feature}.{key}" if key else feature
            found = str(e.get("found", ""))
            if e.get("error"):
                found = f"{found}; error: {e['error']}"
            yield (
                name,
                render_expression(e.get("expression") or {}),
                "matchName" if e.get("matcher") == "matchName" else "matchExpression",
                str(e.get("status", "")).upper(),
                found,
            )
        if t.get("status") != "matched" and t.get("note"):  # e.g. no one instance satisfies them all
            yield feature, "(the rows above together)", "-", str(t.get("status", "")).upper(), t["note"]


def _table(title: str, groups: Sequence[tuple[str, Sequence[tuple[str, ...]]]]) -> list[str]:
    """``groups``: (label, rows); a label ("matchAny[0]: one of these blocks") opens a block."""
    rows: list[tuple[str, ...] | str] = []  # a str: a block label spanning the table
    n = 0
    for label, group in groups:
        if label:
            rows.append(label)
        for cells in group:
            n += 1
            rows.append((str(n), *(_cell(c) for c in cells)))
    widths = [len(h) for h in _HEADER]
    for item in rows:
        if not isinstance(item, str):
            widths = [max(w, len(c)) for w, c in zip(widths, item, strict=True)]
    inner = sum(widths) + 3 * (len(widths) - 1)
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [title, rule, line(_HEADER), rule]
    for row in rows:
        if isinstance(row, str):
            if len(out) > 4:
                out.append(rule)
            out.append("| " + row.ljust(inner) + " |")
        else:
            out.append(line(row))
    if not rows:
        out.append(line(("", "(nothing to check)", "", "", "", "")))
    out.append(rule)
    return out


def _status(s: Any) -> str:
    return {"matched": "OK", "not matched": "FAIL", "error": "ERROR"}.get(str(s), str(s).upper())


def render_table(explanation: Mapping[str, Any], *, heading: bool = True) -> str:
    """Every selected set of one node's explanation, rule by rule (``heading``: start with the node's
    name and verdict)."""
    sets = explanation.get("sets") or []
    verdict = "COMPATIBLE" if explanation.get("compatible") else "INCOMPATIBLE"
    node = explanation.get("node") or "(this host)"
    known = "" if explanation.get("known", True) else " (no NodeFeature: nothing is known about it)"
    out = [f"NODE {node}{known}: {verdict}"] if heading else []
    if not sets:
        out.append("  no compatibility set selected (check the tags)")
    for s in sets:
        head = f"COMPATIBILITY SET #{s.get('index', 0)}  weight {s.get('weight', 0)}"
        if s.get("tag"):
            head += f"  tag {s['tag']}"
        if out:
            out.append("")
        out.append(f"{head}  - {_status(s.get('status'))}")
        if s.get("description"):
            out.append(f"Description: {s['description']}")
        if s.get("error"):
            out.append(f"Error: {s['error']}")
        for r in s.get("rules") or []:
            title = f"RULE {r.get('name') or '(unnamed)'} - {_status(r.get('status'))}"
            if r.get("error"):
                title += f" ({r['error']})"
            groups: list[tuple[str, Sequence[tuple[str, ...]]]] = []
            any_elems = r.get("matchAny") or []
            if r.get("matchFeatures") or not any_elems:
                label = "matchFeatures: every row must match" if any_elems else ""
                groups.append((label, list(_rows(r.get("matchFeatures") or []))))
            for i, el in enumerate(any_elems):
                groups.append((f"matchAny[{i}]: one of the matchAny blocks must match", list(_rows(el))))
            out.extend(_table(title, groups))
    return "\n".join(out) + "\n"


def failures(set_account: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The expressions that did not match (or failed to evaluate) in the rules that failed."""
    out: list[dict[str, Any]] = []
    for r in set_account.get("rules") or []:
        if r.get("status") == "matched":
            continue
        places: list[tuple[str, Sequence[Mapping[str, Any]]]] = [
            ("matchFeatures", r.get("matchFeatures") or [])
        ]
        places += [(f"matchAny[{i}]", el) for i, el in enumerate(r.get("matchAny") or [])]
        for where, terms in places:
            for t in terms:
                if t.get("status") == "matched":
                    continue
                bad = [e for e in t.get("expressions") or [] if e.get("status") != "matched"]
                if not bad:
                    out.append(
                        {
                            "rule": r.get("name", ""),
                            "in": where,
                            "feature": t.get("feature", ""),
                            "status": t.get("status", ""),
                            "found": t.get("note") or t.get("error") or "",
                        }
                    )
                for e in bad:
                    item = {
                        "rule": r.get("name", ""),
                        "in": where,
                        "feature": t.get("feature", ""),
                        "key": e.get("key", ""),
                        "expression": render_expression(e.get("expression") or {}),
                        "status": e.get("status", ""),
                        "found": e.get("found", ""),
                    }
                    if e.get("error"):
                        item["error"] = e["error"]
                    out.append(item)
    return out
