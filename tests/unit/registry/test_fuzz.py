"""Property: no request built from the OpenAPI document gets a 5xx from the registry."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from streaming.registry.app import create_app
from streaming.registry.service import RegistryService
from streaming.registry.store import InMemorySchemaStore
from tests.unit.registry.openapi_fuzz import SUBJECTS, Call, calls, send


def test_no_request_from_the_openapi_document_gets_a_5xx() -> None:
    app = create_app(RegistryService(InMemorySchemaStore()))
    with TestClient(app, raise_server_exceptions=True) as client:
        seed = json.dumps(
            {"type": "record", "name": "Seed", "fields": [{"name": "a", "type": "string"}]}
        )
        for subject in SUBJECTS:
            assert (
                client.post(f"/subjects/{subject}/versions", json={"schema": seed}).status_code
                == 200
            )

        @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
        @given(calls())
        def check(call: Call) -> None:
            response = send(client, call)
            assert response.status_code < 500, (call, response.status_code, response.text)
            body = response.json()
            if response.status_code >= 400:
                assert isinstance(body["error_code"], int) and isinstance(body["message"], str)

        check()
