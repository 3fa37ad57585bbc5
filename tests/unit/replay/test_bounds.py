"""Replay bounds as an operator types them: parsed once, contradictions refused up front."""

from __future__ import annotations

import pytest

from streaming.replay.bounds import Bound, BoundKind, check_order, parse_bound, parse_spans
from streaming.replay.errors import BoundsError
from streaming.replay.range import derive_replay_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, Bound.earliest()),
        ("latest", Bound.latest()),
        ("42", Bound.at_offset(42)),
        ("0:5,1:8", Bound.at_offsets({0: 5, 1: 8})),
        ("2024-05-01T12:00:00Z", Bound.at_time(1_714_564_800_000)),
    ],
)
def test_a_bound_parses_every_documented_form(text: str | None, expected: Bound) -> None:
    assert parse_bound(text, Bound.earliest(), "--from") == expected


@pytest.mark.parametrize("text", ["0:x", "0:5,0:6", "yesterday", "-3", "0:"])
def test_a_bad_bound_names_its_option_and_the_forms(text: str) -> None:
    with pytest.raises(BoundsError, match="--from"):
        parse_bound(text, Bound.earliest(), "--from")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (Bound.at_offset(50), Bound.at_offset(10)),
        (Bound.at_time(2_000), Bound.at_time(1_000)),
        (Bound.at_offsets({0: 5}), Bound.at_offsets({0: 2, 1: 9})),
        (Bound.at_offsets({1: 7}), Bound.at_offset(3)),
        (Bound.at_offset(4), Bound.at_offsets({0: 9, 1: 2})),
    ],
)
def test_a_start_after_its_end_is_refused(start: Bound, end: Bound) -> None:
    with pytest.raises(BoundsError, match="after --until"):
        check_order(start, end, start_option="--from", end_option="--until")


def test_bounds_the_broker_must_resolve_are_not_judged_here() -> None:
    check_order(Bound.at_offset(50), Bound.latest(), start_option="--from", end_option="--until")
    check_order(Bound.at_time(9), Bound.at_offset(1), start_option="--from", end_option="--until")
    check_order(
        Bound.at_offsets({0: 5}), Bound.at_offsets({1: 1}), start_option="f", end_option="u"
    )


def test_dlq_spans_share_the_partition_grammar() -> None:
    assert parse_spans(["0:100-200,1:5-6", "2:0-1"], "--offsets") == {
        0: (100, 200),
        1: (5, 6),
        2: (0, 1),
    }
    with pytest.raises(BoundsError, match="P:START-END"):
        parse_spans(["0:9-3"], "--offsets")


def test_the_derived_replay_id_depends_on_source_target_and_range_only() -> None:
    base = derive_replay_id("orders", "copy", Bound.earliest(), Bound.latest())
    assert base == derive_replay_id("orders", "copy", Bound.earliest(), Bound.latest())
    others = {
        derive_replay_id("orders", "other", Bound.earliest(), Bound.latest()),
        derive_replay_id("orders", "copy", Bound.at_offset(1), Bound.latest()),
        derive_replay_id("orders", "copy", Bound.at_offsets({0: 1}), Bound.latest()),
        derive_replay_id("orders", "copy", Bound.earliest(), Bound.latest(), [0]),
    }
    assert base not in others and len(others) == 4
    assert Bound.at_offsets({1: 2, 0: 1}).describe() == "0:1,1:2"
    assert BoundKind.OFFSETS.value == "offsets"
