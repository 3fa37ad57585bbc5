"""Wide records (thousands of fields) are checked in bounded time without stalling the server.

The registry runs in its own process, so a blocked event loop shows as a slow ``/ready``.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.integration.registry.conftest import RegistryProcess

# Stated bounds (2 shared cores, other test processes running): a compatibility check or a
# registration of the evolution completes within CHECK_BOUND_S; the quadratic checker took
# about 17 s for 8,000 fields and more than 30 s for 20,000.
CHECK_BOUND_S = {8_000: 10.0, 20_000: 20.0}
READY_BOUND_S = 1.0


def wide(fields: int, *, added: int = 0) -> str:
    """A record of ``fields`` string fields (+ ``added`` optional ones: a compatible evolution)."""
    body = [{"name": f"field_{n:05d}", "type": "string"} for n in range(fields)]
    body += [
        {"name": f"added_{n}", "type": ["null", "long"], "default": None} for n in range(added)
    ]
    return json.dumps({"type": "record", "name": "Wide", "namespace": "t", "fields": body})


async def timed_while_probing_ready(
    client: httpx.AsyncClient, request: asyncio.Task[httpx.Response]
) -> tuple[httpx.Response, float, list[float]]:
    """Await ``request`` while probing ``GET /ready``; its duration and the probe latencies."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    latencies: list[float] = []
    while not request.done():
        probe = loop.time()
        assert (await client.get("/ready")).status_code == 200
        latencies.append(loop.time() - probe)
        await asyncio.sleep(0.05)  # poll
    response = await request
    return response, loop.time() - started, latencies


@pytest.mark.parametrize("fields", [8_000, 20_000])
async def test_wide_evolution_is_checked_in_bounded_time_while_ready_answers(
    served_registry: RegistryProcess, fields: int
) -> None:
    subject = f"wide-{fields}-value"
    async with httpx.AsyncClient(base_url=served_registry.url, timeout=120) as client:
        first = await client.post(f"/subjects/{subject}/versions", json={"schema": wide(fields)})
        assert first.status_code == 200, first.text
        evolved = {"schema": wide(fields, added=1)}

        check = asyncio.create_task(
            client.post(f"/compatibility/subjects/{subject}/versions/latest", json=evolved)
        )
        response, took, latencies = await timed_while_probing_ready(client, check)
        assert response.status_code == 200, response.text
        assert response.json() == {"is_compatible": True}
        assert took < CHECK_BOUND_S[fields], f"check took {took:.1f}s"
        assert latencies, "no /ready probe overlapped the check"
        assert max(latencies) < READY_BOUND_S, f"/ready took {max(latencies):.2f}s"

        register = asyncio.create_task(client.post(f"/subjects/{subject}/versions", json=evolved))
        response, took, latencies = await timed_while_probing_ready(client, register)
        assert response.status_code == 200, response.text
        assert response.json()["id"] != first.json()["id"]
        assert took < CHECK_BOUND_S[fields], f"registration took {took:.1f}s"
        assert max(latencies) < READY_BOUND_S, f"/ready took {max(latencies):.2f}s"
