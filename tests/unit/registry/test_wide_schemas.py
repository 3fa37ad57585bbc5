"""Wide records: linear parse and check, a time limit, and the same answers as before."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from streaming.registry.app import create_app
from streaming.registry.avro_schema import parse_schema
from streaming.registry.compatibility import PriorSchema, check
from streaming.registry.errors import InvalidSchema
from streaming.registry.model import CompatibilityLevel
from streaming.registry.service import RegistryService
from streaming.registry.store import InMemorySchemaStore
from streaming.registry.work import SchemaWorker


def wide(fields: int, *, added: int = 0) -> str:
    body = [{"name": f"field_{n:05d}", "type": "string"} for n in range(fields)]
    body += [
        {"name": f"added_{n}", "type": ["null", "long"], "default": None} for n in range(added)
    ]
    return json.dumps({"type": "record", "name": "Wide", "namespace": "t", "fields": body})


def test_a_20000_field_evolution_parses_and_checks_in_seconds() -> None:
    # quadratic avro took ~4 s to parse and ~45 s to check this on one idle core (186 s
    # under this machine's load); linear, about 1 s idle
    started = time.perf_counter()
    old, new = parse_schema(wide(20_000)), parse_schema(wide(20_000, added=1))
    messages = check(
        CompatibilityLevel.FULL, new.schema, [PriorSchema(1, old.schema, old.canonical)]
    )
    assert messages == []
    assert time.perf_counter() - started < 15.0


def test_an_incompatible_wide_evolution_is_still_found() -> None:
    old = parse_schema(wide(5_000))
    changed = json.loads(wide(5_000))
    changed["fields"][4_999]["type"] = "int"
    new = parse_schema(json.dumps(changed))
    messages = check(
        CompatibilityLevel.BACKWARD, new.schema, [PriorSchema(1, old.schema, old.canonical)]
    )
    assert any("TYPE_MISMATCH" in m and "/fields/4999" in m for m in messages), messages[:1]


def test_duplicate_field_names_are_still_rejected() -> None:
    text = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}] * 2})
    with pytest.raises(InvalidSchema, match="Field name a already in use"):
        parse_schema(text)


async def test_work_past_the_time_limit_is_a_42201_naming_the_setting() -> None:
    service = RegistryService(InMemorySchemaStore(), worker=SchemaWorker(timeout_s=0.001))
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        response = await client.post("/subjects/wide-value/versions", json={"schema": wide(8_000)})
    assert response.status_code == 422
    assert response.json()["error_code"] == 42201
    assert "REGISTRY_SERVER_SCHEMA_TIMEOUT_S" in response.json()["message"]
