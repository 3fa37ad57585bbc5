"""Logging: secrets and PII masked in output, correlation and trace ids attached."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import SecretStr

from streaming.config import LoggingSettings
from streaming.context import ExecutionContext, execution_context
from streaming.logging import configure_logging, get_logger, mask_text

JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="DEBUG"), stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_secret_keys_and_secretstr_are_masked(captured: io.StringIO) -> None:
    get_logger("t").info(
        "login",
        password="hunter2",
        api_key="k-123456",
        refresh_token="rt-abcdef",
        pepper=SecretStr("pep"),
        user_id="u1",
    )
    record = lines(captured)[0]
    assert record["password"] == "***"
    assert record["api_key"] == "***"
    assert record["refresh_token"] == "***"
    assert record["pepper"] == "***"
    assert record["user_id"] == "u1"
    assert "hunter2" not in captured.getvalue()


def test_pii_keys_masked_in_nested_values(captured: io.StringIO) -> None:
    get_logger("t").info("registered", details={"email": "a@b.c", "country": "NL"})
    record = lines(captured)[0]
    assert record["details"] == {"email": "***", "country": "NL"}


def test_tokens_in_free_text_are_masked(captured: io.StringIO) -> None:
    get_logger("t").warning(f"rejected Authorization: Bearer {JWT}")
    logging.getLogger("stdlib").error("url postgresql://u:topsecret@h:5432/db token %s", JWT)
    out = captured.getvalue()
    assert JWT not in out
    assert "topsecret" not in out
    assert "Bearer ***" in out


def test_mask_text_keeps_ordinary_text() -> None:
    assert mask_text("order 42 filled at 10.5") == "order 42 filled at 10.5"


def test_stdlib_logging_is_routed_through_structlog(captured: io.StringIO) -> None:
    logging.getLogger("aiokafka.fake").warning("broker gone")
    record = lines(captured)[0]
    assert record["event"] == "broker gone"
    assert record["logger"] == "aiokafka.fake"


def test_correlation_id_from_execution_context(captured: io.StringIO) -> None:
    ctx = ExecutionContext.create_for_request(operation="place_order", user_id="u7")
    with execution_context(ctx):
        get_logger("t").info("inside")
    get_logger("t").info("outside")
    inside, outside = lines(captured)
    assert inside["correlation_id"] == ctx.correlation_id
    assert inside["user_id"] == "u7"
    assert "correlation_id" not in outside


def test_trace_and_span_ids_inside_a_span(captured: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        get_logger("t").info("traced")
        expected = span.get_span_context()
    record = lines(captured)[0]
    assert record["trace_id"] == format(expected.trace_id, "032x")
    assert record["span_id"] == format(expected.span_id, "016x")
