"""An independent oracle for one NFD expression on one element.

Written from ``docs/nfd-semantics.md`` §2 alone, sharing no code with the matcher: it imports
nothing from ``extender``, parses integers and versions its own way (character checks and
``str.partition`` instead of the matcher's regular expressions) and compares through a sign
instead of one branch per op. It answers one of three words, never raises, and is small enough to
check by reading. Tests hold both implementations to it (``tests/test_operator_oracle.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import re2

TRUE: Final = "true"
FALSE: Final = "false"
ERROR: Final = "error"


@dataclass(frozen=True, slots=True)
class Missing:
    """The key (or flag name) is not there."""


@dataclass(frozen=True, slots=True)
class Flag:
    """A flag that is there: present, with no value."""


@dataclass(frozen=True, slots=True)
class Value:
    """An attribute, or an instance's attribute, that is there with this value."""

    text: str


Element = Missing | Flag | Value

KNOWN_OPS: Final = (
    "",
    "In",
    "NotIn",
    "InRegexp",
    "Exists",
    "DoesNotExist",
    "Gt",
    "Ge",
    "Lt",
    "Le",
    "GtLt",
    "GeLe",
    "IsTrue",
    "IsFalse",
)
_DIGITS: Final = frozenset("0123456789")
_IDENT_CHARS: Final = _DIGITS | frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")


def atoi(text: str) -> int | None:
    """Go's ``strconv.Atoi`` on 64 bits: an optional sign, then one or more ASCII digits."""
    sign, body = (text[0], text[1:]) if text[:1] in ("+", "-") else ("+", text)
    if not body or not set(body) <= _DIGITS:
        return None
    number = int(body) if sign == "+" else -int(body)
    return number if -(2**63) <= number <= 2**63 - 1 else None


def _identifiers_ok(text: str, *, numeric_without_leading_zero: bool) -> bool:
    for ident in text.split("."):
        if not ident or not set(ident) <= _IDENT_CHARS:
            return False
        if numeric_without_leading_zero and set(ident) <= _DIGITS and len(ident) > 1 and ident[0] == "0":
            return False
    return True


def semver(text: str) -> tuple[int, int, int] | None:
    """Masterminds ``NewVersion`` (coerce mode) with the pre-release dropped: ``v`` optional, one to
    three numeric parts, then optional ``-pre`` and ``+build``; numbers are unsigned 64-bit."""
    rest = text[1:] if text.startswith("v") else text
    rest, plus, build = rest.partition("+")
    if plus and not _identifiers_ok(build, numeric_without_leading_zero=False):
        return None
    core, dash, pre = rest.partition("-")
    if dash and not _identifiers_ok(pre, numeric_without_leading_zero=True):
        return None
    parts = core.split(".")
    if len(parts) > 3 or any(not p or not set(p) <= _DIGITS for p in parts):
        return None
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    if any(n > 2**64 - 1 for n in numbers):
        return None
    return (numbers[0], numbers[1], numbers[2])


def _word(condition: bool) -> str:
    return TRUE if condition else FALSE


def _sign(a: object, b: object) -> int:
    return int(a > b) - int(a < b)  # type: ignore[operator]


# For each ordering op: how many values it takes, and which signs of (input - bound) pass.
_ORDERING: Final[dict[str, tuple[tuple[int, ...], ...]]] = {
    "Gt": ((1,),),
    "Ge": ((0, 1),),
    "Lt": ((-1,),),
    "Le": ((-1, 0),),
    "GtLt": ((1,), (-1,)),  # above the first bound and below the second
    "GeLe": ((0, 1), (-1, 0)),
}


def evaluate(op: str, values: tuple[str, ...], value_type: str, element: Element) -> str:
    """``true``, ``false`` or ``error`` for expression ``{op, value: values, type: value_type}`` on
    ``element`` (docs/nfd-semantics.md §2.1-§2.8)."""
    if op not in KNOWN_OPS:
        return ERROR
    present = not isinstance(element, Missing)
    if op in ("", "Exists", "DoesNotExist"):
        if values:
            return ERROR
        return TRUE if op == "" else _word(present if op == "Exists" else not present)
    if not isinstance(element, Value):
        return FALSE  # absent, or a flag: no value to compare, nothing else is looked at
    text = element.text
    if op in ("In", "NotIn"):
        if not values:
            return ERROR
        return _word((text in values) == (op == "In"))
    if op == "InRegexp":
        if not values:
            return ERROR
        compiled = []
        for pattern in values:
            try:
                compiled.append(re2.compile(pattern))
            except re2.error:
                return ERROR
        return _word(any(c.search(text) is not None for c in compiled))
    if op in ("IsTrue", "IsFalse"):
        if values:
            return ERROR
        return _word(text == ("true" if op == "IsTrue" else "false"))
    wanted = _ORDERING[op]
    if len(values) != len(wanted):
        return ERROR
    parse = {"": atoi, "version": semver}.get(value_type)
    if parse is None:
        return ERROR
    x = parse(text)
    bounds = [parse(v) for v in values]
    if x is None or any(b is None for b in bounds):
        return ERROR
    if value_type == "" and len(bounds) == 2 and not bounds[0] < bounds[1]:  # type: ignore[operator]
        return ERROR  # integer ranges need lower < upper; version ranges do not
    return _word(all(_sign(x, b) in signs for b, signs in zip(bounds, wanted, strict=True)))


def evaluate_names(op: str, values: tuple[str, ...], value_type: str, names: list[str]) -> str:
    """``matchName`` (docs/nfd-semantics.md §3.3): the expression on every name, each present with
    itself as value; an error on any name wins, then any name passing."""
    words = {evaluate(op, values, value_type, Value(name)) for name in names}
    return ERROR if ERROR in words else _word(TRUE in words)
