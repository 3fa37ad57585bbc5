"""How many API requests the registry has taken, for ``streaming top``'s request rate.

A number in ``/health`` rather than a scrape format: the registry serves no ``/metrics``
of its own, and a rate needs only a counter read twice. Probes (``/health``, ``/ready``)
are not counted, so whoever watches the rate does not move it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

PROBES = frozenset({"/health", "/ready"})


class RequestCount:
    """API requests taken since the process started (probes excluded)."""

    def __init__(self) -> None:
        self.total = 0


class CountRequests:
    """ASGI middleware adding one to ``count`` per HTTP request that is not a probe."""

    def __init__(self, app: ASGIApp, count: RequestCount) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in PROBES:
            self.count.total += 1
        await self.app(scope, receive, send)


__all__ = ["PROBES", "CountRequests", "RequestCount"]
