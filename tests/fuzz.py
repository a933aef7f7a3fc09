"""How many examples the property and fuzz tests run: a bounded default in ``make test``; a long run
with ``COMPAT_FUZZ=long`` (``make fuzz``), or any count with ``COMPAT_FUZZ=<n>`` (a multiplier of each
test's default). ``COMPAT_FUZZ=quick`` (``make mutate``) runs a twentieth of the default, at least 10,
with derandomized draws (``tests/conftest.py`` loads that profile), so that a mutant's verdict is the
same on every run and thousands of mutants can each run the tests that reach them."""

from __future__ import annotations

import os

LONG_FACTOR = 100
QUICK_DIVISOR = 20
QUICK_MINIMUM = 10


def mode() -> str:
    return os.environ.get("COMPAT_FUZZ", "").strip()


def quick() -> bool:
    return mode() == "quick"


def examples(default: int) -> int:
    raw = mode()
    if not raw:
        return default
    if raw == "long":
        return default * LONG_FACTOR
    if raw == "quick":
        return min(default, max(QUICK_MINIMUM, default // QUICK_DIVISOR))
    return default * max(1, int(raw))
