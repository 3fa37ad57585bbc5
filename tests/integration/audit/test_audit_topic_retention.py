"""``LOG_AUDIT_RETENTION_DAYS`` is the audit topic's ``retention.ms`` on a real broker,
whether the sink creates the topic or finds it auto-created with the broker default."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from connectors.audit_sink.runtime import ensure_audit_topics
from streaming.transport.base import AdminTransport, TopicSpec

DAY_MS = 86_400_000


@pytest.fixture
async def audit_topic(kafka_admin: AdminTransport) -> AsyncIterator[str]:
    name = f"audit.events.t{uuid.uuid4().hex[:8]}"
    yield name
    if name in await kafka_admin.list_topics():
        await kafka_admin.delete_topics([name])


async def test_a_new_audit_topic_keeps_events_for_the_configured_days(
    kafka_admin: AdminTransport, audit_topic: str
) -> None:
    await ensure_audit_topics(kafka_admin, [audit_topic], 2555)
    config = await kafka_admin.describe_topic_config(audit_topic)
    assert config["retention.ms"] == str(2555 * DAY_MS)
    assert config["cleanup.policy"] == "delete"
    assert config["retention.bytes"] == "-1"


async def test_an_existing_short_lived_audit_topic_gets_the_retention(
    kafka_admin: AdminTransport, audit_topic: str
) -> None:
    await kafka_admin.create_topics(
        [TopicSpec(audit_topic, 1, config={"retention.ms": str(7 * DAY_MS)})]
    )
    await ensure_audit_topics(kafka_admin, [audit_topic], 3000)
    config = await kafka_admin.describe_topic_config(audit_topic)
    assert config["retention.ms"] == str(3000 * DAY_MS)
