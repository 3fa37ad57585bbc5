"""MAC key rotation mid-stream, PII envelope encryption round trip, crypto-shredding."""

from __future__ import annotations

import json
import secrets

from sqlalchemy import text

from connectors.audit_sink.config import AuditSinkSettings, decode_key_bytes
from connectors.audit_sink.pii import SHREDDED
from connectors.audit_sink.runtime import build_store, run_verify, running_sink
from streaming.db import Database
from streaming.security.errors import DecryptionError
from streaming.serde.client import SchemaRegistry
from streaming.transport.kafka import KafkaTransport
from tests.integration.audit.conftest import (
    AuditSetup,
    audit_event,
    count_rows,
    produce,
    run_until,
)


async def _sink_until(
    kafka_transport: KafkaTransport,
    database: Database,
    registry: SchemaRegistry,
    setup: AuditSetup,
    n: int,
    events: list,  # type: ignore[type-arg]
    rotate_to: tuple[str, bytes] | None = None,
) -> None:
    settings = setup.settings
    async with running_sink(
        transport=kafka_transport, database=database, registry=registry, settings=settings
    ) as sink:
        if rotate_to is not None:
            sink.rotate_key(sink.ring.rotated(*rotate_to))
        await produce(kafka_transport, registry, setup.topic, events)

        async def landed() -> bool:
            return await count_rows(database, settings.db_schema) >= n

        await run_until(sink, landed, timeout_s=60, what=f"{n} rows")


async def test_mac_key_rotation_mid_stream_keeps_the_chain_verifiable(
    kafka_transport: KafkaTransport,
    database: Database,
    memory_registry: SchemaRegistry,
    audit_setup: AuditSetup,
    drop_schema: None,
) -> None:
    first = [audit_event(i) for i in range(60)]
    await _sink_until(kafka_transport, database, memory_registry, audit_setup, 60, first)
    new_key = secrets.token_urlsafe(32)
    second = [audit_event(i) for i in range(60, 120)]
    await _sink_until(
        kafka_transport,
        database,
        memory_registry,
        audit_setup,
        120,
        second,
        rotate_to=("k2", decode_key_bytes(new_key)),
    )
    schema = audit_setup.settings.db_schema
    async with database.connect() as conn:
        key_ids = (
            await conn.execute(text(f"SELECT DISTINCT key_id FROM {schema}.audit_log"))
        ).scalars()
        assert set(key_ids) == {"k1", "k2"}
    both = AuditSinkSettings.model_validate(
        {
            **audit_setup.settings.model_dump(),
            "mac_keys": f"k1:{audit_setup.mac_key_b64},k2:{new_key}",
        }
    )
    report = await run_verify(transport=kafka_transport, database=database, settings=both)
    assert report.ok, report.to_dict()
    old_only = await run_verify(
        transport=kafka_transport, database=database, settings=audit_setup.settings
    )
    assert old_only.first is not None and old_only.first.reason.value == "unknown_key"


async def test_pii_is_encrypted_at_rest_decrypts_and_shreds(
    kafka_transport: KafkaTransport,
    database: Database,
    memory_registry: SchemaRegistry,
    audit_setup: AuditSetup,
    drop_schema: None,
) -> None:
    alice = [audit_event(i, user="alice", username="Alice Liddell") for i in range(5)]
    bob = [audit_event(i + 5, user="bob", username="Bob Builder") for i in range(5)]
    await _sink_until(kafka_transport, database, memory_registry, audit_setup, 10, alice + bob)
    schema = audit_setup.settings.db_schema
    async with database.connect() as conn:
        rows = (
            await conn.execute(
                text(f"SELECT subject_id, payload FROM {schema}.audit_log ORDER BY subject_id")
            )
        ).all()
    assert all(b"Alice" not in bytes(r.payload) and b"10.0." not in bytes(r.payload) for r in rows)
    store = build_store(database, audit_setup.settings)
    assert store.subject_keys.pii is not None

    async def reveal(subject: str) -> list[dict]:  # type: ignore[type-arg]
        wrapped = await store.subject_keys.wrapped(subject)
        key = store.subject_keys.pii.unwrap(subject, wrapped) if wrapped else None  # type: ignore[union-attr]
        out = []
        for r in rows:
            if r.subject_id == subject:
                envelope = json.loads(bytes(r.payload))
                out.append(
                    store.subject_keys.pii.reveal(  # type: ignore[union-attr]
                        envelope["event"], ["actor.username", "ip_address"], subject, key
                    )
                )
        return out

    alice_rows = await reveal("alice")
    assert {r["actor"]["username"] for r in alice_rows} == {"Alice Liddell"}
    assert {r["ip_address"] for r in alice_rows} == {e.ip_address for e in alice}
    assert await store.subject_keys.shred("alice") is True
    shredded = await reveal("alice")
    assert {r["actor"]["username"] for r in shredded} == {SHREDDED}
    assert {r["ip_address"] for r in shredded} == {SHREDDED}
    assert {r["actor"]["username"] for r in await reveal("bob")} == {"Bob Builder"}
    report = await run_verify(
        transport=kafka_transport, database=database, settings=audit_setup.settings
    )
    assert report.ok, report.to_dict()  # the chain covers ciphertext: shredding keeps it valid


