"""The start/stop lifecycle every long-lived client shares.

``async with client:`` means ``await client.start()`` then, on the way out,
``await client.stop()``: :class:`AsyncService` writes that once so producers, tables,
stores and servers only say what starting and stopping do. :func:`cancel_and_wait`
is the other half every ``stop()`` repeats: cancel a background task and wait until it
has really finished, so nothing it holds outlives the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, Self


class AsyncService:
    """A mixin: ``async with`` runs :meth:`start`, then :meth:`stop` on the way out."""

    async def start(self) -> object:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has finished; the CancelledError it
    ends with is absorbed (an error it raised before the cancel still surfaces)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


__all__ = ["AsyncService", "cancel_and_wait"]
