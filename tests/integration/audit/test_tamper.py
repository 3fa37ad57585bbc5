"""Each tamper kind, done with plain SQL by a superuser who bypasses the trigger, is caught.

The attacker runs with ``session_replication_role = replica`` (triggers off), as a
database administrator could; verification must still name the right chain, seq and
reason. The truncation case also deletes the checkpoint rows: the copy in Kafka wins.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import text

from connectors.audit_sink.runtime import run_verify
from streaming.audit_chain import ChainHead, MacKeyRing, Reason, extend_chain
from streaming.db import Database
from streaming.errors import DatabaseError
from streaming.transport.kafka import KafkaTransport
from tests.integration.audit.conftest import Sunk, tamper


async def first_finding(
    kafka_transport: KafkaTransport, database: Database, sunk: Sunk
) -> tuple[Reason, str | None, int | None] | None:
    report = await run_verify(
        transport=kafka_transport, database=database, settings=sunk.setup.settings
    )
    first = report.first
    return (first.reason, first.chain_id, first.seq) if first else None


async def test_clean_database_verifies(
    kafka_transport: KafkaTransport, database: Database, sunk: Sunk
) -> None:
    assert await first_finding(kafka_transport, database, sunk) is None


async def test_the_trigger_rejects_update_delete_and_truncate(
    database: Database, sunk: Sunk
) -> None:
    for sql in (
        f"UPDATE {sunk.schema}.audit_log SET event_type = 'X'",
        f"DELETE FROM {sunk.schema}.audit_log",
        f"TRUNCATE {sunk.schema}.audit_log",
        f"DELETE FROM {sunk.schema}.audit_checkpoint",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            async with database.connect() as conn:
                await conn.execute(text(sql))


async def test_the_writer_role_may_only_insert_and_select(database: Database, sunk: Sunk) -> None:
    role = sunk.setup.settings.writer_role
    with pytest.raises(DatabaseError, match="permission denied"):
        async with database.connect() as conn:
            await conn.execute(text(f"SET ROLE {role}"))
            await conn.execute(text(f"TRUNCATE {sunk.schema}.audit_log"))
    async with database.connect() as conn:
        await conn.execute(text(f"SET ROLE {role}"))
        assert (await conn.execute(text(f"SELECT count(*) FROM {sunk.schema}.audit_log"))).scalar()


@pytest.mark.parametrize(
    ("statements", "reason", "seq"),
    [
        pytest.param(
            [
                "UPDATE {s}.audit_log SET payload = convert_to(replace(convert_from(payload, 'UTF8'),"
                " 'place_order', 'cancel_order'), 'UTF8') WHERE chain_id = :chain AND seq = 5"
            ],
            Reason.PAYLOAD_ALTERED,
            5,
            id="edited-payload",
        ),
        pytest.param(
            ["UPDATE {s}.audit_log SET hash = sha256(hash) WHERE chain_id = :chain AND seq = 5"],
            Reason.HASH_ALTERED,
            5,
            id="edited-hash",
        ),
        pytest.param(
            ["DELETE FROM {s}.audit_log WHERE chain_id = :chain AND seq = 5"],
            Reason.ROW_MISSING,
            5,
            id="deleted-middle-row",
        ),
        pytest.param(
            [
                "UPDATE {s}.audit_log SET seq = 999999 WHERE chain_id = :chain AND seq = 5",
                "UPDATE {s}.audit_log SET seq = 5 WHERE chain_id = :chain AND seq = 6",
                "UPDATE {s}.audit_log SET seq = 6 WHERE chain_id = :chain AND seq = 999999",
            ],
            Reason.ROWS_SWAPPED,
            5,
            id="swapped-rows",
        ),
        pytest.param(
            [
                "UPDATE {s}.audit_log SET seq = seq + 1000000 WHERE chain_id = :chain AND seq >= 5",
                "UPDATE {s}.audit_log SET seq = seq - 1000000 + 1 "
                "WHERE chain_id = :chain AND seq > 1000000",
            ],
            Reason.SEQ_GAP,
            5,
            id="seq-gap",
        ),
        pytest.param(
            [
                "UPDATE {s}.audit_log SET seq = seq + 1000000 WHERE chain_id = :chain AND seq >= 5",
                "UPDATE {s}.audit_log SET seq = seq - 1000000 + 1 "
                "WHERE chain_id = :chain AND seq > 1000000",
                "INSERT INTO {s}.audit_log (chain_id, seq, kafka_offset, event_id, event_type, "
                "key_id, prev_hash, hash, payload) SELECT chain_id, 5, kafka_offset, :forged_id, "
                "'ORDER_PLACED', key_id, hash, sha256(hash), convert_to(:forged, 'UTF8') "
                "FROM {s}.audit_log WHERE chain_id = :chain AND seq = 4",
            ],
            Reason.ROW_INSERTED,
            5,
            id="inserted-forged-row",
        ),
    ],
)
async def test_row_tampering_is_detected_with_its_reason(
    kafka_transport: KafkaTransport,
    database: Database,
    sunk: Sunk,
    statements: list[str],
    reason: Reason,
    seq: int,
) -> None:
    await tamper(
        database,
        *[s.format(s=sunk.schema) for s in statements],
        chain=sunk.chain,
        forged_id=uuid.uuid4(),
        forged='{"forged":1}',
    )
    assert await first_finding(kafka_transport, database, sunk) == (reason, sunk.chain, seq)


async def test_truncated_tail_is_caught_by_the_checkpoint_in_kafka(
    kafka_transport: KafkaTransport, database: Database, sunk: Sunk
) -> None:
    keep = sunk.length - 3
    s = sunk.schema
    await tamper(
        database,
        f"DELETE FROM {s}.audit_log WHERE chain_id = :chain AND seq > :keep",
        f"UPDATE {s}.chain_head h SET seq = :keep, hash = l.hash, kafka_offset = l.kafka_offset "
        f"FROM {s}.audit_log l WHERE h.chain_id = :chain AND l.chain_id = :chain AND l.seq = :keep",
        f"DELETE FROM {s}.audit_checkpoint",  # the cunning part: no evidence left in PostgreSQL
        chain=sunk.chain,
        keep=keep,
    )
    assert await first_finding(kafka_transport, database, sunk) == (
        Reason.TRUNCATED,
        sunk.chain,
        keep + 1,
    )


async def test_chain_recomputed_without_the_key_is_detected(
    kafka_transport: KafkaTransport, database: Database, sunk: Sunk
) -> None:
    s = sunk.schema
    async with database.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT seq, kafka_offset, payload FROM {s}.audit_log "
                    "WHERE chain_id = :chain ORDER BY seq"
                ),
                {"chain": sunk.chain},
            )
        ).all()
    attacker = MacKeyRing({"k1": hashlib.sha256(b"guess").digest()}, "k1")
    payloads = [(r.kafka_offset, bytes(r.payload)) for r in rows]
    payloads[0] = (payloads[0][0], payloads[0][1].replace(b"place_order", b"cancel_order"))
    forged = extend_chain(attacker, ChainHead.genesis(sunk.chain), payloads)
    await tamper(
        database,
        *[
            f"UPDATE {s}.audit_log SET payload = :p{r.seq}, prev_hash = :v{r.seq}, hash = :h{r.seq} "
            f"WHERE chain_id = :chain AND seq = {r.seq}"
            for r in forged
        ],
        chain=sunk.chain,
        **{f"p{r.seq}": r.payload for r in forged},
        **{f"v{r.seq}": r.prev_hash for r in forged},
        **{f"h{r.seq}": r.hash for r in forged},
    )
    assert await first_finding(kafka_transport, database, sunk) == (
        Reason.CHAIN_RECOMPUTED,
        sunk.chain,
        1,
    )


async def test_deleted_checkpoint_is_detected(
    kafka_transport: KafkaTransport, database: Database, sunk: Sunk
) -> None:
    await tamper(database, f"DELETE FROM {sunk.schema}.audit_checkpoint WHERE checkpoint_id = 1")
    assert await first_finding(kafka_transport, database, sunk) == (
        Reason.CHECKPOINT_MISSING,
        None,
        1,
    )


async def test_deleted_latest_checkpoint_is_caught_by_kafka(
    kafka_transport: KafkaTransport, database: Database, sunk: Sunk
) -> None:
    latest = await database.execute_scalar(
        f"SELECT max(checkpoint_id) FROM {sunk.schema}.audit_checkpoint"
    )
    await tamper(
        database, f"DELETE FROM {sunk.schema}.audit_checkpoint WHERE checkpoint_id = {latest}"
    )
    assert await first_finding(kafka_transport, database, sunk) == (
        Reason.CHECKPOINT_MISSING,
        None,
        latest,
    )


async def test_altered_checkpoint_is_detected(
    kafka_transport: KafkaTransport, database: Database, sunk: Sunk
) -> None:
    await tamper(
        database,
        f"UPDATE {sunk.schema}.audit_checkpoint SET body = convert_to(replace("
        "convert_from(body, 'UTF8'), :old, :new), 'UTF8') WHERE checkpoint_id = 1",
        old='"seq":',
        new='"seq":1',
    )
    assert await first_finding(kafka_transport, database, sunk) == (
        Reason.CHECKPOINT_ALTERED,
        None,
        1,
    )
