"""The seed's decorators on sync and async functions and methods, alone and stacked."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from streaming.audit.logger import AuditLogger
from streaming.clients.producer import EventProducer
from streaming.context import (
    ExecutionContext,
    current_audit_context,
    current_correlation_id,
    current_execution_context,
    execution_context,
)
from streaming.core.backoff import Backoff
from streaming.decorators import (
    audit_event_type,
    set_default_audit_logger,
    with_audit_context,
    with_execution_context,
    with_performance_monitoring,
    with_retry,
)
from streaming.errors import (
    BrokerUnavailableError,
    ConfigError,
    DatabaseUnavailableError,
    StreamingError,
)
from streaming.events import AuditEvent, AuditEventType, AuditOutcome, EventDeserializer
from streaming.serde.context import SerializationContext
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.transport.base import TopicSpec
from streaming.transport.memory import InMemoryTransport

NO_WAIT = Backoff(initial_s=0.0, max_s=0.0)


# --------------------------------------------------------------------------- fixtures


class Audited:
    """An in-memory audit topic behind the default audit logger."""

    def __init__(self) -> None:
        self.transport = InMemoryTransport()
        self.registry = InMemorySchemaRegistryClient()

    async def events(self) -> list[AuditEvent]:
        decoder = EventDeserializer(self.registry)
        out = []
        for record in self.transport.records("audit.events"):
            assert record.value is not None
            event = await decoder.deserialize(record.value, SerializationContext.for_record(record))
            assert isinstance(event, AuditEvent)
            out.append(event)
        return out


@pytest.fixture
async def audited() -> AsyncIterator[Audited]:
    audit = Audited()
    admin = audit.transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("audit.events", 1)])
    async with EventProducer(audit.transport, audit.registry) as producer:
        set_default_audit_logger(AuditLogger(producer=producer))
        try:
            yield audit
        finally:
            set_default_audit_logger(None)


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


# --------------------------------------------------------------------------- context


def test_create_for_request_reads_a_starlette_request() -> None:
    from starlette.requests import Request

    request = Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/orders",
            "headers": [
                (b"x-request-id", b"req-1"),
                (b"x-forwarded-for", b"203.0.113.7, 10.0.0.1"),
            ],
            "client": ("10.0.0.1", 5555),
        }
    )
    ctx = ExecutionContext.create_for_request(request, "u-1")
    assert (ctx.correlation_id, ctx.ip_address, ctx.user_id) == ("req-1", "203.0.113.7", "u-1")
    assert ctx.operation == "POST /orders"
    assert ctx.source == "request"


class FakeRequest:
    def __init__(self, headers: dict[str, str], host: str | None) -> None:
        self.headers = headers
        self.client = type("Addr", (), {"host": host})() if host else None


def test_correlation_header_wins_over_request_id_and_bad_ids_are_ignored() -> None:
    both = FakeRequest({"X-Correlation-ID": "corr-1", "X-Request-ID": "req-1"}, "10.1.1.1")
    ctx = ExecutionContext.create_for_request(both, None)
    assert (ctx.correlation_id, ctx.ip_address) == ("corr-1", "10.1.1.1")
    evil = FakeRequest({"X-Correlation-ID": "a\nforged log line"}, None)
    fresh = ExecutionContext.create_for_request(evil)
    assert fresh.correlation_id != "a\nforged log line"
    assert len(fresh.correlation_id) == 36
    assert fresh.ip_address is None


def test_untrusted_forwarded_for_is_ignored() -> None:
    request = FakeRequest({"X-Forwarded-For": "6.6.6.6"}, "10.2.2.2")
    assert ExecutionContext.create_for_request(request).ip_address == "6.6.6.6"
    ctx = ExecutionContext.create_for_request(request, trust_forwarded=False)
    assert ctx.ip_address == "10.2.2.2"


async def test_execution_context_on_sync_and_async_and_methods() -> None:
    class Service:
        @with_execution_context("sync_op")
        def sync_op(self) -> tuple[str | None, str | None]:
            ctx = current_execution_context()
            return (ctx.operation if ctx else None, current_correlation_id())

        @with_execution_context("async_op")
        async def async_op(self) -> tuple[str | None, str | None]:
            ctx = current_execution_context()
            return (ctx.operation if ctx else None, current_correlation_id())

    service = Service()
    assert not inspect.iscoroutinefunction(Service.sync_op)
    assert inspect.iscoroutinefunction(Service.async_op)
    parent = ExecutionContext.create_for_system("parent")
    with execution_context(parent):
        assert service.sync_op() == ("sync_op", parent.correlation_id)
        assert await service.async_op() == ("async_op", parent.correlation_id)
    op, correlation = service.sync_op()
    assert op == "sync_op"
    assert correlation is not None
    assert current_execution_context() is None


def test_errors_carry_the_context_they_were_raised_in() -> None:
    @with_execution_context("settle")
    def settle() -> None:
        raise DatabaseUnavailableError("down")

    parent = ExecutionContext.create_for_system("batch")
    with execution_context(parent), pytest.raises(DatabaseUnavailableError) as info:
        settle()
    assert info.value.correlation_id == parent.correlation_id
    assert info.value.operation == "settle"
    outside = StreamingError("x")
    assert (outside.correlation_id, outside.operation) == (None, None)


# --------------------------------------------------------------------------- retry


async def test_retry_retries_retriable_errors_then_succeeds() -> None:
    calls: list[int] = []

    @with_retry(max_attempts=3, backoff=NO_WAIT)
    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise BrokerUnavailableError("no broker")
        return "ok"

    assert await flaky() == "ok"
    assert len(calls) == 3


def test_retry_gives_up_after_max_attempts_with_the_last_error() -> None:
    calls: list[int] = []

    @with_retry(max_attempts=2, backoff=NO_WAIT)
    def always_down() -> None:
        calls.append(1)
        raise ConnectionError(f"refused #{len(calls)}")

    with pytest.raises(ConnectionError, match="refused #2"):
        always_down()
    assert len(calls) == 2


@pytest.mark.parametrize("error", [ConfigError(["bad"]), ValueError("bad"), KeyError("k")])
async def test_retry_never_retries_other_errors(error: Exception) -> None:
    calls: list[int] = []

    @with_retry(max_attempts=5, backoff=NO_WAIT)
    async def broken() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        await broken()
    assert len(calls) == 1


async def test_retry_waits_the_backoff_between_attempts() -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def record(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    @with_retry(max_attempts=4, backoff=Backoff(initial_s=1.0, max_s=3.0))
    async def down() -> None:
        raise TimeoutError

    mp = pytest.MonkeyPatch()
    mp.setattr(asyncio, "sleep", record)
    try:
        with pytest.raises(TimeoutError):
            await down()
    finally:
        mp.undo()
    assert len(slept) == 3
    for attempt, delay in enumerate(slept, start=1):
        ceiling = min(3.0, 2.0 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


# --------------------------------------------------------------------------- performance


async def test_performance_monitoring_spans_histogram_and_slow_warning(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])

    @with_performance_monitoring(
        slow_threshold_ms=20, tracer_provider=provider, meter_provider=meters
    )
    async def slow() -> str:
        await asyncio.sleep(0.05)  # the work being timed, not synchronisation
        return "done"

    @with_performance_monitoring(
        slow_threshold_ms=10_000, tracer_provider=provider, meter_provider=meters
    )
    def fast() -> int:
        return 7

    with capture_logs() as logs:
        assert await slow() == "done"
        assert fast() == 7
    warnings = [entry for entry in logs if entry["event"] == "slow operation"]
    assert len(warnings) == 1
    assert warnings[0]["operation"].endswith("slow")
    assert warnings[0]["duration_ms"] >= 20
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert [n.rsplit(".", 1)[-1] for n in names] == ["fast", "slow"]
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "streaming.operation.duration"
        for point in metric.data.data_points
    ]
    assert sorted(p.count for p in points) == [1, 1]
    slow_point = next(p for p in points if str(p.attributes["operation"]).endswith("slow"))
    assert slow_point.sum >= 0.05


def test_performance_monitoring_records_failures(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans

    @with_performance_monitoring(slow_threshold_ms=0, tracer_provider=provider)
    def boom() -> None:
        raise ValueError("boom")

    with capture_logs() as logs, pytest.raises(ValueError, match="boom"):
        boom()
    assert [e["outcome"] for e in logs if e["event"] == "slow operation"] == ["error"]
    (span,) = exporter.get_finished_spans()
    assert not span.status.is_ok


# --------------------------------------------------------------------------- audit


def test_audit_event_type_is_derived_from_resource_and_action() -> None:
    assert audit_event_type("order", "place") is AuditEventType.ORDER_PLACED
    assert audit_event_type("order", "cancel") is AuditEventType.ORDER_CANCELLED
    assert audit_event_type("order", "fill") is AuditEventType.ORDER_FILLED
    assert audit_event_type("widget", "frob") is AuditEventType.UNKNOWN


async def test_audit_context_records_one_event_with_the_reason(audited: Audited) -> None:
    class Orders:
        @with_execution_context("place_order")
        @with_audit_context("order", "place", "User requested order placement")
        async def place(self, symbol: str) -> str:
            ctx = current_audit_context()
            assert ctx is not None
            assert ctx.reason == "User requested order placement"
            return f"order-{symbol}"

    request = ExecutionContext.create_for_request(
        FakeRequest({"X-Correlation-ID": "corr-77"}, "10.0.0.9"), "u-5"
    )
    with execution_context(request):
        assert await Orders().place("AAPL") == "order-AAPL"
    (event,) = await audited.events()
    assert event.event_type is AuditEventType.ORDER_PLACED
    assert (event.resource_type, event.action, event.resource_id) == (
        "order",
        "place",
        "order-AAPL",
    )
    assert event.details["reason"] == "User requested order placement"
    assert event.outcome is AuditOutcome.SUCCESS
    assert event.metadata.correlation_id == "corr-77"
    assert event.actor.actor_id == "u-5"
    assert event.ip_address == "10.0.0.9"


async def test_audit_context_on_a_sync_function_records_failures(audited: Audited) -> None:
    @with_audit_context("order", "cancel", "risk limit")
    def cancel(order_id: str) -> None:
        raise PermissionError(order_id)

    with pytest.raises(PermissionError):
        cancel("o-1")  # sync, called while this loop runs: the record waits on a thread
    (event,) = await audited.events()
    assert event.event_type is AuditEventType.ORDER_CANCELLED
    assert event.outcome is AuditOutcome.FAILURE
    assert event.details["error_type"] == "PermissionError"


async def test_seed_stack_order_retries_inside_one_audit_record(
    audited: Audited, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    attempts: list[str | None] = []

    class TradingService:
        @with_execution_context("place_order")
        @with_audit_context("order", "place", "User requested order placement")
        @with_performance_monitoring(slow_threshold_ms=500, tracer_provider=provider)
        @with_retry(max_attempts=3, backoff=NO_WAIT)
        async def place_order(self, user_id: str, symbol: str, quantity: int) -> str:
            attempts.append(current_correlation_id())
            if len(attempts) == 1:
                raise DatabaseUnavailableError("failover in progress")
            return f"{user_id}-{symbol}-{quantity}"

    assert await TradingService().place_order("u", "MSFT", 3) == "u-MSFT-3"
    assert len(attempts) == 2
    assert attempts[0] == attempts[1] is not None
    (event,) = await audited.events()
    assert event.metadata.correlation_id == attempts[0]
    assert event.resource_id == "u-MSFT-3"
    assert len(exporter.get_finished_spans()) == 1
