"""Bad input over real HTTP against a Kafka-backed registry: Confluent codes, never a 5xx."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from tests.integration.registry.conftest import ServerFactory
from tests.unit.registry.openapi_fuzz import SUBJECTS, Call, calls, send

CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
VALID = json.dumps({"type": "record", "name": "Ok", "fields": [{"name": "a", "type": "string"}]})

CASES = [
    ("POST", "/subjects/bad/versions", b'{"schema": ', 400, 400),
    ("POST", "/subjects/bad/versions", b'{"schema": "{\\"type\\": \\"record\\"}"}', 422, 42201),
    ("POST", "/subjects/bad/versions", b'{"schema": "{\\"type\\": \\"uuid-ish\\"}"}', 422, 42201),
    (
        "POST",
        "/subjects/bad/versions",
        json.dumps({"schema": VALID, "schemaType": "PROTOBUF"}).encode(),
        422,
        42201,
    ),
    ("POST", "/subjects/bad/versions", b'{"schema": "' + b"a" * (1024 * 1024) + b'"}', 413, 413),
    ("GET", "/subjects/known/versions/0", None, 422, 42202),
    ("GET", "/subjects/known/versions/-7", None, 422, 42202),
    ("GET", "/subjects/known/versions/one", None, 422, 42202),
    ("DELETE", "/subjects/known/versions/99999999999", None, 422, 42202),
    ("GET", "/subjects/known/versions/9", None, 404, 40402),
    ("GET", "/subjects/unknown/versions", None, 404, 40401),
    ("GET", "/subjects/unknown/versions/latest", None, 404, 40401),
    ("POST", "/subjects/unknown", json.dumps({"schema": VALID}).encode(), 404, 40401),
    ("DELETE", "/subjects/unknown", None, 404, 40401),
    ("GET", "/config/unknown", None, 404, 40408),
    ("GET", "/schemas/ids/424242", None, 404, 40403),
]


async def test_bad_input_gets_confluent_error_codes(start_registry: ServerFactory) -> None:
    server = await start_registry()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        assert (await c.post("/subjects/known/versions", json={"schema": VALID})).status_code == 200
        for method, path, body, status, code in CASES:
            response = await c.request(method, path, content=body, headers=CT)
            assert (response.status_code, response.json()["error_code"]) == (status, code), (
                method,
                path,
                response.text[:200],
            )
        assert (await c.get("/ready")).status_code == 200


def _fuzz(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        seed = json.dumps(
            {"type": "record", "name": "Seed", "fields": [{"name": "a", "type": "string"}]}
        )
        for subject in SUBJECTS:
            client.post(f"/subjects/{subject}/versions", json={"schema": seed})

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(calls())
        def check(call: Call) -> None:
            response = send(client, call)
            assert response.status_code < 500, (call, response.status_code, response.text)

        check()


@pytest.mark.filterwarnings("ignore::UserWarning")
async def test_property_no_5xx_against_the_kafka_backed_server(
    start_registry: ServerFactory,
) -> None:
    server = await start_registry()
    await asyncio.to_thread(_fuzz, server.url)
