"""Crypto-shredding reaches every copy: topics, retries, DLQ, replays, PostgreSQL, bundles.

Real Kafka, real PostgreSQL, the registry; the CLI runs as a subprocess and topics are
read raw with confluent-kafka. Personal data of several subjects flows through
``EventProducer``, a failing consumer (retry topic, DLQ), a range replay and the audit
sink; then one subject is shredded with ``streaming audit shred`` (no KEK in its
environment), and nothing yields that subject's values any more while the others still
decrypt and the chain still verifies, online and as a bundle.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr
from sqlalchemy import text

from connectors.audit_sink.runtime import running_sink
from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy
from streaming.config import KafkaSettings, SecuritySettings
from streaming.core.topics import SUBJECT_KEYS_CONFIG
from streaming.db import Database
from streaming.events import (
    Actor,
    ActorType,
    AuditEvent,
    AuditEventType,
    AuditOutcome,
    UserRegistered,
)
from streaming.privacy import EncryptedValue, FieldProtector, FieldRevealer, SubjectKeyLog
from streaming.serde.client import SchemaRegistryClient
from streaming.testing import eventually
from streaming.transport.kafka import KafkaTransport
from tests.integration.audit.conftest import (
    AuditSetup,
    audit_env,
    count_rows,
    export_args,
    run_until,
)
from tests.integration.audit.conftest import run_streaming as cli

pytestmark = pytest.mark.integration

GROUP = "privacy-it"


class Person:
    def __init__(self, tag: str) -> None:
        self.id = str(uuid.uuid4())
        self.username = f"{tag}-{secrets.token_hex(4)}"
        self.email = f"{self.username}@mail.example"
        self.full_name = f"{tag.title()} {secrets.token_hex(3)}"
        self.ip = f"198.51.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
        self.agent = f"Agent/{secrets.token_hex(5)}"

    @property
    def values(self) -> list[str]:
        return [self.username, self.email, self.full_name, self.ip, self.agent]

    def registered(self) -> UserRegistered:
        return UserRegistered(
            user_id=uuid.UUID(self.id),
            username=self.username,
            email=self.email,
            full_name=self.full_name,
        )

    def audited(self, i: int) -> AuditEvent:
        return AuditEvent(
            event_type=AuditEventType.USER_LOGIN,
            actor=Actor(actor_type=ActorType.USER, actor_id=self.id, username=self.username),
            resource_type="session",
            resource_id=f"s-{i}",
            action="login",
            outcome=AuditOutcome.SUCCESS,
            ip_address=self.ip,
            user_agent=self.agent,
        )


def read_raw(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None, bytes]]:
    """Every record of ``topic`` as (key, value, all header bytes), read with confluent-kafka."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = list(metadata.topics[topic].partitions)
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        records: list[tuple[bytes | None, bytes | None, bytes]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                headers = b"".join((v or b"") for _, v in (msg.headers() or []))
                records.append((msg.key(), msg.value(), headers))
                continue
            # transaction markers take offsets too: done when every position reached its end
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] for tp in positions):
                return records
        raise AssertionError(f"could not read {topic} to its end within 30 s")
    finally:
        consumer.close()


def clear_hits(
    records: list[tuple[bytes | None, bytes | None, bytes]], values: list[str]
) -> list[str]:
    """The clear values found anywhere in the records (key, value or headers)."""
    blob = b"\n".join((k or b"") + b"|" + (v or b"") + b"|" + h for k, v, h in records)
    return [v for v in values if v.encode() in blob]


