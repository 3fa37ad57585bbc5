"""CPU-heavy schema work (parse, canonicalise, check compatibility) off the event loop.

A wide record takes seconds to parse and check; on the event loop that would stall every
other request, ``/ready`` included. :class:`SchemaWorker` runs such work on the loop's
thread pool, at most ``workers`` at once, and answers
:class:`~streaming.registry.errors.SchemaWorkTimeout` (422/42201) after ``timeout_s``.
A worker slot is held until its thread really finishes, so timed-out work cannot pile
up; the compatibility checker also watches the :class:`Deadline` and stops early.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from streaming.registry.errors import SchemaWorkTimeout

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_WORKERS = 2


class Deadline:
    """When a piece of schema work must give up; :meth:`check` raises once it passed."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._at = time.monotonic() + timeout_s

    def check(self) -> None:
        if time.monotonic() > self._at:
            raise SchemaWorkTimeout(self.timeout_s)


class SchemaWorker:
    """Runs ``work(deadline)`` on a worker thread within ``timeout_s``."""

    def __init__(
        self, *, timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = DEFAULT_WORKERS
    ) -> None:
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(workers)

    async def run(self, work: Callable[[Deadline], T]) -> T:
        deadline = Deadline(self.timeout_s)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._slots.acquire()
                future = loop.run_in_executor(None, work, deadline)
                future.add_done_callback(self._release)
                return await asyncio.shield(future)
        except TimeoutError as exc:
            raise SchemaWorkTimeout(self.timeout_s) from exc

    def _release(self, future: asyncio.Future[Any]) -> None:
        self._slots.release()
        if not future.cancelled():
            future.exception()  # retrieved: a timed-out caller no longer waits for it


__all__ = ["DEFAULT_TIMEOUT_S", "DEFAULT_WORKERS", "Deadline", "SchemaWorker"]
