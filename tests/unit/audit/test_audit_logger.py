"""AuditLogger publishes typed audit events with the caller's context (in-memory broker)."""

from __future__ import annotations

from streaming.audit.logger import AuditLogger
from streaming.clients.producer import EventProducer
from streaming.context import ExecutionContext, execution_context
from streaming.events import AuditEvent, AuditEventType, AuditOutcome, EventDeserializer
from streaming.serde import InMemorySchemaRegistryClient, SerializationContext
from streaming.transport.base import TopicPartition, TopicSpec
from streaming.transport.memory import InMemoryTransport


async def _published(
    transport: InMemoryTransport, registry: InMemorySchemaRegistryClient
) -> list[AuditEvent]:
    consumer = transport.consumer()
    await consumer.start()
    consumer.assign([TopicPartition("audit.events", 0)])
    batches = await consumer.poll(timeout_ms=100)
    await consumer.stop()
    decoder = EventDeserializer(registry)
    out = []
    for records in batches.values():
        for r in records:
            assert r.value is not None
            event = await decoder.deserialize(r.value, SerializationContext.for_record(r))
            assert isinstance(event, AuditEvent)
            out.append(event)
    return out


async def test_business_and_authentication_events_carry_the_context() -> None:
    transport = InMemoryTransport()
    admin = transport.admin()
    await admin.start()
    await admin.create_topics([TopicSpec("audit.events", 1)])
    registry = InMemorySchemaRegistryClient()
    async with EventProducer(transport, registry) as producer:
        audit = AuditLogger(producer=producer)
        ctx = ExecutionContext.create_for_request(
            operation="place_order", user_id="u-1", ip_address="1.2.3.4"
        )
        with execution_context(ctx):
            await audit.log_business_event(
                event_type=AuditEventType.ORDER_PLACED,
                user_id="u-1",
                resource_type="order",
                resource_id="o-9",
                action="place_order",
                details={"qty": 5, "symbol": "AAPL"},
            )
            await audit.log_authentication_event(
                AuditEventType.LOGIN_FAILED,
                user_id=None,
                success=False,
                ip_address="5.6.7.8",
                failure_reason="Invalid password",
            )
    business, login = await _published(transport, registry)
    assert business.metadata.correlation_id == ctx.correlation_id
    assert login.metadata.correlation_id == ctx.correlation_id
    assert (business.resource_type, business.resource_id, business.action) == (
        "order",
        "o-9",
        "place_order",
    )
    assert business.details == {"qty": "5", "symbol": "AAPL"}
    assert business.ip_address == "1.2.3.4"
    assert login.outcome is AuditOutcome.FAILURE
    assert login.details["failure_reason"] == "Invalid password"
    assert login.ip_address == "5.6.7.8"
