"""Wall-clock time as Kafka sees it: integer epoch milliseconds.

Record timestamps, ``produced-at``, ``x-not-before`` and snapshot times are all epoch
ms; components that schedule by them take a :data:`ClockMs` so tests can drive time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

ClockMs = Callable[[], int]
"""An injectable source of epoch milliseconds (default :func:`now_ms`)."""


def now_ms() -> int:
    """Now, in integer milliseconds since the Unix epoch (no float rounding)."""
    return time.time_ns() // 1_000_000


__all__ = ["ClockMs", "now_ms"]
