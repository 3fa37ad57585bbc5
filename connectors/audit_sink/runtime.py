"""Wiring: settings -> a running sink, a store, a verification run (CLI and tests share it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from opentelemetry.metrics import Meter

from connectors.audit_sink.bundle import export_bundle
from connectors.audit_sink.checkpoints import (
    CheckpointPublisher,
    ensure_checkpoint_topic,
    read_latest_checkpoint,
)
from connectors.audit_sink.config import AuditSinkSettings
from connectors.audit_sink.pii import PiiCipher, SubjectKeyCache
from connectors.audit_sink.records import RecordPreparer
from connectors.audit_sink.sink import AuditSink, SinkOptions
from connectors.audit_sink.store import AuditStore
from connectors.audit_sink.verify import VerifyReport, verify_store
from streaming.config import KafkaSettings, LoggingSettings, SecuritySettings, read_settings
from streaming.core.topics import audit_events_config
from streaming.db import Database
from streaming.serde.avro import AvroDeserializer
from streaming.serde.client import SchemaRegistry
from streaming.transport.base import AdminTransport, TopicSpec, TransportFactory


def build_store(
    database: Database,
    settings: AuditSinkSettings,
    security: SecuritySettings | None = None,
    logging: LoggingSettings | None = None,
) -> AuditStore:
    encrypt = settings.encrypt_pii(logging)
    pii = PiiCipher(settings.kek_encryptor(security)) if encrypt else None
    return AuditStore(
        database,
        settings.db_schema,
        writer_role=settings.writer_role,
        pii=pii,
        key_cache=SubjectKeyCache(settings.pii_key_cache_size, settings.pii_key_cache_ttl_s),
    )


async def ensure_audit_topics(
    admin: AdminTransport, topics: Sequence[str], retention_days: int, partitions: int = 6
) -> None:
    """Create missing audit topics with :func:`audit_events_config`; on existing ones set
    the retention it names (a topic auto-created by a producer got the broker default)."""
    config = audit_events_config(retention_days)
    present = await admin.list_topics()
    await admin.create_topics(
        [TopicSpec(t, partitions, config=config) for t in topics if t not in present]
    )
    for topic in (t for t in topics if t in present):
        current = await admin.describe_topic_config(topic)
        if any(current.get(k) != v for k, v in config.items()):
            await admin.alter_topic_config(topic, config)


def sink_options(settings: AuditSinkSettings) -> SinkOptions:
    return SinkOptions(
        batch_max_rows=settings.batch_max_rows,
        batch_max_latency_ms=settings.batch_max_latency_ms,
        checkpoint_every_rows=settings.checkpoint_every_rows,
        checkpoint_every_s=settings.checkpoint_every_s,
        backoff_initial_s=settings.backoff_initial_s,
        backoff_max_s=settings.backoff_max_s,
        kafka_commit_interval_s=settings.kafka_commit_interval_s,
    )


@dataclass(slots=True)
class SinkRuntime:
    sink: AuditSink
    store: AuditStore


@asynccontextmanager
async def running_sink(
    *,
    transport: TransportFactory,
    database: Database,
    registry: SchemaRegistry,
    settings: AuditSinkSettings,
    security: SecuritySettings | None = None,
    migrate: bool = True,
    meter: Meter | None = None,
    logging: LoggingSettings | None = None,
) -> AsyncIterator[AuditSink]:
    """A started sink (consumer + checkpoint producer); ``await sink.run()`` to consume.

    ``logging`` (default: ``LOG_*`` from the environment) decides PII encryption and the
    audit topics' retention, which is set on the topics whether they exist or not.
    """
    logging = logging or read_settings(LoggingSettings)
    store = build_store(database, settings, security, logging)
    if migrate:
        await store.migrate()
    admin = transport.admin()
    await admin.start()
    try:
        await ensure_checkpoint_topic(admin, settings.checkpoint_topic)
        await ensure_audit_topics(
            admin,
            settings.topic_list,
            logging.audit_retention_days,
            read_settings(KafkaSettings).default_partitions,
        )
    finally:
        await admin.stop()
    producer = transport.producer(linger_ms=0)
    consumer = transport.consumer(
        group_id=settings.group_id,
        auto_offset_reset="earliest",
        isolation_level="read_committed",  # an aborted audit write never enters the chain
        max_poll_records=settings.batch_max_rows,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 3),
    )
    await producer.start()
    await consumer.start()
    try:
        yield AuditSink(
            store=store,
            consumer=consumer,
            preparer=RecordPreparer(AvroDeserializer(registry, use_local_schemas=True)),
            ring=settings.mac_key_ring(),
            topics=settings.topic_list,
            signer=settings.signer(),
            publisher=CheckpointPublisher(producer, settings.checkpoint_topic, settings.db_schema),
            options=sink_options(settings),
            meter=meter,
        )
    finally:
        try:
            await consumer.stop()
        finally:
            await producer.stop()


async def run_verify(
    *,
    transport: TransportFactory | None,
    database: Database,
    settings: AuditSinkSettings,
    chain: str | None = None,
    since_checkpoint: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify the database against the newest checkpoint published to Kafka.

    Needs only the MAC keys and the public keys (no signing key, no KEK).
    """
    store = AuditStore(database, settings.db_schema)
    published = None
    if transport is not None:
        published = await read_latest_checkpoint(
            transport, settings.checkpoint_topic, settings.db_schema
        )
    return await verify_store(
        store,
        settings.mac_key_ring(),
        settings.public_keys(),
        published=published,
        chain=chain,
        since_checkpoint=since_checkpoint,
        on_progress=on_progress,
    )


async def run_export(
    *,
    transport: TransportFactory,
    database: Database,
    settings: AuditSinkSettings,
    out: Path,
    since: datetime,
    until: datetime,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Export a bundle carrying the newest checkpoint read from Kafka (no KEK needed:
    rows are exported as stored, PII still encrypted)."""
    published = await read_latest_checkpoint(
        transport, settings.checkpoint_topic, settings.db_schema
    )
    return await export_bundle(
        AuditStore(database, settings.db_schema),
        out,
        since=since,
        until=until,
        public_keys=settings.public_keys(),
        published=published,
        on_progress=on_progress,
    )


__all__ = [
    "SinkRuntime",
    "build_store",
    "run_export",
    "run_verify",
    "running_sink",
    "sink_options",
]
