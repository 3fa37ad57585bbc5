"""THE backoff: capped exponential ceilings, equal jitter, and the floor-plus-jitter rule."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming.core.backoff import Backoff, jittered
from streaming.errors import ConfigError


def test_ceilings_double_from_the_initial_delay_until_the_cap() -> None:
    backoff = Backoff(initial_s=0.1, max_s=1.0)
    assert [backoff.ceiling_s(n) for n in range(1, 7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    initial_s=st.floats(min_value=0.001, max_value=10),
    max_s=st.floats(min_value=0.001, max_value=60),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_delay_lies_between_half_the_ceiling_and_the_ceiling(
    attempt: int, initial_s: float, max_s: float, seed: int
) -> None:
    backoff = Backoff(initial_s=initial_s, max_s=max_s)
    ceiling = backoff.ceiling_s(attempt)
    delay = backoff.delay_s(attempt, random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling <= max_s


def test_jitter_spreads_instances_that_failed_together() -> None:
    backoff = Backoff(initial_s=0.1, max_s=1.0)
    rng = random.Random(1)
    delays = [backoff.delay_s(3, rng) for _ in range(20)]
    assert len(set(delays)) == len(delays)
    assert min(delays) < 0.3 < max(delays)  # both halves of [0.2, 0.4] are used


def test_a_seeded_rng_reproduces_the_same_delays() -> None:
    backoff = Backoff(initial_s=0.05, max_s=2.0)
    first = [backoff.delay_s(n, random.Random(9)) for n in range(1, 10)]
    assert first == [backoff.delay_s(n, random.Random(9)) for n in range(1, 10)]


def test_a_long_outage_stays_at_the_cap_without_overflowing() -> None:
    assert Backoff(initial_s=0.1, max_s=5.0).ceiling_s(100_000) == 5.0


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        Backoff(initial_s=0.1, max_s=1.0).delay_s(0)


def test_negative_delays_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="negative"):
        Backoff(initial_s=-0.1, max_s=1.0)


@given(
    floor=st.floats(min_value=0, max_value=1e6),
    fraction=st.floats(min_value=0, max_value=1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_jitter_only_adds_up_to_its_fraction_of_the_floor(
    floor: float, fraction: float, seed: int
) -> None:
    value = jittered(floor, fraction, random.Random(seed))
    assert floor <= value <= floor * (1 + fraction)


def test_zero_jitter_is_exactly_the_floor() -> None:
    assert jittered(1.5, 0.0, random.Random(3)) == 1.5
