"""Compose middlewares ``async (item, call_next)`` around an endpoint, for both chains.

The consumer's chain carries a :class:`~streaming.clients.middlewares.Message` to a
handler, the producer's a :class:`~streaming.clients.publish.Publish` to the transport;
both are built once (not per record) with :func:`chain`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def chain(
    steps: Sequence[Callable[[T, Callable[[T], Awaitable[R]]], Awaitable[R]]],
    endpoint: Callable[[T], Awaitable[R]],
) -> Callable[[T], Awaitable[R]]:
    """``steps`` wrapped around ``endpoint``, the first step outermost."""
    call = endpoint
    for step in reversed(steps):
        call = _link(step, call)
    return call


def _link(
    step: Callable[[T, Callable[[T], Awaitable[R]]], Awaitable[R]],
    call_next: Callable[[T], Awaitable[R]],
) -> Callable[[T], Awaitable[R]]:
    def run(item: T) -> Awaitable[R]:
        return step(item, call_next)  # the step's own awaitable: no extra coroutine per step

    return run


__all__ = ["chain"]
