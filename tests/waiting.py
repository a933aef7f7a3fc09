"""Waiting for a condition in tests, never for a deadline.

A test that waits for something to happen polls until it has happened. The limit below is only
there so that a test whose condition never comes true fails with a message instead of hanging; it
is far beyond what any run needs, even on a busy CI machine, so it never decides a verdict.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: How long a wait may take before the test gives up (a hang, not a slow machine).
SAFETY_SECONDS = 120.0


async def until(
    check: Callable[[], bool | Awaitable[bool]],
    what: str | Callable[[], str],
    *,
    interval: float = 0.02,
    limit: float = SAFETY_SECONDS,
) -> None:
    """Poll ``check`` (sync or async) until it returns true; fail naming ``what`` (or what it
    returns then, e.g. the state observed last) after ``limit``."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + limit
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > give_up:
            described = what if isinstance(what, str) else what()
            raise AssertionError(f"still waiting after {limit:g}s (a hang, not a slow machine): {described}")
        await asyncio.sleep(interval)


async def eventually(check: Callable[[], bool]) -> None:
    """``until`` for a plain condition, polled every 10 ms, failing with a generic message: for the
    tests that wait on many small conditions of a source's state."""
    await until(check, "condition not reached", interval=0.01)


async def finishes(awaitable: Awaitable[T], what: str, *, limit: float = SAFETY_SECONDS) -> T:
    """The result of ``awaitable``; fail naming ``what`` if it has not finished after ``limit``."""
    try:
        return await asyncio.wait_for(awaitable, limit)
    except TimeoutError:
        raise AssertionError(f"still waiting after {limit:g}s (a hang, not a slow machine): {what}") from None
