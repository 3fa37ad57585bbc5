"""SIGKILL a real ``streaming outbox relay`` process mid-stream, restart it, lose nothing.

Default size keeps ``make test`` fast; ``make soak`` sets OUTBOX_SOAK_EVENTS/KILLS higher.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from connectors.outbox_relay import OutboxWriter
from streaming.config import DatabaseSettings, KafkaSettings
from streaming.db import Database, TransactionManager
from streaming.serde.avro import AvroSerializer
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.testing import eventually
from streaming.transport.kafka import KafkaTransport
from tests.integration.children import assert_alive, child, kill_hard, stop_gracefully
from tests.integration.outbox.conftest import order, read_topic

EVENTS = int(os.environ.get("OUTBOX_SOAK_EVENTS", "2000"))
KILLS = int(os.environ.get("OUTBOX_SOAK_KILLS", "3"))
TopicFactory = Callable[..., Awaitable[str]]


async def _unsent_and_sent(database: Database, table: str) -> tuple[int, int]:
    async with database.connect() as conn:
        row = (
            await conn.execute(
                text(
                    f"SELECT count(*) FILTER (WHERE sent_at IS NULL), "
                    f"count(*) FILTER (WHERE sent_at IS NOT NULL) FROM {table}"
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def test_relay_killed_repeatedly_loses_nothing_and_keeps_key_order(
    database: Database,
    database_settings: DatabaseSettings,
    kafka_settings: KafkaSettings,
    kafka_transport: KafkaTransport,
    tables: tuple[str, str],
    topic_factory: TopicFactory,
) -> None:
    outbox, orders = tables
    topic = await topic_factory(partitions=3, prefix="outbox-kill")
    tm = TransactionManager(database)
    writer = OutboxWriter(AvroSerializer(InMemorySchemaRegistryClient()), table=outbox)
    assert database_settings.url is not None
    env = {
        **os.environ,
        "DATABASE_URL": database_settings.url.get_secret_value(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "streaming", "outbox", "relay", "--table", outbox]
    events = [order(f"acc-{i % 13}") for i in range(EVENTS)]
    waves = KILLS + 1
    per_wave = -(-EVENTS // waves)
    killed = 0
    for wave in range(waves):
        batch = events[wave * per_wave : (wave + 1) * per_wave]
        for start in range(0, len(batch), 100):  # business rows and events, 100 per txn
            async with tm.transaction() as session:
                for event in batch[start : start + 100]:
                    await session.execute(
                        text(f"INSERT INTO {orders} VALUES (:id, :account)"),
                        {"id": event.order_id, "account": event.account_id},
                    )
                    await writer.add(session, topic, event)
        _, sent_before = await _unsent_and_sent(database, outbox)
        with child([*command, "--batch-size", "25"], env) as proc:
            if wave < waves - 1:

                async def progressing(
                    proc: subprocess.Popen[bytes] = proc, before: int = sent_before
                ) -> bool:
                    assert_alive(proc)
                    return (await _unsent_and_sent(database, outbox))[1] > before

                await eventually(
                    progressing, timeout_s=60, what="the relay to publish", interval_s=0.01
                )
                kill_hard(proc)
                killed += 1
            else:

                async def drained(proc: subprocess.Popen[bytes] = proc) -> bool:
                    assert_alive(proc)
                    return (await _unsent_and_sent(database, outbox))[0] == 0

                await eventually(
                    drained, timeout_s=120, what="the outbox to drain", interval_s=0.01
                )
                stop_gracefully(proc)
    assert killed == KILLS
    assert await _unsent_and_sent(database, outbox) == (0, EVENTS)

    seen = await read_topic(kafka_transport, topic)
    ids = [eid for eid, _key, _offset in seen]
    assert set(ids) == {str(e.event_id) for e in events}  # nothing lost
    duplicates = len(ids) - EVENTS
    print(
        f"\n[measured] outbox relay SIGKILLed {KILLS}x over {EVENTS} events: 0 lost, "
        f"{duplicates} duplicate(s) identifiable by event-id"
    )
    positions = {str(e.event_id): i for i, e in enumerate(events)}
    by_key: dict[str, list[int]] = {}
    for eid, key, _offset in seen:
        by_key.setdefault(key, []).append(positions[eid])
    for key, order_seen in by_key.items():
        first_seen = list(dict.fromkeys(order_seen))
        assert first_seen == sorted(first_seen), f"key {key} out of order"
