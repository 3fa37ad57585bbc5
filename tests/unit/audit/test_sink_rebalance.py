"""The sink's write step when a rebalance lands while records are being prepared."""

from __future__ import annotations

import uuid
from typing import Any, cast

from connectors.audit_sink.records import RecordPreparer
from connectors.audit_sink.sink import AuditSink
from connectors.audit_sink.store import AuditStore
from connectors.audit_sink.writer import PreparedRecord
from streaming.audit.keys import MacKeyRing
from streaming.testing import InMemoryTransport
from streaming.transport.base import Record, TopicPartition

TP = TopicPartition("audit.events", 0)


class _Writer:
    """Records what the sink tried to write; the test expects nothing."""

    def __init__(self) -> None:
        self.appended: list[TopicPartition] = []

    def seal(self, prepared: list[PreparedRecord]) -> None:
        return None

    async def append(self, topic: str, partition: int, *args: Any, **kwargs: Any) -> Any:
        self.appended.append(TopicPartition(topic, partition))
        raise AssertionError("a revoked partition must not be written")


class _Store:
    """The store as the sink's write step sees it: only its writer."""

    def __init__(self) -> None:
        self.writer = _Writer()


class _RevokingPreparer:
    """Prepares a record, and meanwhile the partition is taken away (as a rebalance
    during a registry outage would)."""

    def __init__(self) -> None:
        self.sink: AuditSink | None = None

    async def prepare(self, record: Record) -> PreparedRecord:
        assert self.sink is not None
        await self.sink._on_revoked([TP])
        return PreparedRecord(record.offset, uuid.uuid4(), "USER_LOGIN", None, None, {"v": 1})


async def test_records_of_a_partition_revoked_during_prepare_are_not_written() -> None:
    store, preparer = _Store(), _RevokingPreparer()
    sink = AuditSink(
        store=cast(AuditStore, store),
        consumer=InMemoryTransport().consumer(group_id="audit-sink"),
        preparer=cast(RecordPreparer, preparer),
        ring=cast(MacKeyRing, object()),
        topics=[TP.topic],
    )
    preparer.sink = sink
    sink._expected[TP] = -1  # positioned and owned when the batch was collected
    record = Record(TP.topic, TP.partition, 0, 0, None, b"\x00\x00\x00\x00\x01")

    await sink._write({TP: [record]})

    assert store.writer.appended == []
    assert sink.stats.rows == 0
