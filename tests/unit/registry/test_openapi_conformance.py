"""schemathesis: every response the registry gives is one its OpenAPI document declares.

Statuses, content types, bodies and headers (including ``Allow`` on a 405 for methods
the document does not list) are checked against the document, per operation.
"""

from __future__ import annotations

import json

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from starlette.testclient import TestClient

from streaming.registry.app import create_app
from streaming.registry.service import RegistryService
from streaming.registry.store import InMemorySchemaStore

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
    allow_header_conformance,
]


def _seeded_app() -> object:
    app = create_app(RegistryService(InMemorySchemaStore()))
    seed = json.dumps({"type": "record", "name": "Seed", "fields": [{"name": "a", "type": "int"}]})
    with TestClient(app) as client:
        for subject in ("0", "alpha", "beta-value"):
            response = client.post(f"/subjects/{subject}/versions", json={"schema": seed})
            assert response.status_code == 200
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _seeded_app())


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_response_conforms_to_the_document(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
