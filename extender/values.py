"""Value parsing exactly as NFD's Go code does it: integers like ``strconv.Atoi``, versions like
Masterminds ``semver.NewVersion`` in its default coerce mode (pre-release dropped afterwards), and
regular expressions in Go's RE2 dialect through ``google-re2``.

Each parser returns ``None`` for "NFD would error here"; the caller decides where that error
surfaces (it depends on the op and on whether the element has a value at all).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Protocol

import re2

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1

# strconv.Atoi: optional sign, then ASCII digits only (no spaces, '_', unicode digits, empty).
_ATOI = re.compile(r"[+-]?[0-9]+", re.ASCII)

# Masterminds semver v3 "loose" pattern used by coerceNewVersion (anchored at both ends). Minor and
# patch are captured without their dot (the groups keep their numbers).
_LOOSE_SEMVER = re.compile(
    r"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?"
    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
    r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?",
    re.ASCII,
)

Version = tuple[int, int, int]


def parse_go_int(text: str) -> int | None:
    """``strconv.Atoi`` on a 64-bit platform: the integer, or ``None`` where Go returns an error."""
    if _ATOI.fullmatch(text) is None:
        return None
    value = int(text)  # ASCII digits with an optional sign: int() reads exactly that, in base 10
    if value < INT64_MIN or value > INT64_MAX:
        return None
    return value


def _prerelease_ok(pre: str) -> bool:
    # validatePrerelease: a purely numeric identifier must not start with '0' (unless it is "0"); the
    # loose pattern already made the identifiers non-empty and restricted their alphabet.
    for ident in pre.split("."):
        if ident.isascii() and ident.isdigit() and len(ident) > 1 and ident[0] == "0":
            return False
    return True


def parse_version(text: str) -> Version | None:
    """NFD's ``extractVersion``: ``semver.NewVersion`` (coerce mode), then the pre-release is
    dropped. Build metadata never takes part in comparisons, so a version is just
    ``(major, minor, patch)`` compared as unsigned 64-bit numbers. ``None`` = Go error."""
    m = _LOOSE_SEMVER.fullmatch(text)
    if m is None:
        return None
    parts: list[int] = []
    for group in (m.group(1), m.group(2), m.group(3)):
        if not group:
            parts.append(0)
            continue
        n = int(group)
        if n > UINT64_MAX:
            return None
        parts.append(n)
    pre = m.group(5)
    if pre and not _prerelease_ok(pre):
        return None
    return (parts[0], parts[1], parts[2])


class CompiledRegexp(Protocol):
    def search(self, text: str) -> Any: ...


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> CompiledRegexp | None:
    try:
        return re2.compile(pattern, options=_re2_options())  # type: ignore[no-any-return]
    except re2.error:
        return None


def _re2_options() -> Any:
    """Built for each compilation (compiled patterns are cached, so this is rare), not once at import:
    every line here is then exercised by the tests that compile a pattern."""
    opts = re2.Options()
    # Go's regexp: UTF-8, longest_match off (leftmost-first), '.' does not match '\n' unless (?s),
    # '$' is end of text unless (?m). These are RE2's defaults; spelled out so they cannot drift.
    opts.longest_match = False
    opts.posix_syntax = False
    opts.dot_nl = False
    opts.never_nl = False
    opts.case_sensitive = True
    opts.log_errors = False
    # Memory budget for one compiled program (bytes); a hostile pattern fails to compile instead
    # of eating the process. Go has no such cap, so an NFD-valid pattern this large would be an
    # error here; 8 MiB is RE2's own default and far above anything a real spec needs.
    opts.max_mem = 8 << 20
    return opts


def compile_regexp(pattern: str) -> CompiledRegexp | None:
    """Compile a Go-dialect pattern with RE2 (linear-time matching, cached by pattern text as
    nfd-master caches it). ``None`` = NFD would report an invalid regexp."""
    return _compile(pattern)


def regexp_search(compiled: CompiledRegexp, text: str) -> bool:
    """Unanchored search, like Go's ``MatchString``."""
    return compiled.search(text) is not None
