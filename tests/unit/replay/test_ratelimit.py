"""The token bucket paces to the configured rate without sleeping in tests."""

from __future__ import annotations

import pytest

from streaming.replay.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_bursts_up_to_one_second_then_paces() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    await limiter.acquire(100)
    assert clock.slept == []
    await limiter.acquire(50)
    assert clock.slept == [pytest.approx(0.5)]
    await limiter.acquire(100)
    assert sum(clock.slept) == pytest.approx(1.5)


async def test_unlimited_never_sleeps() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    await limiter.acquire(10**6)
    assert clock.slept == []


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)
