"""Wait for a condition by polling it against a deadline: the one way tests wait.

Sleeping a fixed time is either flaky (too short on a loaded machine) or slow (too long
everywhere else); polling returns as soon as the condition holds and, when it never does,
fails naming what was awaited and the last value seen, so the failure explains itself.

``eventually`` is for async tests (the probe may be plain or async);
``eventually_sync`` is for blocking code such as subprocess or HTTP readiness checks.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

__all__ = ["eventually", "eventually_sync"]

T = TypeVar("T")


def _timed_out(what: str, timeout_s: float, last: object) -> AssertionError:
    return AssertionError(
        f"timed out after {timeout_s:g}s waiting for {what} (last value: {last!r})"
    )


async def eventually(
    probe: Callable[[], T | Awaitable[T]],
    *,
    what: str,
    timeout_s: float = 30.0,
    until: Callable[[T], object] = bool,
    interval_s: float = 0.02,
) -> T:
    """Call ``probe`` until ``until(value)`` holds (default: truthy) and return that value.

    ``probe`` may be a plain or an async callable; exceptions it raises propagate at once.
    Raises :class:`AssertionError` naming ``what`` and the last value after ``timeout_s``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        result = cast(T, value)
        if until(result):
            return result
        if loop.time() > deadline:
            raise _timed_out(what, timeout_s, result)
        await asyncio.sleep(interval_s)  # poll


def eventually_sync(
    probe: Callable[[], T],
    *,
    what: str,
    timeout_s: float = 30.0,
    until: Callable[[T], object] = bool,
    interval_s: float = 0.05,
) -> T:
    """Blocking :func:`eventually`, for code outside an event loop."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout_s, value)
        time.sleep(interval_s)  # poll
