"""confluent-kafka's SchemaRegistryClient against a Starlette app guarded by HttpAuthenticator.

This pins the contract the registry relies on (basic.auth.user.info and bearer tokens
are understood; 401/403 arrive as Confluent error codes) without the registry itself.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
import uvicorn
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from streaming.config import SecuritySettings
from streaming.errors import SecurityError
from streaming.security import (
    HttpAuthenticator,
    InMemoryCredentialStore,
    JWTManager,
    KeyRing,
    PasswordAuthenticator,
    Policy,
    RoleBasedAccessControl,
    SecureHasher,
    SigningKey,
    http_error,
)
from streaming.testing import eventually

pytestmark = pytest.mark.integration

POLICY = Policy.from_mapping(
    {
        "roles": {
            "schema-reader": {"permissions": ["subject:*:read"]},
            "schema-writer": {"inherits": ["schema-reader"], "permissions": ["subject:*:write"]},
        }
    }
)
SCHEMA = '{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}'


def _app(auth: HttpAuthenticator) -> Starlette:
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            request.state.principal = await auth.guard_registry_request(
                request.method, request.url.path, request.headers.get("authorization")
            )
        except SecurityError as exc:
            error = http_error(exc)
            return JSONResponse(error.body, status_code=error.status_code, headers=error.headers)
        return await call_next(request)

    async def subjects(_request: Request) -> Response:
        return JSONResponse(["orders-value"])

    async def register(_request: Request) -> Response:
        return JSONResponse({"id": 1})

    app = Starlette(
        routes=[
            Route("/subjects", subjects),
            Route("/subjects/{subject}/versions", register, methods=["POST"]),
        ]
    )
    app.add_middleware(BaseHTTPMiddleware, dispatch=guard)
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def guarded() -> AsyncIterator[tuple[str, JWTManager]]:
    hasher = SecureHasher(
        pepper="it-pepper-0123456789abcdef", time_cost=1, memory_cost_kib=1024, parallelism=1
    )
    store = InMemoryCredentialStore()
    store.add("reader", "Reader-Pass-123", hasher, roles=["schema-reader"])
    store.add("writer", "Writer-Pass-123", hasher, roles=["schema-writer"])
    jwt = JWTManager(SecuritySettings(), keys=KeyRing(SigningKey.generate("EdDSA")))
    auth = HttpAuthenticator(
        RoleBasedAccessControl(POLICY), jwt=jwt, passwords=PasswordAuthenticator(store, hasher)
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(_app(auth), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, timeout_s=10, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}", jwt
    finally:
        server.should_exit = True
        await task


def _client(url: str, **conf: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url, **conf})


async def test_confluent_client_with_basic_auth(guarded: tuple[str, JWTManager]) -> None:
    url, _ = guarded
    reader = _client(url, **{"basic.auth.user.info": "reader:Reader-Pass-123"})
    writer = _client(url, **{"basic.auth.user.info": "writer:Writer-Pass-123"})
    assert await asyncio.to_thread(reader.get_subjects) == ["orders-value"]
    schema = Schema(SCHEMA, "AVRO")
    assert await asyncio.to_thread(writer.register_schema, "orders-value", schema) == 1

    with pytest.raises(SchemaRegistryError) as forbidden:
        await asyncio.to_thread(reader.register_schema, "orders-value", schema)
    assert (forbidden.value.http_status_code, forbidden.value.error_code) == (403, 40301)

    wrong = _client(url, **{"basic.auth.user.info": "reader:nope"})
    with pytest.raises(SchemaRegistryError) as unauthorized:
        await asyncio.to_thread(wrong.get_subjects)
    assert (unauthorized.value.http_status_code, unauthorized.value.error_code) == (401, 40101)

    anonymous = _client(url)
    with pytest.raises(SchemaRegistryError) as missing:
        await asyncio.to_thread(anonymous.get_subjects)
    assert missing.value.error_code == 40101


async def test_confluent_client_with_bearer_token(guarded: tuple[str, JWTManager]) -> None:
    url, jwt = guarded
    token = await jwt.create_access_token("ci", [], roles=["schema-reader"])
    client = _client(
        url,
        **{
            "bearer.auth.credentials.source": "STATIC_TOKEN",
            "bearer.auth.token": token,
            "bearer.auth.logical.cluster": "lsrc-1",
            "bearer.auth.identity.pool.id": "pool-1",
        },
    )
    assert await asyncio.to_thread(client.get_subjects) == ["orders-value"]