async def test_shredding_a_subject_reaches_every_copy_and_the_chain_still_verifies(
    kafka_transport: KafkaTransport,
    kafka_settings: KafkaSettings,
    database: Database,
    schema_registry: SchemaRegistryClient,
    registry_url: str,
    audit_setup: AuditSetup,
    drop_schema: None,
    topic_factory: Any,
    tmp_path: Path,
) -> None:
    kek = secrets.token_urlsafe(32)
    keys_topic = await topic_factory(1, prefix="subject-keys", config=dict(SUBJECT_KEYS_CONFIG))
    users = await topic_factory(2, prefix="users")
    replayed = await topic_factory(2, prefix="users-replayed")
    security = SecuritySettings(pii_kek=SecretStr(kek), pii_keys_topic=keys_topic)
    ann, ben, cai = Person("ann"), Person("ben"), Person("cai")
    people = [ann, ben, cai]
    bootstrap = ",".join(kafka_settings.bootstrap_list)
    env = {
        **os.environ,
        **audit_env(audit_setup.settings),
        "REGISTRY_URL": registry_url,
        "SECURITY_PII_KEK": kek,
        "SECURITY_PII_KEYS_TOPIC": keys_topic,
        "LOG_LEVEL": "WARNING",
    }

    # 1. produce: domain events and audit events, every subject, through EventProducer
    async with EventProducer(
        kafka_transport,
        schema_registry,
        privacy=FieldProtector.from_settings(kafka_transport, security),
    ) as producer:
        for p in people:
            await producer.send(users, p.registered())
            for i in range(3):
                await producer.send(audit_setup.topic, p.audited(i))

    # 2. a consumer holding the KEK: handlers see clear text; every record fails, so the
    #    retry topic and the DLQ get copies
    seen: dict[str, str] = {}
    consumer_keys = SubjectKeyLog.from_settings(kafka_transport, security)
    consumer = EventConsumer(
        kafka_transport,
        schema_registry,
        topics=[users],
        group_id=GROUP,
        poll_timeout_ms=100,
        retry_policy=RetryPolicy(attempts=2, delays_s=(0.1,), jitter=0),
        privacy=FieldRevealer(consumer_keys),
    )

    @consumer.handler(UserRegistered)
    async def fail(event: UserRegistered) -> None:
        seen[str(event.user_id)] = event.email
        raise RuntimeError("refused, to exercise the retry topic and the DLQ")

    task = asyncio.create_task(consumer.run())
    try:
        await eventually(
            lambda: consumer.stats.dead_lettered >= len(people), timeout_s=60, what="the DLQ"
        )
    finally:
        consumer.request_stop()
        await task
    assert seen == {p.id: p.email for p in people}  # decrypted before the handler

    # 3. a replay copies the topic's records elsewhere
    code, out, err = await cli(
        "replay", "--topic", users, "--to", replayed, "--from", "earliest", "--until", "latest",
        "--audit", "log", "--json", env=env,
    )  # fmt: skip
    assert code == 0, err

    # 4. the audit sink chains the audit topic into PostgreSQL
    settings = audit_setup.settings
    async with running_sink(
        transport=kafka_transport, database=database, registry=schema_registry, settings=settings
    ) as sink:

        async def landed() -> bool:
            return await count_rows(database, settings.db_schema) >= 3 * len(people)

        await run_until(sink, landed, timeout_s=60, what="audit rows")

    failure_topics = [f"{users}.{GROUP}.retry.1", f"{users}.{GROUP}.dlq"]
    every_topic = [users, replayed, audit_setup.topic, *failure_topics]
    all_values = [v for p in people for v in p.values]

    # No topic - main, retry, DLQ, replay target, audit - ever held a marked value in clear.
    for topic in every_topic:
        records = read_raw(bootstrap, topic)
        assert records, topic
        assert clear_hits(records, all_values) == [], topic

    # Before the shred, operators holding the KEK read everyone.
    code, out, err = await cli(
        "audit", "reveal", "--subject", ann.id, "--audit", "log", "--json", env=env
    )
    assert code == 0, err
    assert ann.username in out and ann.ip in out

    # 5. shred ann, from a process that holds no KEK
    no_keks = {k: v for k, v in env.items() if k not in ("SECURITY_PII_KEK", "AUDIT_KEK")}
    code, out, err = await cli("audit", "shred", "--subject", ann.id, "--json", env=no_keks)
    assert code == 0, err
    result = json.loads(out)
    assert result["shredded"] and result["database_key_deleted"] and result["topic_key_ids"]

    # A process that was running before the shred stops decrypting within the bound.
    old_reader = FieldRevealer(consumer_keys)

    async def ann_reads_shredded(reader: FieldRevealer) -> bool:
        events = await decode_all(schema_registry, bootstrap, users)
        for event in events:
            revealed = await reader.reveal(event)
            if str(revealed.user_id) == ann.id:
                return isinstance(revealed.email, EncryptedValue) and revealed.email.shredded
        return False

    await eventually(
        lambda: ann_reads_shredded(old_reader), timeout_s=security.pii_key_max_lag_s + 5,
        what="the running process to stop decrypting ann",
    )  # fmt: skip
    await consumer_keys.stop()

    # Every topic, raw: ann's key generations end in tombstones; nothing in clear anywhere.
    key_records = read_raw(bootstrap, keys_topic)
    latest = {k: v for k, v, _ in key_records}
    ann_keys = [k for k in latest if k is not None and k.decode().startswith(ann.id + "/")]
    assert ann_keys and all(latest[k] is None for k in ann_keys)
    for topic in every_topic:
        assert clear_hits(read_raw(bootstrap, topic), all_values) == [], topic

    # A fresh process with the KEK: ann reads as shredded everywhere, the others decrypt.
    code, out, err = await cli(
        "consume", "--topic", replayed, "--from-beginning", "--json", "--decrypt",
        "--idle-timeout-s", "3", env=env,
    )  # fmt: skip
    assert code == 0, err
    assert ben.email in out and cai.email in out
    assert clear_hits([(None, out.encode(), b"")], ann.values) == []
    code, out, err = await cli(
        "audit", "reveal", "--subject", ann.id, "--audit", "chain", "--json", env=env
    )
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert rows and all(r["event"]["ip_address"] == "[shredded]" for r in rows)
    assert clear_hits([(None, out.encode(), b"")], ann.values) == []
    code, out, err = await cli(
        "audit", "reveal", "--subject", ben.id, "--audit", "log", "--json", env=env
    )
    assert code == 0, err
    assert ben.username in out and ben.agent in out

    # Both reads were recorded in the audit chain's topic first.
    accesses = [
        e
        for e in await decode_all(schema_registry, bootstrap, audit_setup.topic, AuditEvent)
        if e.event_type is AuditEventType.DATA_ACCESSED
    ]
    assert {e.action for e in accesses} == {"consume.decrypt", "audit.reveal"}
    assert {e.resource_id for e in accesses} == {replayed, ann.id}

    # PostgreSQL, raw SQL: no clear value in any table; ann has no data key left.
    schema = settings.db_schema
    async with database.connect() as conn:
        payloads = (await conn.execute(text(f"SELECT payload FROM {schema}.audit_log"))).scalars()
        blob = b"\n".join(bytes(p) for p in payloads)
        left = (
            await conn.execute(
                text(f"SELECT count(*) FROM {schema}.subject_key WHERE subject_id = :s"),
                {"s": ann.id},
            )
        ).scalar_one()
    assert left == 0
    assert [v for v in all_values if v.encode() in blob] == []

    # The chain verifies online and as a bundle; the bundle holds no clear value either.
    code, out, err = await cli("audit", "verify", env=env)
    assert code == 0, out + err
    bundle = tmp_path / "bundle"
    code, out, err = await cli("audit", *export_args(bundle), env=env)
    assert code == 0, err
    code, out, err = await cli("audit", "verify", "--bundle", str(bundle), env=env)
    assert code == 0, out + err
    bundle_blob = b"\n".join(f.read_bytes() for f in bundle.rglob("*") if f.is_file())
    assert [v for v in all_values if v.encode() in bundle_blob] == []

    # ann returns: a new key generation; the new value decrypts, the old stays shredded.
    async with EventProducer(
        kafka_transport,
        schema_registry,
        privacy=FieldProtector.from_settings(kafka_transport, security),
    ) as producer:
        await producer.send(users, ann.registered())
    reader = FieldRevealer.from_settings(kafka_transport, security)
    try:
        events = [
            await reader.reveal(e) for e in await decode_all(schema_registry, bootstrap, users)
        ]
    finally:
        await reader.close()
    ann_events = [e for e in events if str(e.user_id) == ann.id]
    assert len(ann_events) == 2
    assert isinstance(ann_events[0].email, EncryptedValue) and ann_events[0].email.shredded
    assert ann_events[1].email == ann.email


async def decode_all(
    registry: SchemaRegistryClient, bootstrap: str, topic: str, cls: type[Any] = UserRegistered
) -> list[Any]:
    """Every ``cls`` event of ``topic``, decoded but not decrypted, in offset order."""
    from streaming.events import EventDeserializer
    from streaming.serde.context import SerializationContext

    decoder = EventDeserializer(registry)
    out: list[Any] = []
    for _key, value, _h in read_raw(bootstrap, topic):
        if value is None:
            continue
        event = await decoder.deserialize(value, SerializationContext(topic))
        if isinstance(event, cls):
            out.append(event)
    return out
