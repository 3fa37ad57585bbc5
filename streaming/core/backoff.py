"""THE backoff: capped exponential growth with equal jitter, and the jitter rule under it.

One jitter rule, :func:`jittered`: a delay is a *floor* and jitter only adds, up to a
fraction of it. Two uses, one rule:

- :class:`Backoff` (reconnects, registry calls, partition rewinds, writer fences) uses
  *equal jitter*: the ``n``-th delay lies in ``[c/2, c]`` with
  ``c = min(max_s, initial_s * 2**(n - 1))``, i.e. half of ``c`` is the floor and up to
  100% of it is added. Delays never exceed ``max_s``, and instances that failed together
  do not retry in lockstep.
- The retry topics (:meth:`streaming.clients.retry.RetryPolicy.not_before_ms`) use the
  configured delay as the floor and ``jitter`` as the fraction, so a record never runs
  earlier than its documented delay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streaming.errors import ConfigError


def jittered(floor: float, fraction: float, rng: random.Random | None = None) -> float:
    """``floor`` plus a uniform random part of up to ``fraction * floor`` (never less)."""
    draw = rng.random() if rng is not None else random.random()
    return floor * (1.0 + fraction * draw)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with equal jitter; attempts count from 1.

    ``initial_s`` is the ceiling of the first delay, ``max_s`` the ceiling of every delay.
    """

    initial_s: float
    max_s: float

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < 0:
            raise ConfigError(
                [f"delays must not be negative, got ({self.initial_s}, {self.max_s})"],
                title="invalid backoff",
            )

    def ceiling_s(self, attempt: int) -> float:
        """The jitter-free upper bound of the delay after failed ``attempt`` (>= 1)."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt}")
        # the exponent is bounded so a long outage cannot overflow the float
        return min(self.max_s, self.initial_s * 2.0 ** min(attempt - 1, 64))

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """How long to wait after failed ``attempt``: within ``[ceiling/2, ceiling]``."""
        return jittered(self.ceiling_s(attempt) / 2, 1.0, rng)


__all__ = ["Backoff", "jittered"]
