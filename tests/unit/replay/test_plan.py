"""Reset planning is pure: each kafka-consumer-groups strategy, clamping and the CSV format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streaming.replay.errors import ResetPlanError
from streaming.replay.plan import (
    PartitionOffsets,
    ResetKind,
    ResetStrategy,
    format_offsets_csv,
    parse_datetime,
    parse_duration,
    parse_offsets_csv,
    parse_topic_selector,
    plan_reset,
    select,
)
from streaming.transport.base import TopicPartition

T0 = TopicPartition("orders", 0)
T1 = TopicPartition("orders", 1)
STATE = {T0: PartitionOffsets(beginning=10, end=100, current=50), T1: PartitionOffsets(0, 40, 40)}


def test_to_earliest_and_to_latest_use_log_start_and_end() -> None:
    early = plan_reset("g", ResetStrategy.to_earliest(), STATE)
    late = plan_reset("g", ResetStrategy.to_latest(), STATE)
    assert early.offsets == {T0: 10, T1: 0}
    assert late.offsets == {T0: 100, T1: 40}


def test_dry_run_plan_reports_records_to_reread_and_lag() -> None:
    plan = plan_reset("g", ResetStrategy.to_earliest(), STATE)
    rows = {p.tp: p for p in plan.partitions}
    assert rows[T0].re_read == 40
    assert rows[T1].re_read == 40
    assert rows[T0].lag_after == 90
    assert plan.total_re_read == 80
    assert plan.to_dict()["partitions"][0]["target"] == 10


def test_shift_by_moves_from_the_committed_offset_and_clamps() -> None:
    plan = plan_reset("g", ResetStrategy.shift_by(-45), STATE)
    assert plan.offsets == {T0: 10, T1: 0}
    assert "clamped up" in plan.partitions[0].note
    assert plan_reset("g", ResetStrategy.shift_by(5), STATE).offsets == {T0: 55, T1: 40}


def test_shift_by_without_a_committed_offset_is_refused() -> None:
    state = {T0: PartitionOffsets(0, 10, None)}
    with pytest.raises(ResetPlanError, match="no committed offset"):
        plan_reset("g", ResetStrategy.shift_by(-1), state)


def test_to_offset_clamps_into_the_log() -> None:
    assert plan_reset("g", ResetStrategy.to_offset(60), STATE).offsets == {T0: 60, T1: 40}
    assert plan_reset("g", ResetStrategy.to_offset(0), STATE).offsets[T0] == 10


def test_time_strategies_use_offsets_for_times_and_past_the_end_means_log_end() -> None:
    strategy = ResetStrategy.to_datetime("2024-05-01T12:00:00Z")
    assert strategy.lookup_time_ms(datetime.now(UTC)) == 1714564800000
    plan = plan_reset("g", strategy, STATE, time_offsets={T0: 70, T1: None})
    assert plan.offsets == {T0: 70, T1: 40}


def test_by_duration_looks_back_from_now() -> None:
    now = datetime(2024, 5, 1, 13, tzinfo=UTC)
    strategy = ResetStrategy.by_duration("PT1H")
    assert strategy.duration == timedelta(hours=1)
    assert strategy.lookup_time_ms(now) == 1714564800000


def test_explicit_strategies_plan_only_the_named_partitions() -> None:
    plan = plan_reset("g", ResetStrategy.from_snapshot("before-deploy", {T1: 5}), STATE)
    assert plan.offsets == {T1: 5}
    assert plan.strategy == "--from-snapshot before-deploy"
    with pytest.raises(ResetPlanError, match="do not exist"):
        plan_reset("g", ResetStrategy.from_snapshot("x", {TopicPartition("nope", 0): 1}), STATE)


def test_csv_round_trips_in_kafka_export_format() -> None:
    text = format_offsets_csv({T1: 7, T0: 3})
    assert text == "orders,0,3\norders,1,7\n"
    assert parse_offsets_csv(text) == {T0: 3, T1: 7}
    strategy = ResetStrategy.from_csv(text, source="f.csv")
    assert strategy.kind is ResetKind.FROM_FILE
    assert plan_reset("g", strategy, STATE).to_csv() == "orders,0,10\norders,1,7\n"


def test_multi_group_csv_keeps_the_lines_of_the_group() -> None:
    text = "g1,orders,0,5\ng2,orders,0,9\n"
    assert parse_offsets_csv(text, group="g2") == {T0: 9}


@pytest.mark.parametrize(
    "text", ["orders,0", "orders,x,1", "orders,0,-1", "", "orders,0,1\norders,0,2"]
)
def test_bad_csv_names_the_line(text: str) -> None:
    with pytest.raises(ResetPlanError):
        parse_offsets_csv(text)


def test_durations_and_datetimes_parse_iso_8601() -> None:
    assert parse_duration("P1DT30M") == timedelta(days=1, minutes=30)
    assert parse_duration("PT0.5S") == timedelta(milliseconds=500)
    for bad in ("1h", "3600", "PT0S", "-PT1H"):
        with pytest.raises(ResetPlanError):
            parse_duration(bad)
    assert parse_datetime("2024-05-01T12:00:00").tzinfo is UTC
    with pytest.raises(ResetPlanError, match="ISO-8601"):
        parse_datetime("yesterday")


def test_topic_selectors_pick_partitions() -> None:
    assert parse_topic_selector("orders") == ("orders", None)
    assert parse_topic_selector("orders:0,2") == ("orders", frozenset({0, 2}))
    with pytest.raises(ResetPlanError):
        parse_topic_selector("orders:")
    tps = [T0, T1, TopicPartition("other", 0)]
    assert select(tps, {"orders": frozenset({1})}) == [T1]
    assert select(tps, {}) == sorted(tps)
