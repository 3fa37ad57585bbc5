"""OpenTelemetry metrics of the audit sink, for the dashboards and alerts.

The counters are observable: they read :class:`~connectors.audit_sink.sink.SinkStats` when
the meter collects, so the hot path keeps incrementing plain integers. Batch latency is a
histogram recorded once per committed batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

from streaming.telemetry import DURATION_BUCKETS_S

if TYPE_CHECKING:
    from connectors.audit_sink.sink import SinkStats

METER_NAME = "tradesense.audit_sink"

#: (instrument name, SinkStats field, unit, description)
_COUNTERS = (
    ("streaming.audit.rows", "rows", "{row}", "Audit rows appended to the hash chains."),
    ("streaming.audit.duplicates", "duplicates", "{record}", "Records skipped: event id seen."),
    (
        "streaming.audit.redelivered",
        "redelivered",
        "{record}",
        "Records skipped: at or below the chain head's Kafka offset (redeliveries).",
    ),
    ("streaming.audit.batches", "batches", "{batch}", "Batch transactions committed."),
    ("streaming.audit.checkpoints", "checkpoints", "{checkpoint}", "Signed checkpoints made."),
    (
        "streaming.audit.fenced",
        "fenced",
        "{batch}",
        "Batches refused because another sink instance owns the chain now.",
    ),
    (
        "streaming.audit.database_retries",
        "database_retries",
        "{retry}",
        "Back-offs while PostgreSQL (or the registry) was unavailable.",
    ),
)


def _reader(stats: SinkStats, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(getattr(stats, field))]

    return observe


@dataclass(frozen=True, slots=True)
class SinkMetrics:
    """What the sink records directly (the counters are observed from its stats)."""

    batch_duration: Histogram

    @classmethod
    def create(cls, meter: Meter, stats: SinkStats) -> SinkMetrics:
        for name, field, unit, description in _COUNTERS:
            meter.create_observable_counter(
                name, callbacks=[_reader(stats, field)], unit=unit, description=description
            )
        return cls(
            batch_duration=meter.create_histogram(
                "streaming.audit.batch.duration",
                unit="s",
                description="One chain's batch transaction: lock the head, insert, update.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
            )
        )


__all__ = ["METER_NAME", "SinkMetrics"]
