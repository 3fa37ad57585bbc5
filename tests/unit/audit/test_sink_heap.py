"""The sink tunes the garbage collector when it starts running, unless told not to."""

from __future__ import annotations

from typing import Any, cast

import pytest

from connectors.audit_sink import sink as sink_module
from connectors.audit_sink.records import RecordPreparer
from connectors.audit_sink.sink import AuditSink, SinkOptions
from connectors.audit_sink.store import AuditStore
from streaming.audit.keys import MacKeyRing
from streaming.transport.base import ConsumerTransport


class _StoppingConsumer:
    """Assigns nothing; its first poll asks the sink to stop."""

    def __init__(self) -> None:
        self.sink: AuditSink | None = None

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        return None

    async def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, Any]:
        assert self.sink is not None
        self.sink.stop()
        return {}


@pytest.mark.parametrize("tune", [True, False])
async def test_run_tunes_the_heap_once_started(monkeypatch: pytest.MonkeyPatch, tune: bool) -> None:
    calls: list[None] = []
    monkeypatch.setattr(sink_module, "tune_heap", lambda: calls.append(None))
    consumer = _StoppingConsumer()
    sink = AuditSink(
        store=cast(AuditStore, object()),
        consumer=cast(ConsumerTransport, consumer),
        preparer=cast(RecordPreparer, object()),
        ring=cast(MacKeyRing, object()),
        topics=["audit.events"],
        options=SinkOptions(tune_gc_on_start=tune),
    )
    consumer.sink = sink

    await sink.run()

    assert len(calls) == (1 if tune else 0)