async def test_kek_rotation_rewraps_data_keys_without_touching_rows(
    kafka_transport: KafkaTransport,
    database: Database,
    memory_registry: SchemaRegistry,
    audit_setup: AuditSetup,
    drop_schema: None,
) -> None:
    events = [audit_event(i, user="carol", username="Carol") for i in range(3)]
    await _sink_until(kafka_transport, database, memory_registry, audit_setup, 3, events)
    old = audit_setup.settings
    assert old.kek is not None
    rotated = AuditSinkSettings.model_validate(
        {**old.model_dump(), "kek": secrets.token_urlsafe(32), "previous_keks": old.kek}
    )
    store = build_store(database, rotated)
    assert await store.subject_keys.rewrap() == 1
    assert await store.subject_keys.rewrap() == 0
    wrapped = await store.subject_keys.wrapped("carol")
    assert wrapped is not None and store.subject_keys.pii is not None
    store.subject_keys.pii.unwrap("carol", wrapped)  # readable under the new KEK
    report = await run_verify(transport=kafka_transport, database=database, settings=rotated)
    assert report.ok, report.to_dict()


async def test_a_running_sink_never_encrypts_under_a_key_shredded_behind_its_back(
    kafka_transport: KafkaTransport,
    database: Database,
    memory_registry: SchemaRegistry,
    audit_setup: AuditSetup,
    drop_schema: None,
) -> None:
    """The sink caches unwrapped data keys; each batch re-reads the stored wrapped key, so a
    subject shredded by another process (the CLI) gets a fresh key, not the cached one."""
    settings = audit_setup.settings
    schema = settings.db_schema
    before = [audit_event(i, user="dave", username="Dave Before") for i in range(4)]
    after = [audit_event(i + 4, user="dave", username="Dave After") for i in range(4)]
    async with running_sink(
        transport=kafka_transport, database=database, registry=memory_registry, settings=settings
    ) as sink:
        await produce(kafka_transport, memory_registry, audit_setup.topic, before)

        async def landed(n: int) -> bool:
            return await count_rows(database, schema) >= n

        await run_until(sink, lambda: landed(4), timeout_s=60, what="4 rows")
        cached = sink.store.subject_keys.cache.get("dave")
        assert cached is not None
        admin = build_store(database, settings)  # another process's view, e.g. the CLI
        assert await admin.subject_keys.shred("dave") is True
        await produce(kafka_transport, memory_registry, audit_setup.topic, after)
        await run_until(sink, lambda: landed(8), timeout_s=60, what="8 rows")
        recached = sink.store.subject_keys.cache.get("dave")
        assert recached is not None and recached.wrapped != cached.wrapped
    wrapped = await admin.subject_keys.wrapped("dave")
    assert wrapped == recached.wrapped and admin.subject_keys.pii is not None
    key = admin.subject_keys.pii.unwrap("dave", wrapped)
    async with database.connect() as conn:
        payloads = (
            await conn.execute(
                text(f"SELECT payload FROM {schema}.audit_log ORDER BY kafka_offset")
            )
        ).scalars()
        events = [json.loads(bytes(p))["event"] for p in payloads]
    names = []
    for event in events:
        try:
            names.append(
                admin.subject_keys.pii.reveal(event, ["actor.username"], "dave", key)["actor"][
                    "username"
                ]
            )
        except DecryptionError:
            names.append(SHREDDED)  # encrypted under the shredded key
    assert sorted(names) == sorted([SHREDDED] * 4 + ["Dave After"] * 4)
    report = await run_verify(transport=kafka_transport, database=database, settings=settings)
    assert report.ok, report.to_dict()
