"""An in-process registry app over the in-memory store, reached through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
import pytest_asyncio

from streaming.errors import AuthenticationError, PermissionDenied
from streaming.registry.app import create_app
from streaming.registry.audit import AuditRecord
from streaming.registry.service import RegistryService
from streaming.registry.store import InMemorySchemaStore


def token_hooks(
    tokens: Mapping[str, str], may: Callable[[str, str], bool]
) -> tuple[Callable[[Any], Awaitable[str]], Callable[[str, str | None, str], Awaitable[None]]]:
    """Fake auth hooks: ``Authorization`` value -> user; ``may(user, action)`` decides."""

    async def authenticate(headers: Any) -> str:
        user = tokens.get(headers.get("authorization"))
        if user is None:
            raise AuthenticationError("no token")
        return user

    async def authorize(principal: str, subject: str | None, action: str) -> None:
        if not may(principal, action):
            raise PermissionDenied(f"{principal} may not {action}")

    return authenticate, authorize


class Recorder:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def __call__(self, record: AuditRecord) -> None:
        self.records.append(record)


@pytest_asyncio.fixture
async def audit() -> Recorder:
    return Recorder()


@pytest_asyncio.fixture
async def store() -> InMemorySchemaStore:
    return InMemorySchemaStore()


@pytest_asyncio.fixture
async def client(store: InMemorySchemaStore, audit: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(RegistryService(store, audit=audit))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as c:
        yield c
