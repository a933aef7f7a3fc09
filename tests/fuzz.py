"""How many examples the fuzz tests run: a bounded default in ``make test``; a long run with
``COMPAT_FUZZ=long`` (``make fuzz``), or any count with ``COMPAT_FUZZ=<n>`` (a multiplier of each
test's default)."""

from __future__ import annotations

import os

LONG_FACTOR = 100


def examples(default: int) -> int:
    raw = os.environ.get("COMPAT_FUZZ", "").strip()
    if not raw:
        return default
    if raw == "long":
        return default * LONG_FACTOR
    return default * max(1, int(raw))
