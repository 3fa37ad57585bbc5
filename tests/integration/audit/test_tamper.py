"""A hostile database administrator against ``streaming audit verify`` and offline bundles.

Each attack is plain SQL over asyncpg as a superuser who switches the append-only
triggers off (``session_replication_role = replica``). The verifier runs as an outside
auditor would: the CLI in a subprocess holding only the MAC keys and the public
verification key (no signing key, no KEK). One sink run per module feeds every case; the
tables are restored from a snapshot before each one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from connectors.audit_sink.runtime import run_verify, running_sink
from streaming.audit_chain import (
    ChainHead,
    Checkpoint,
    MacKeyRing,
    RowColumns,
    extend_chain,
)
from streaming.audit_verify import Reason
from streaming.config import DatabaseSettings, KafkaSettings
from streaming.db import Database
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.transport.base import AdminTransport, TopicSpec
from streaming.transport.kafka import KafkaTransport
from tests.integration.audit.conftest import (
    AuditSetup,
    audit_env,
    audit_event,
    count_rows,
    export_args,
    make_audit_setup,
    produce,
    run_cli,
    run_until,
)

TABLES = ("audit_log", "chain_head", "audit_checkpoint", "verify_state")
Expected = tuple[Reason, str | None, int]


@dataclass
class World:
    setup: AuditSetup
    schema: str
    dsn: str
    chain: str  # the longest chain
    length: int
    verified_checkpoint: int  # what verify_state names (a full verify after round one)
    verified_head: int  # the chain's head seq in that checkpoint
    auditor_env: dict[str, str]


def auditor_env(setup: AuditSetup, dsn: str, bootstrap: str) -> dict[str, str]:
    """MAC keys and the public key only: what an outside auditor holds."""
    settings = setup.settings
    public = settings.signer().public_key.public_bytes_raw()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIT_", "SECURITY_"))}
    own = audit_env(settings)
    for secret in ("AUDIT_SIGNING_KEY", "AUDIT_KEK", "AUDIT_PREVIOUS_KEKS"):
        own.pop(secret, None)
    return {
        **env,
        **own,
        "AUDIT_VERIFY_KEYS": base64.b64encode(public).decode(),
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "LOG_LEVEL": "WARNING",
    }


async def superuser(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await conn.execute("SET session_replication_role = replica")  # triggers off
    return conn


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(
    kafka_transport: KafkaTransport,
    kafka_settings: KafkaSettings,
    kafka_admin: AdminTransport,
    database_settings: DatabaseSettings,
) -> AsyncIterator[World]:
    topic, cp_topic = f"audit-{uuid.uuid4().hex[:12]}", f"audit-cp-{uuid.uuid4().hex[:12]}"
    await kafka_admin.create_topics(
        [TopicSpec(topic, 3, 1, {}), TopicSpec(cp_topic, 1, 1, {"cleanup.policy": "compact"})]
    )
    setup = make_audit_setup(topic, cp_topic, checkpoint_every_s=3600.0)
    settings, schema = setup.settings, setup.settings.db_schema
    assert database_settings.url is not None
    dsn = database_settings.url.get_secret_value().replace("+asyncpg", "")
    database = Database(database_settings)
    registry = InMemorySchemaRegistryClient()
    try:
        async with running_sink(
            transport=kafka_transport, database=database, registry=registry, settings=settings
        ) as sink:
            for rnd in range(2):
                events = [audit_event(rnd * 30 + i) for i in range(30)]
                await produce(kafka_transport, registry, topic, events)

                async def landed(n: int = 30 * (rnd + 1)) -> bool:
                    return await count_rows(database, schema) >= n

                await run_until(sink, landed, timeout_s=60, what="audit rows")
                await sink.checkpoint()
                if rnd == 0:  # an authenticated verify_state for --since-checkpoint
                    report = await run_verify(
                        transport=kafka_transport, database=database, settings=settings
                    )
                    assert report.ok, report.to_dict()
        conn = await superuser(dsn)
        try:
            chain, length = await conn.fetchrow(
                f"SELECT chain_id, count(*) FROM {schema}.audit_log "
                "GROUP BY chain_id ORDER BY count(*) DESC, chain_id LIMIT 1"
            )
            verified = await conn.fetchval(f"SELECT checkpoint_id FROM {schema}.verify_state")
            body = await conn.fetchval(
                f"SELECT body FROM {schema}.audit_checkpoint WHERE checkpoint_id = $1", verified
            )
            head = Checkpoint.parse(bytes(body)).head(chain)
            assert head is not None and length >= 12 and length - head.seq >= 3
            await conn.execute(f"CREATE SCHEMA {schema}_orig")
            for table in TABLES:
                await conn.execute(f"CREATE TABLE {schema}_orig.{table} AS TABLE {schema}.{table}")
        finally:
            await conn.close()
        yield World(
            setup,
            schema,
            dsn,
            chain,
            length,
            verified,
            head.seq,
            auditor_env(setup, dsn, kafka_settings.bootstrap_servers),
        )
    finally:
        conn = await superuser(dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema}_orig CASCADE")
        finally:
            await conn.close()
        await kafka_admin.delete_topics([topic, cp_topic])
        await database.close()


@pytest_asyncio.fixture(loop_scope="session")
async def w(world: World) -> World:
    """The module's world with every table back as the sink left it."""
    conn = await superuser(world.dsn)
    try:
        async with conn.transaction():
            for table in TABLES:
                await conn.execute(f"DELETE FROM {world.schema}.{table}")
                await conn.execute(
                    f"INSERT INTO {world.schema}.{table} SELECT * FROM {world.schema}_orig.{table}"
                )
    finally:
        await conn.close()
    return world


