"""Wall-clock epoch milliseconds as Kafka timestamps use them."""

from __future__ import annotations

import time

from streaming.core.clock import now_ms


def test_now_is_integer_epoch_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = now_ms()
    after = time.time_ns() // 1_000_000
    assert isinstance(value, int)
    assert before <= value <= after
