"""The OpenAPI document describes exactly the routes the app serves."""

from __future__ import annotations

from starlette.routing import Route

from streaming.registry.app import create_app
from streaming.registry.openapi import openapi_document
from streaming.registry.service import RegistryService
from streaming.registry.store import InMemorySchemaStore


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    app = create_app(RegistryService(InMemorySchemaStore()))
    served = {
        (route.path.replace("{rest:path}", "{rest}"), method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    }
    documented = {
        (path, method) for path, item in openapi_document()["paths"].items() for method in item
    }
    assert served == documented


def test_document_is_served_and_references_resolve() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.")
    components = doc["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.removeprefix("#/components/schemas/") in components
