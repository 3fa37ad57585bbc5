"""The header names are the wire contract of DESIGN.md; each is spelt once."""

from __future__ import annotations

from streaming.core import headers as h


def test_the_producer_headers_are_the_documented_ones() -> None:
    assert h.EVENT_HEADERS == (
        "event-id",
        "event-type",
        "correlation-id",
        "content-type",
        "produced-at",
    )
    assert h.TRACE_HEADERS == ("traceparent", "tracestate")
    assert h.CONTENT_TYPE_AVRO == "application/vnd.kafka.avro.v1"


def test_failure_redrive_and_replay_headers_are_namespaced() -> None:
    # the failure header names themselves are pinned by tests/unit/test_retry.py
    assert len(h.FAILURE_HEADERS) == 11
    assert all(name.startswith("x-") for name in h.FAILURE_HEADERS)
    assert h.REDRIVE_HEADERS == ("x-redrive-id", "x-redrive-count", "x-parked-at")
    assert h.REPLAY_HEADERS == ("x-replay-id", "x-replay-origin")


def test_no_two_header_groups_share_a_name() -> None:
    groups = [
        h.EVENT_HEADERS,
        h.TRACE_HEADERS,
        h.FAILURE_HEADERS,
        h.REDRIVE_HEADERS,
        h.REPLAY_HEADERS,
        h.REQUEST_HEADERS,
    ]
    every = [name for group in groups for name in group]
    assert len(every) == len(set(every))
    named = {v for k, v in vars(h).items() if k.startswith(("H_", "HTTP_"))}
    assert named == set(every)  # every constant belongs to a group, every group member is named
