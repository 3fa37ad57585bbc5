"""Circuit breaker state machine with a controllable clock."""

from __future__ import annotations

import pytest

from streaming.db import BreakerState, CircuitBreaker
from streaming.errors import CircuitOpenError, DatabaseError, DatabaseUnavailableError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def fail() -> None:
    raise DatabaseUnavailableError("down")


async def ok() -> str:
    return "ok"


async def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = CircuitBreaker("db", failure_threshold=3, cooldown_s=5, clock=Clock())
    for _ in range(2):
        with pytest.raises(DatabaseUnavailableError):
            await breaker.call(fail)
    assert breaker.state is BreakerState.CLOSED
    with pytest.raises(DatabaseUnavailableError):
        await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN


async def test_open_circuit_fails_fast_without_calling() -> None:
    clock = Clock()
    breaker = CircuitBreaker("db", failure_threshold=1, cooldown_s=5, clock=clock)
    with pytest.raises(DatabaseUnavailableError):
        await breaker.call(fail)
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1

    clock.now += 2
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(counted)
    assert calls == 0
    assert info.value.retry_in_s == pytest.approx(3.0)
    assert info.value.retriable


async def test_half_open_probe_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker("db", failure_threshold=1, cooldown_s=5, clock=clock)
    with pytest.raises(DatabaseUnavailableError):
        await breaker.call(fail)
    clock.now += 5
    assert breaker.state is BreakerState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


async def test_half_open_probe_failure_reopens_for_full_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker("db", failure_threshold=1, cooldown_s=5, clock=clock)
    with pytest.raises(DatabaseUnavailableError):
        await breaker.call(fail)
    clock.now += 6
    with pytest.raises(DatabaseUnavailableError):
        await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.9
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)


async def test_non_connection_errors_do_not_count() -> None:
    breaker = CircuitBreaker("db", failure_threshold=1, cooldown_s=5, clock=Clock())

    async def bad_sql() -> None:
        raise DatabaseError("syntax error")

    with pytest.raises(DatabaseError):
        await breaker.call(bad_sql)
    assert breaker.state is BreakerState.CLOSED


async def test_success_resets_failure_count() -> None:
    breaker = CircuitBreaker("db", failure_threshold=2, cooldown_s=5, clock=Clock())
    with pytest.raises(DatabaseUnavailableError):
        await breaker.call(fail)
    await breaker.call(ok)
    with pytest.raises(DatabaseUnavailableError):
        await breaker.call(fail)
    assert breaker.state is BreakerState.CLOSED
