"""A progress bar for long benchmark runs, on stderr, without a dependency.

On a terminal it redraws one line (``[#######.......]  5/14  http: 5,000 names · filter  1:23``);
anywhere else (CI logs, a pipe, a file) it prints one plain line per step and nothing for the notes
in between, so logs stay short and free of control characters.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

__all__ = ["NO_PROGRESS", "Progress", "Steps", "format_elapsed"]

BAR_WIDTH = 24


def format_elapsed(seconds: float) -> str:
    """``83.2`` -> ``1:23``; ``3725`` -> ``1:02:05``."""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class Progress:
    """``total`` steps; :meth:`step` starts the next one, :meth:`note` says what the current one is
    doing, :meth:`finish` closes the line."""

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(total, 0)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _is_tty(self.stream) if tty is None else tty
        self.clock = clock
        self.started = clock()
        self.done = 0  # steps started so far (the current one included)
        self.label = ""
        self.detail = ""
        self.complete = False

    def step(self, label: str) -> None:
        self.done += 1
        self.label = label
        self.detail = ""
        if self.tty:
            self._draw()
        else:
            width = len(str(max(self.total, self.done)))
            self._write(f"[{self.done:>{width}}/{self.total}] {self._elapsed()} {label}\n")

    def note(self, text: str) -> None:
        self.detail = text
        if self.tty:
            self._draw()

    def scoped(self, prefix: str) -> Steps:
        """Steps labelled ``prefix: label`` (one scenario's share of the bar)."""
        return _Scoped(self, prefix)

    def finish(self, message: str = "done") -> None:
        self.complete = True
        if self.tty:
            self.done, self.label, self.detail = self.total, message, ""
            self._draw()
            self._write("\n")
        else:
            self._write(f"{message} in {self._elapsed()}\n")

    # -- drawing ------------------------------------------------------------------------------

    def _elapsed(self) -> str:
        return format_elapsed(self.clock() - self.started)

    def render(self, columns: int) -> str:
        """The terminal line, at most ``columns`` characters."""
        # the step that runs is not done yet: the bar fills as steps end, and completely at the finish
        completed = self.total if self.complete else max(self.done - 1, 0)
        frac = 1.0 if not self.total else min(completed / self.total, 1.0)
        filled = round(frac * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        width = len(str(self.total))
        text = f"[{bar}] {self.done:>{width}}/{self.total} {self._elapsed()}  {self.label}"
        if self.detail:
            text += f" · {self.detail}"
        if len(text) > columns:
            text = text[: max(columns - 1, 0)] + "…"
        return text

    def _draw(self) -> None:
        columns = shutil.get_terminal_size((100, 20)).columns - 1
        self._write("\r\x1b[2K" + self.render(columns))

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not stop a benchmark
            pass


class Steps(Protocol):
    """What a benchmark reports its progress to: the bar (scoped to a scenario) or nothing."""

    def step(self, label: str) -> None: ...

    def note(self, text: str) -> None: ...


class _Scoped:
    def __init__(self, progress: Progress, prefix: str) -> None:
        self._progress = progress
        self._prefix = prefix

    def step(self, label: str) -> None:
        self._progress.step(f"{self._prefix}: {label}")

    def note(self, text: str) -> None:
        self._progress.note(text)


class _Silent:
    def step(self, label: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass


#: For the benchmarks' own ``main`` functions and for tests.
NO_PROGRESS: Steps = _Silent()