async def verify_json(w: World, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = await run_cli("verify", "--json", *args, env=w.auditor_env)
    assert code in (0, 1), err
    return code, json.loads(out)


async def export_and_verify_bundle(
    w: World, tmp_path: Path, until: datetime | None = None
) -> tuple[int, dict[str, Any]]:
    bundle = tmp_path / f"bundle-{uuid.uuid4().hex[:6]}"
    code, _, err = await run_cli(*export_args(bundle, until=until), env=w.auditor_env)
    assert code == 0, err
    offline = {**w.auditor_env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    code, out, err = await run_cli("verify", "--bundle", str(bundle), "--json", env=offline)
    assert code in (0, 1), err
    return code, json.loads(out)


def first(report: dict[str, Any]) -> tuple[Reason, str | None, int] | None:
    found = report["first"]
    return (Reason(found["reason"]), found["chain"], found["seq"]) if found else None


# --------------------------------------------------------------------------- the attacks

Attack = Callable[[asyncpg.Connection, World], Awaitable[Expected]]
ATTACKS: dict[str, Attack] = {}
BUNDLE_ATTACKS = ("edited-payload", "tail-cut-rolled-back", "chain-deleted", "recorded-at-moved")


def attack(name: str) -> Callable[[Attack], Attack]:
    def register(fn: Attack) -> Attack:
        ATTACKS[name] = fn
        return fn

    return register


@attack("edited-payload")
async def _edit_payload(conn: asyncpg.Connection, w: World) -> Expected:
    await conn.execute(
        f"UPDATE {w.schema}.audit_log SET payload = convert_to(replace(convert_from(payload, "
        "'UTF8'), 'place_order', 'cancel_order'), 'UTF8') WHERE chain_id = $1 AND seq = 5",
        w.chain,
    )
    return Reason.PAYLOAD_ALTERED, w.chain, 5


@attack("edited-hash")
async def _edit_hash(conn: asyncpg.Connection, w: World) -> Expected:
    await conn.execute(
        f"UPDATE {w.schema}.audit_log SET hash = sha256(hash) WHERE chain_id = $1 AND seq = 5",
        w.chain,
    )
    return Reason.HASH_ALTERED, w.chain, 5


COLUMN_EDITS = {
    "event_type": "event_type = 'ORDER_CANCELLED'",
    "subject_id": "subject_id = 'someone-else'",
    "occurred_at": "occurred_at = occurred_at - interval '1 day'",
    "event_id": "event_id = gen_random_uuid()",
    "recorded_at": "recorded_at = recorded_at + interval '1 day'",
    "kafka_offset": "kafka_offset = kafka_offset + 1000",
}


def _column_attack(assignment: str) -> Attack:
    async def edit(conn: asyncpg.Connection, w: World) -> Expected:
        await conn.execute(
            f"UPDATE {w.schema}.audit_log SET {assignment} WHERE chain_id = $1 AND seq = 5",
            w.chain,
        )
        return Reason.PAYLOAD_ALTERED, w.chain, 5

    return edit


for _column, _assignment in COLUMN_EDITS.items():
    attack(f"edited-{_column}")(_column_attack(_assignment))


@attack("deleted-middle-row-renumbered")
async def _delete_renumber(conn: asyncpg.Connection, w: World) -> Expected:
    s = w.schema
    await conn.execute(f"DELETE FROM {s}.audit_log WHERE chain_id = $1 AND seq = 5", w.chain)
    await conn.execute(
        f"UPDATE {s}.audit_log SET seq = seq + 1000000 WHERE chain_id = $1 AND seq > 5", w.chain
    )
    await conn.execute(
        f"UPDATE {s}.audit_log SET seq = seq - 1000001 WHERE chain_id = $1 AND seq > 1000000",
        w.chain,
    )
    await conn.execute(f"UPDATE {s}.chain_head SET seq = seq - 1 WHERE chain_id = $1", w.chain)
    return Reason.LINK_BROKEN, w.chain, 5


@attack("tail-cut-rolled-back")
async def _cut_tail(conn: asyncpg.Connection, w: World) -> Expected:
    s, keep = w.schema, w.length - 3
    await conn.execute(f"DELETE FROM {s}.audit_log WHERE chain_id = $1 AND seq > $2", w.chain, keep)
    await conn.execute(
        f"UPDATE {s}.chain_head h SET seq = l.seq, hash = l.hash, kafka_offset = l.kafka_offset "
        f"FROM {s}.audit_log l WHERE h.chain_id = $1 AND l.chain_id = $1 AND l.seq = $2",
        w.chain,
        keep,
    )
    await conn.execute(f"DELETE FROM {s}.audit_checkpoint")  # no evidence left in PostgreSQL
    return Reason.TRUNCATED, w.chain, keep + 1


@attack("chain-deleted")
async def _delete_chain(conn: asyncpg.Connection, w: World) -> Expected:
    s = w.schema
    await conn.execute(f"DELETE FROM {s}.audit_log WHERE chain_id = $1", w.chain)
    await conn.execute(f"DELETE FROM {s}.chain_head WHERE chain_id = $1", w.chain)
    await conn.execute(f"DELETE FROM {s}.audit_checkpoint")
    return Reason.CHAIN_MISSING, w.chain, 1


@attack("recorded-at-moved")
async def _move_out_of_window(conn: asyncpg.Connection, w: World) -> Expected:
    """The last rows' recorded_at pushed past the export window (so an export skips them)."""
    await conn.execute(
        f"UPDATE {w.schema}.audit_log SET recorded_at = recorded_at + interval '2 days' "
        "WHERE chain_id = $1 AND seq > $2",
        w.chain,
        w.length - 3,
    )
    return Reason.CHAIN_RECOMPUTED, w.chain, w.length - 2


@attack("swapped-rows")
async def _swap(conn: asyncpg.Connection, w: World) -> Expected:
    for old, new in ((5, 999999), (6, 5), (999999, 6)):
        await conn.execute(
            f"UPDATE {w.schema}.audit_log SET seq = $3 WHERE chain_id = $1 AND seq = $2",
            w.chain,
            old,
            new,
        )
    return Reason.ROWS_SWAPPED, w.chain, 5


async def _shift_from(conn: asyncpg.Connection, w: World, seq: int) -> None:
    """Renumber rows from ``seq`` on one up, leaving a hole at ``seq``."""
    await conn.execute(
        f"UPDATE {w.schema}.audit_log SET seq = seq + 1000000 WHERE chain_id = $1 AND seq >= $2",
        w.chain,
        seq,
    )
    await conn.execute(
        f"UPDATE {w.schema}.audit_log SET seq = seq - 999999 WHERE chain_id = $1 AND seq > 1000000",
        w.chain,
    )


@attack("seq-gap")
async def _gap(conn: asyncpg.Connection, w: World) -> Expected:
    await _shift_from(conn, w, 5)
    return Reason.SEQ_GAP, w.chain, 5


@attack("inserted-row")
async def _insert(conn: asyncpg.Connection, w: World) -> Expected:
    await _shift_from(conn, w, 5)
    await conn.execute(
        f"INSERT INTO {w.schema}.audit_log (chain_id, seq, kafka_offset, event_id, event_type, "
        "key_id, prev_hash, hash, payload) SELECT chain_id, 5, kafka_offset, $2, "
        "'ORDER_PLACED', key_id, hash, sha256(hash), convert_to('{\"forged\":1}', 'UTF8') "
        f"FROM {w.schema}.audit_log WHERE chain_id = $1 AND seq = 4",
        w.chain,
        uuid.uuid4(),
    )
    return Reason.ROW_INSERTED, w.chain, 5


@attack("chain-recomputed-with-invented-key")
async def _recompute(conn: asyncpg.Connection, w: World) -> Expected:
    rows = await conn.fetch(
        f"SELECT * FROM {w.schema}.audit_log WHERE chain_id = $1 ORDER BY seq", w.chain
    )
    items = [(r["kafka_offset"], bytes(r["payload"])) for r in rows]
    items[0] = (items[0][0], items[0][1].replace(b"place_order", b"cancel_order"))
    columns = [
        RowColumns.of(
            r["event_id"], r["event_type"], r["occurred_at"], r["subject_id"], r["recorded_at"]
        )
        for r in rows
    ]
    attacker = MacKeyRing({"k1": hashlib.sha256(b"guess").digest()}, "k1")
    forged = extend_chain(attacker, ChainHead.genesis(w.chain), items, columns)
    await conn.executemany(
        f"UPDATE {w.schema}.audit_log SET payload = $3, prev_hash = $4, hash = $5 "
        "WHERE chain_id = $1 AND seq = $2",
        [(w.chain, r.seq, r.payload, r.prev_hash, r.hash) for r in forged],
    )
    await conn.execute(
        f"UPDATE {w.schema}.chain_head SET hash = $2 WHERE chain_id = $1", w.chain, forged[-1].hash
    )
    return Reason.CHAIN_RECOMPUTED, w.chain, 1


@attack("checkpoint-edited")
async def _edit_checkpoint(conn: asyncpg.Connection, w: World) -> Expected:
    await conn.execute(
        f"UPDATE {w.schema}.audit_checkpoint SET body = convert_to(replace(convert_from(body, "
        "'UTF8'), '\"seq\":', '\"seq\":1'), 'UTF8') WHERE checkpoint_id = 1"
    )
    return Reason.CHECKPOINT_ALTERED, None, 1


@attack("checkpoint-created-at-edited")
async def _edit_checkpoint_time(conn: asyncpg.Connection, w: World) -> Expected:
    await conn.execute(
        f"UPDATE {w.schema}.audit_checkpoint SET created_at = created_at - interval '1 hour' "
        "WHERE checkpoint_id = 1"
    )
    return Reason.CHECKPOINT_ALTERED, None, 1


@attack("checkpoint-deleted")
async def _delete_checkpoint(conn: asyncpg.Connection, w: World) -> Expected:
    await conn.execute(f"DELETE FROM {w.schema}.audit_checkpoint WHERE checkpoint_id = 1")
    return Reason.CHECKPOINT_MISSING, None, 1


@attack("latest-checkpoint-deleted")
async def _delete_latest_checkpoint(conn: asyncpg.Connection, w: World) -> Expected:
    latest = await conn.fetchval(f"SELECT max(checkpoint_id) FROM {w.schema}.audit_checkpoint")
    await conn.execute(f"DELETE FROM {w.schema}.audit_checkpoint WHERE checkpoint_id = $1", latest)
    return Reason.CHECKPOINT_MISSING, None, latest


@attack("verify-state-raised")
async def _raise_verify_state(conn: asyncpg.Connection, w: World) -> Expected:
    """A row after the verified checkpoint is edited, then verify_state claims the newest
    checkpoint was verified, so an incremental run would start past the edit."""
    seq = w.verified_head + 1
    await conn.execute(
        f"UPDATE {w.schema}.audit_log SET payload = convert_to(replace(convert_from(payload, "
        "'UTF8'), 'place_order', 'cancel_order'), 'UTF8') WHERE chain_id = $1 AND seq = $2",
        w.chain,
        seq,
    )
    await conn.execute(
        f"UPDATE {w.schema}.verify_state SET checkpoint_id = "
        f"(SELECT max(checkpoint_id) FROM {w.schema}.audit_checkpoint)"
    )
    return Reason.PAYLOAD_ALTERED, w.chain, seq


# --------------------------------------------------------------------------- the tests


async def test_an_untouched_database_and_its_bundle_verify(w: World, tmp_path: Path) -> None:
    code, report = await verify_json(w, "--since-checkpoint")
    assert code == 0, report
    assert report["started_from_checkpoint"] == w.verified_checkpoint
    code, report = await verify_json(w)
    assert code == 0 and report["rows"] >= 60 and report["legacy_rows"] == 0, report
    code, report = await export_and_verify_bundle(w, tmp_path)
    assert code == 0, report
    assert report["chains"] == 3 and report["rows"] >= 60


@pytest.mark.parametrize("name", sorted(ATTACKS))
async def test_each_attack_makes_verify_exit_1_naming_what_was_hit(
    w: World, name: str, tmp_path: Path
) -> None:
    conn = await superuser(w.dsn)
    try:
        expected = await ATTACKS[name](conn, w)
    finally:
        await conn.close()
    args = ("--since-checkpoint",) if name == "verify-state-raised" else ()
    code, report = await verify_json(w, *args)
    assert (code, first(report)) == (1, expected), report
    if name == "verify-state-raised":
        reasons = [f["reason"] for f in report["findings"]]
        assert Reason.VERIFY_STATE_ALTERED.value in reasons
    if name in BUNDLE_ATTACKS:
        code, bundle = await export_and_verify_bundle(w, tmp_path)
        found = first(bundle)
        assert code == 1 and found is not None and found[1] == w.chain, bundle


async def test_a_bundle_of_a_past_window_still_shows_a_cut_tail(w: World, tmp_path: Path) -> None:
    """The window ends with round one; the tail cut (nothing rolled back) lies after it."""
    conn = await superuser(w.dsn)
    try:
        until = await conn.fetchval(
            f"SELECT recorded_at FROM {w.schema}.audit_log WHERE chain_id = $1 AND seq = $2",
            w.chain,
            w.verified_head + 1,
        )
    finally:
        await conn.close()
    code, report = await export_and_verify_bundle(w, tmp_path, until=until)
    assert code == 0 and report["window"][1].startswith(until.strftime("%Y-%m-%dT%H:%M")), report
    conn = await superuser(w.dsn)
    try:
        await conn.execute(
            f"DELETE FROM {w.schema}.audit_log WHERE chain_id = $1 AND seq > $2",
            w.chain,
            w.length - 3,
        )
    finally:
        await conn.close()
    code, report = await export_and_verify_bundle(w, tmp_path, until=until)
    assert (code, first(report)) == (1, (Reason.TRUNCATED, w.chain, w.length)), report


async def test_plain_verify_lines_are_never_wrapped(w: World) -> None:
    narrow = {**w.auditor_env, "COLUMNS": "20"}
    code, out, _ = await run_cli("verify", env=narrow)
    assert code == 0 and len(out.strip().splitlines()) == 1 and out.startswith("intact: ")
    conn = await superuser(w.dsn)
    try:
        await ATTACKS["edited-hash"](conn, w)
    finally:
        await conn.close()
    code, _, err = await run_cli("verify", env=narrow)
    line = err.strip().splitlines()[0]
    assert code == 1 and line.startswith(f"BROKEN chain={w.chain} seq=5 reason=hash_altered")


async def test_the_trigger_rejects_update_delete_and_truncate(w: World) -> None:
    conn = await asyncpg.connect(w.dsn)
    try:
        for sql in (
            f"UPDATE {w.schema}.audit_log SET event_type = 'X'",
            f"DELETE FROM {w.schema}.audit_log",
            f"TRUNCATE {w.schema}.audit_log",
            f"DELETE FROM {w.schema}.audit_checkpoint",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
    finally:
        await conn.close()


async def test_the_writer_role_may_only_insert_and_select(w: World) -> None:
    conn = await asyncpg.connect(w.dsn)
    try:
        await conn.execute(f"SET ROLE {w.setup.settings.writer_role}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute(f"TRUNCATE {w.schema}.audit_log")
        assert await conn.fetchval(f"SELECT count(*) FROM {w.schema}.audit_log") >= w.length
    finally:
        await conn.close()
