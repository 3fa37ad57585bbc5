"""DLQ redrive on a real broker: filters, idempotent repeats, parking."""

from __future__ import annotations

import uuid

from streaming.clients.retry import FailureInfo, dlq_topic, failure_headers, parking_topic
from streaming.replay import DlqRedriver, RedriveFilter, SnapshotStore
from streaming.replay.redrive import H_REDRIVE_COUNT, redrive_count
from streaming.testing.plugin import TopicFactory
from streaming.transport.base import OutgoingRecord
from streaming.transport.kafka import KafkaTransport
from tests.integration.replay.conftest import produce, read_all

KINDS = ("asyncio.TimeoutError", "ValueError", "payments.CardDeclined")


def dead_letter(topic: str, group: str, i: int, *, count: int | None = None) -> OutgoingRecord:
    kind = KINDS[i % 3]
    info = FailureInfo(topic, i % 2, i, 1_000, 3, group, kind, "failed", "trace", 2_000 + i)
    headers = failure_headers(info, base=(("event-id", f"e-{i}".encode()),))
    if count is not None:
        headers = (*headers, (H_REDRIVE_COUNT, str(count).encode()))
    return OutgoingRecord(
        dlq_topic(topic, group), f"v-{i}".encode(), key=f"k-{i}".encode(), headers=headers
    )


async def test_redrive_filters_by_type_repeats_are_noops_and_repeat_offenders_park(
    kafka_transport: KafkaTransport, topic_factory: TopicFactory, store: SnapshotStore
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    source = await topic_factory(2, prefix="redrive")
    await topic_factory(2, name=dlq_topic(source, group))
    await topic_factory(2, name=parking_topic(source, group))
    records = [dead_letter(source, group, i) for i in range(60)]
    records += [dead_letter(source, group, i, count=3) for i in (60, 63, 66)]  # TimeoutErrors
    await produce(kafka_transport, records)
    redriver = DlqRedriver(kafka_transport, source, group, store=store, max_redrives=3)
    timeouts = RedriveFilter(exception_types=("TimeoutError",))

    preview = await redriver.redrive(timeouts)
    assert (preview.redriven, preview.parked) == (20, 3)
    assert await read_all(kafka_transport, source) == []

    first = await redriver.redrive(timeouts, dry_run=False)
    assert (first.redriven, first.parked) == (20, 3)
    moved = await read_all(kafka_transport, source)
    assert sorted(r.header("event-id") or b"" for r in moved) == sorted(
        f"e-{i}".encode() for i in range(0, 60, 3)
    )
    assert all(r.header("x-exception-type") is None for r in moved)
    assert {r.header("x-redrive-id") for r in moved} == {first.redrive_id.encode()}
    assert {redrive_count(r.headers) for r in moved} == {1}
    parked = await read_all(kafka_transport, parking_topic(source, group))
    assert sorted(r.key or b"" for r in parked) == [b"k-60", b"k-63", b"k-66"]
    assert {r.header("x-exception-type") for r in parked} == {b"asyncio.TimeoutError"}

    second = await redriver.redrive(timeouts, dry_run=False)
    assert second.noop
    assert second.already_moved == 23
    assert len(await read_all(kafka_transport, source)) == 20
    assert len(await read_all(kafka_transport, parking_topic(source, group))) == 3
