"""Fixtures shared by the typed-client tests on a real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streaming.transport.base import AdminTransport


@pytest.fixture
async def cleanup(kafka_admin: AdminTransport) -> AsyncIterator[list[str]]:
    """Topics whose retry/DLQ topics (``<topic>.*``) are deleted after the test."""
    prefixes: list[str] = []
    yield prefixes
    present = await kafka_admin.list_topics()
    doomed = [t for t in present if any(t.startswith(p + ".") for p in prefixes)]
    if doomed:
        await kafka_admin.delete_topics(doomed)
