"""The retry/DLQ core: naming, routing, backoff maths and diagnostic headers."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from streaming.clients.retry import (
    MAX_STACK_BYTES,
    FailureHeadersError,
    RetryPolicy,
    RetryTopicNameError,
    Route,
    attempt_of,
    dlq_topic,
    exception_type_name,
    failure_headers,
    failure_info,
    parking_topic,
    parse_failure_headers,
    retry_topic,
)
from streaming.config import MessagingSettings
from streaming.errors import ConfigError, SerializationError
from streaming.serde.errors import SchemaLookupError
from streaming.transport.base import Record

delays = st.lists(st.floats(min_value=0, max_value=3_600, allow_nan=False), min_size=1, max_size=6)


def _record(headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
    return Record("orders", 3, 41, 1_700_000_000_000, b"k", b"v", headers)


def _raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def test_failure_topics_follow_the_design_names() -> None:
    assert retry_topic("orders", "billing", 1) == "orders.billing.retry.1"
    assert dlq_topic("orders", "billing") == "orders.billing.dlq"
    assert parking_topic("orders", "billing") == "orders.billing.parking"
    assert RetryPolicy(attempts=3).topics("orders", "billing") == [
        "orders.billing.retry.1",
        "orders.billing.retry.2",
        "orders.billing.dlq",
    ]


def test_illegal_topic_names_are_refused_with_a_hint() -> None:
    with pytest.raises(RetryTopicNameError, match="legal Kafka topic name"):
        dlq_topic("orders", "billing team")
    with pytest.raises(RetryTopicNameError):
        retry_topic("o" * 240, "g", 1)
    with pytest.raises(ValueError, match="level"):
        retry_topic("orders", "g", 0)


def test_invalid_policies_list_every_problem() -> None:
    with pytest.raises(ConfigError) as err:
        RetryPolicy(attempts=0, delays_s=(-1.0,), jitter=2)
    assert len(err.value.problems) == 3
    with pytest.raises(ConfigError):
        RetryPolicy(attempts=2, delays_s=())


def test_policy_from_settings_adds_the_first_delivery_to_the_retries() -> None:
    policy = RetryPolicy.from_settings(
        MessagingSettings(retry_attempts=3, retry_delays_s=(1.0, 5.0, 30.0), retry_jitter=0.2)
    )
    assert (policy.attempts, policy.retry_levels) == (4, 3)
    assert (policy.delays_s, policy.jitter) == ((1.0, 5.0, 30.0), 0.2)


def test_transient_failures_retry_until_attempts_are_used_up() -> None:
    policy = RetryPolicy(attempts=3)
    assert policy.route(TimeoutError("slow"), 1) is Route.RETRY
    assert policy.route(TimeoutError("slow"), 2) is Route.RETRY
    assert policy.route(TimeoutError("slow"), 3) is Route.DLQ


def test_serialization_and_validation_errors_are_fatal_by_default() -> None:
    class Model(BaseModel):
        n: int

    try:
        Model(n="x")  # type: ignore[arg-type]
    except ValidationError as exc:
        invalid = exc
    policy = RetryPolicy(attempts=5)
    assert policy.route(SerializationError("bad magic byte"), 1) is Route.DLQ
    assert policy.route(invalid, 1) is Route.DLQ
    assert policy.route(TypeError("wrong"), 1) is Route.DLQ


def test_fatal_wins_over_retryable_and_unlisted_types_are_fatal() -> None:
    class Flaky(Exception):
        pass

    class Permanent(Flaky):
        pass

    policy = RetryPolicy(attempts=3, retryable=(Flaky,), fatal=(Permanent,))
    assert policy.route(Flaky(), 1) is Route.RETRY
    assert policy.route(Permanent(), 1) is Route.DLQ
    assert policy.route(KeyError("other"), 1) is Route.DLQ


def test_a_retriable_error_is_retried_even_when_its_type_is_fatal() -> None:
    policy = RetryPolicy(attempts=3)
    lookup = SchemaLookupError("registry down", data=b"\x00\x00\x00\x00\x01")
    assert isinstance(lookup, SerializationError)  # in DEFAULT_FATAL by type
    assert policy.route(lookup, 1) is Route.RETRY
    assert policy.route(lookup, 3) is Route.DLQ  # attempts still bound it
    narrow = RetryPolicy(attempts=3, retryable=(KeyError,))
    assert narrow.route(lookup, 1) is Route.DLQ  # not retryable by the policy: fatal


@given(
    attempts=st.integers(min_value=2, max_value=10),
    delays_s=delays,
    jitter=st.floats(min_value=0, max_value=1),
    now_ms=st.integers(min_value=0, max_value=2**42),
    seed=st.integers(),
    data=st.data(),
)
def test_not_before_is_the_delay_plus_at_most_the_jitter(
    attempts: int,
    delays_s: list[float],
    jitter: float,
    now_ms: int,
    seed: int,
    data: st.DataObject,
) -> None:
    policy = RetryPolicy(attempts=attempts, delays_s=tuple(delays_s), jitter=jitter)
    attempt = data.draw(st.integers(min_value=2, max_value=attempts))
    delay_ms = policy.delay_s(attempt) * 1000
    due = policy.not_before_ms(attempt, now_ms, random.Random(seed))
    assert now_ms + int(delay_ms) <= due <= now_ms + int(delay_ms * (1 + jitter))


@given(delays_s=delays, extra=st.integers(min_value=0, max_value=5))
def test_levels_past_the_delay_list_reuse_the_last_delay(delays_s: list[float], extra: int) -> None:
    policy = RetryPolicy(attempts=len(delays_s) + extra + 1, delays_s=tuple(delays_s))
    assert [policy.delay_s(a) for a in range(2, len(delays_s) + 2)] == delays_s
    assert policy.delay_s(policy.attempts) == delays_s[-1]


@given(
    delays_s=delays.map(sorted),
    now_ms=st.integers(min_value=0, max_value=2**42),
    seed=st.integers(),
)
def test_without_jitter_growing_delays_give_growing_deadlines(
    delays_s: list[float], now_ms: int, seed: int
) -> None:
    policy = RetryPolicy(attempts=len(delays_s) + 1, delays_s=tuple(delays_s), jitter=0)
    rng = random.Random(seed)
    dues = [policy.not_before_ms(a, now_ms, rng) for a in range(2, policy.attempts + 1)]
    assert dues == sorted(dues)


def test_only_retries_have_a_delay() -> None:
    with pytest.raises(ValueError, match="attempt >= 2"):
        RetryPolicy().delay_s(1)


def test_failure_headers_carry_every_diagnostic_and_parse_back() -> None:
    exc = _raised(TimeoutError("pricing service slow"))
    info = failure_info(
        _record((("event-id", b"e-1"),)),
        exc,
        group="billing",
        attempt=1,
        now_ms=1_700_000_001_000,
        not_before_ms=1_700_000_002_000,
    )
    headers = failure_headers(info, base=(("event-id", b"e-1"),))
    names = [k for k, _ in headers]
    assert names[0] == "event-id"
    assert set(names) >= {
        "x-original-topic",
        "x-original-partition",
        "x-original-offset",
        "x-original-timestamp",
        "x-attempt",
        "x-not-before",
        "x-consumer-group",
        "x-exception-type",
        "x-exception-message",
        "x-exception-stack",
        "x-failed-at",
    }
    parsed = parse_failure_headers(headers)
    assert parsed == info
    assert (parsed.original_topic, parsed.original_partition, parsed.original_offset) == (
        "orders",
        3,
        41,
    )
    assert parsed.exception_type == "TimeoutError"
    assert "pricing service slow" in parsed.exception_stack
    assert attempt_of(headers) == 2


def test_a_retried_record_keeps_its_origin_and_replaces_old_diagnostics() -> None:
    first = failure_info(_record(), _raised(TimeoutError("a")), group="g", attempt=1, now_ms=1)
    retried = Record("orders.g.retry.1", 0, 7, 99, b"k", b"v", failure_headers(first))
    second = failure_info(retried, _raised(KeyError("b")), group="g", attempt=2, now_ms=2)
    headers = failure_headers(second, base=retried.headers)
    assert sum(1 for k, _ in headers if k == "x-attempt") == 1
    parsed = parse_failure_headers(headers)
    assert parsed is not None
    assert (parsed.original_topic, parsed.original_offset, parsed.attempt) == ("orders", 41, 2)
    assert parsed.exception_type == "KeyError"
    assert parsed.not_before_ms is None


@given(message=st.text(max_size=20_000), depth=st.integers(min_value=0, max_value=200))
def test_stack_and_message_headers_stay_bounded_and_valid_utf8(message: str, depth: int) -> None:
    def recurse(n: int) -> None:
        if n == 0:
            raise RuntimeError(message)
        recurse(n - 1)

    try:
        recurse(depth)
    except RuntimeError as exc:
        info = failure_info(_record(), exc, group="g", attempt=1, now_ms=0)
    assert len(info.exception_stack.encode()) <= MAX_STACK_BYTES
    assert len(info.exception_message.encode()) <= 1024
    for _, value in failure_headers(info):
        value.decode("utf-8")


def test_exception_type_names_are_qualified_outside_builtins() -> None:
    assert exception_type_name(KeyError()) == "KeyError"
    assert exception_type_name(SerializationError()) == "streaming.errors.SerializationError"


def test_records_that_never_failed_have_no_failure_info() -> None:
    assert parse_failure_headers((("event-id", b"1"),)) is None
    assert attempt_of(()) == 1


def test_malformed_failure_headers_raise_a_typed_error() -> None:
    good = failure_headers(failure_info(_record(), KeyError("k"), group="g", attempt=1, now_ms=0))
    broken = (*good, ("x-original-offset", b"abc"))  # the newest value wins, and is bad
    with pytest.raises(FailureHeadersError, match="x-original-offset"):
        parse_failure_headers(broken)
    missing = tuple((k, v) for k, v in good if k != "x-failed-at")
    with pytest.raises(FailureHeadersError, match="x-failed-at"):
        parse_failure_headers(missing)
