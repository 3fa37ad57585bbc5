"""``eventually``: returns the first value that satisfies the condition, or fails saying why."""

from __future__ import annotations

import itertools

import pytest

from streaming.testing import eventually, eventually_sync


async def test_returns_the_first_value_that_holds_from_a_plain_probe() -> None:
    counter = itertools.count()
    assert await eventually(lambda: next(counter), until=lambda n: n >= 3, what="three") == 3


async def test_awaits_an_async_probe() -> None:
    counter = itertools.count()

    async def probe() -> int:
        return next(counter)

    assert await eventually(probe, until=lambda n: n == 2, what="two", interval_s=0) == 2


async def test_a_truthy_value_is_enough_by_default() -> None:
    values = iter([None, [], ["ready"]])
    assert await eventually(lambda: next(values), what="a non-empty list") == ["ready"]


async def test_the_timeout_names_what_was_awaited_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"after 0\.1s waiting for the answer.*last value: 41"):
        await eventually(lambda: 41, until=lambda n: n == 42, what="the answer", timeout_s=0.1)


async def test_a_probe_error_fails_at_once() -> None:
    def probe() -> bool:
        raise RuntimeError("the sink stopped on its own")

    with pytest.raises(RuntimeError, match="stopped on its own"):
        await eventually(probe, what="rows", timeout_s=60)


def test_the_blocking_form_polls_and_fails_the_same_way() -> None:
    counter = itertools.count()
    assert eventually_sync(lambda: next(counter), until=lambda n: n == 2, what="two") == 2
    with pytest.raises(AssertionError, match=r"waiting for a port.*last value: False"):
        eventually_sync(lambda: False, what="a port", timeout_s=0.1)
