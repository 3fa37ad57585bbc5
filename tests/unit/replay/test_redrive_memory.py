"""DLQ redrive against the in-memory transport."""

from __future__ import annotations

import asyncio

import pytest

from streaming.clients.retry import FailureInfo, failure_headers
from streaming.replay import (
    ConcurrentRunFencedError,
    DlqRedriver,
    RedriveFilter,
    ReplayAuditEvent,
)
from streaming.replay.redrive import H_REDRIVE_COUNT, redrive_count
from streaming.transport.base import OutgoingRecord
from tests.unit.replay.conftest import Cluster


def failed(topic: str, i: int, exc: str, count: int | None = None) -> OutgoingRecord:
    info = FailureInfo("orders", 0, i, 1, 3, "g", exc, "boom", "", 1_000 + i)
    headers = failure_headers(info, base=(("event-id", str(i).encode()),))
    if count is not None:
        headers = (*headers, (H_REDRIVE_COUNT, str(count).encode()))
    return OutgoingRecord(topic, f"v{i}".encode(), key=f"k{i}".encode(), headers=headers)


async def setup(cluster: Cluster) -> None:
    await cluster.topic("orders", 2)
    dlq = await cluster.topic("orders.g.dlq", 2)
    kinds = ["TimeoutError", "ValueError", "app.PaymentDeclined"]
    await cluster.produce([failed(dlq, i, kinds[i % 3]) for i in range(30)])


async def test_dry_run_counts_and_moves_nothing(cluster: Cluster) -> None:
    await setup(cluster)
    result = await DlqRedriver(cluster.transport, "orders", "g").redrive(
        RedriveFilter(exception_types=("TimeoutError",))
    )
    assert result.dry_run
    assert result.redriven == 10
    assert result.by_exception_type == {"TimeoutError": 10}
    assert cluster.transport.records("orders") == []


async def test_redrive_moves_only_the_filtered_types_and_a_repeat_is_a_noop(
    cluster: Cluster,
) -> None:
    await setup(cluster)
    audits: list[ReplayAuditEvent] = []

    async def audit(event: ReplayAuditEvent) -> None:
        audits.append(event)

    redriver = DlqRedriver(cluster.transport, "orders", "g", audit=audit)
    flt = RedriveFilter(exception_types=("TimeoutError", "PaymentDeclined"))
    first = await redriver.redrive(flt, dry_run=False)
    assert first.redriven == 20
    moved = cluster.transport.records("orders", read_committed=True)
    assert len(moved) == 20
    assert all(r.header("x-exception-type") is None for r in moved)
    assert {redrive_count(r.headers) for r in moved} == {1}
    second = await redriver.redrive(flt, dry_run=False)
    assert second.noop
    assert second.already_moved == 20
    assert len(cluster.transport.records("orders", read_committed=True)) == 20
    assert audits[0].event_type == "DLQ_REDRIVE"
    assert audits[0].details["redriven"] == "20"
    rest = await redriver.redrive(dry_run=False)
    assert rest.redriven == 10  # the ValueErrors, never redriven before


async def test_records_redriven_k_times_are_parked(cluster: Cluster) -> None:
    await cluster.topic("orders", 1)
    dlq = await cluster.topic("orders.g.dlq", 1)
    await cluster.produce([failed(dlq, 0, "E", count=2), failed(dlq, 1, "E", count=1)])
    result = await DlqRedriver(cluster.transport, "orders", "g", max_redrives=2).redrive(
        dry_run=False
    )
    assert (result.redriven, result.parked) == (1, 1)
    parked = cluster.transport.records("orders.g.parking", read_committed=True)
    assert [r.key for r in parked] == [b"k0"]
    assert parked[0].header("x-exception-type") == b"E"


async def test_redrive_to_another_topic(cluster: Cluster) -> None:
    await setup(cluster)
    other = await cluster.topic("orders-v2", 1)
    result = await DlqRedriver(cluster.transport, "orders", "g").redrive(
        RedriveFilter(offsets={0: (0, 3)}), destination=other, dry_run=False
    )
    assert result.redriven == 3
    assert len(cluster.transport.records(other, read_committed=True)) == 3


async def test_a_second_concurrent_redrive_fences_the_first(cluster: Cluster) -> None:
    await setup(cluster)
    progressed = asyncio.Event()

    def on_progress(done: int, total: int) -> None:
        progressed.set()

    slow = DlqRedriver(cluster.transport, "orders", "g", batch_size=5)
    first = asyncio.create_task(slow.redrive(dry_run=False, rate=10, on_progress=on_progress))
    await asyncio.wait_for(progressed.wait(), 5)
    second = await DlqRedriver(cluster.transport, "orders", "g").redrive(dry_run=False)
    with pytest.raises(ConcurrentRunFencedError, match="took over"):
        await first
    moved = cluster.transport.records("orders", read_committed=True)
    assert sorted(r.header("event-id") or b"" for r in moved) == sorted(
        str(i).encode() for i in range(30)
    )
    assert second.redriven + second.already_moved == 30
