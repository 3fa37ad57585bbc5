"""/health carries the count of API requests, which `streaming top` turns into a rate."""

from __future__ import annotations

import httpx


async def test_health_counts_api_requests_but_not_probes(client: httpx.AsyncClient) -> None:
    before = (await client.get("/health")).json()["requests_total"]
    for _ in range(3):
        assert (await client.get("/subjects")).status_code == 200
    await client.get("/ready")
    after = (await client.get("/health")).json()
    assert after == {"status": "ok", "requests_total": before + 3}
