"""The pure redrive rules: filters, the ledger's interval sets, parking and header rewriting."""

from __future__ import annotations

from streaming.clients.retry import FailureInfo, failure_headers
from streaming.replay.redrive import (
    H_REDRIVE_COUNT,
    H_REDRIVE_ID,
    Decision,
    RedriveFilter,
    RedriveLedger,
    add_offsets,
    contains,
    decide,
    parked_record,
    redrive_count,
    redriven_record,
)
from streaming.transport.base import Record


def dlq_record(
    offset: int, exc: str, *, failed_at: int = 1_000, count: int | None = None, partition: int = 0
) -> Record:
    info = FailureInfo("orders", 0, offset, 1, 3, "g", exc, "boom", "stack", failed_at)
    headers = failure_headers(info, base=(("event-id", b"e1"),))
    if count is not None:
        headers = (*headers, (H_REDRIVE_COUNT, str(count).encode()))
    return Record("orders.g.dlq", partition, offset, 5, b"k", b"v", headers)


def test_intervals_merge_and_answer_membership() -> None:
    merged = add_offsets([(0, 2)], [2, 3, 7, 5])
    assert merged == [(0, 4), (5, 6), (7, 8)]
    assert contains(merged, 3)
    assert not contains(merged, 4)
    assert not contains([], 0)


def test_filter_matches_exception_by_full_or_short_name() -> None:
    flt = RedriveFilter(exception_types=("TimeoutError",))
    assert flt.matches(dlq_record(0, "asyncio.TimeoutError"))
    assert flt.matches(dlq_record(0, "TimeoutError"))
    assert not flt.matches(dlq_record(0, "ValueError"))


def test_filter_time_window_is_half_open_on_failed_at() -> None:
    flt = RedriveFilter(since_ms=1_000, until_ms=2_000)
    assert flt.matches(dlq_record(0, "E", failed_at=1_000))
    assert not flt.matches(dlq_record(0, "E", failed_at=2_000))
    assert not flt.matches(dlq_record(0, "E", failed_at=999))


def test_filter_offsets_limit_each_partition() -> None:
    flt = RedriveFilter(offsets={0: (5, 10)})
    assert flt.matches(dlq_record(5, "E"))
    assert not flt.matches(dlq_record(10, "E"))
    assert not flt.matches(dlq_record(5, "E", partition=1))


def test_decide_skips_moved_records_and_parks_repeat_offenders() -> None:
    ledger = RedriveLedger("orders.g.dlq").with_moved({0: [1]})
    flt = RedriveFilter()
    assert decide(dlq_record(1, "E"), flt, ledger, max_redrives=3) is Decision.ALREADY_MOVED
    assert decide(dlq_record(2, "E", count=2), flt, ledger, max_redrives=3) is Decision.REDRIVE
    assert decide(dlq_record(2, "E", count=3), flt, ledger, max_redrives=3) is Decision.PARK
    assert (
        decide(dlq_record(2, "E"), RedriveFilter(("X",)), ledger, max_redrives=3)
        is Decision.FILTERED_OUT
    )


def test_redriven_record_is_a_fresh_attempt_with_an_incremented_count() -> None:
    out = redriven_record(dlq_record(4, "E", count=1), "orders", "r1")
    names = [k for k, _ in out.headers]
    assert out.topic == "orders"
    assert (out.key, out.value) == (b"k", b"v")
    assert "x-exception-type" not in names
    assert "x-attempt" not in names
    assert ("event-id", b"e1") in out.headers
    assert redrive_count(out.headers) == 2
    assert dict(out.headers)[H_REDRIVE_ID] == b"r1"


def test_parked_record_keeps_the_diagnostics() -> None:
    out = parked_record(dlq_record(4, "E", count=3), "orders.g.parking", "r2", 99)
    names = [k for k, _ in out.headers]
    assert "x-exception-type" in names
    assert redrive_count(out.headers) == 3
    assert out.topic == "orders.g.parking"


def test_ledger_round_trips_and_keeps_recent_runs() -> None:
    ledger = RedriveLedger("d").with_moved({0: [1, 2], 3: [9]})
    for i in range(25):
        ledger = ledger.with_run({"redrive_id": str(i)})
    back = RedriveLedger.from_dict(ledger.to_dict())
    assert back.moved == {0: [(1, 3)], 3: [(9, 10)]}
    assert len(back.runs) == 20
    assert back.runs[-1]["redrive_id"] == "24"
