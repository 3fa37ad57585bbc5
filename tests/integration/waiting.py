"""Poll for a condition with a deadline (the tests' only way to wait for something)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest


async def until(check: Callable[[], bool | Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Re-evaluate ``check`` (plain or async) until it holds; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)  # poll
