"""How many API requests the registry has taken, for ``streaming top``'s request rate.

A number in ``/health`` rather than a scrape format: a rate needs only a counter read
twice, and ``/health`` answers whether or not OTel metrics are exported. The front layer
(:mod:`.fast`) does the counting, so cached answers count too. Probes (``/health``,
``/ready``) are not counted, so whoever watches the rate does not move it.
"""

from __future__ import annotations

PROBES = frozenset({"/health", "/ready"})


class RequestCount:
    """API requests taken since the process started (probes excluded)."""

    def __init__(self) -> None:
        self.total = 0


__all__ = ["PROBES", "RequestCount"]
