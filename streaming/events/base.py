"""The event framework: the envelope, the :class:`Event` base and its schema binding.

Models mirror the ``.avsc`` contracts in ``schemas/`` field for field
(``tests/unit/test_events.py`` fails on any drift). Every event carries an
:class:`EventMetadata` envelope and names its partition-key field in its schema
(``x-partition-key``). The trading models live in :mod:`streaming.events.domain`, the
audit models in :mod:`streaming.events.audit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID, uuid4

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from streaming.serde.catalog import LocalSchema, default_catalog


def _to_utc_millis(value: datetime) -> datetime:
    """Avro timestamp-millis keeps milliseconds; truncate so round trips are exact."""
    if value.tzinfo is UTC and not value.microsecond % 1000:
        return value  # what a decoded record holds: nothing to do (runs per record)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def utc_now() -> datetime:
    """Now, in UTC, at millisecond precision."""
    return _to_utc_millis(datetime.now(UTC))


TimestampMillis = Annotated[AwareDatetime, AfterValidator(_to_utc_millis)]
"""A timezone-aware UTC datetime at millisecond precision (Avro ``timestamp-millis``)."""

Amount = Annotated[Decimal, Field(max_digits=28, decimal_places=8, allow_inf_nan=False)]
"""An exact decimal matching Avro ``bytes`` ``decimal(28, 8)``."""


class AvroModel(BaseModel):
    """A frozen model mirroring one named Avro record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    avro_name: ClassVar[str]


class EventMetadata(AvroModel):
    """The envelope: identity, time and the ids linking an event to a request and trace."""

    avro_name: ClassVar[str] = "com.tradesense.common.EventMetadata"

    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: TimestampMillis = Field(default_factory=utc_now)
    correlation_id: str | None = None
    causation_id: str | None = None
    trace_id: str | None = None
    source: str = "tradesense-streaming"

    def caused_by(self, cause: Event) -> EventMetadata:
        """Fresh metadata for an event caused by ``cause`` (same correlation and trace)."""
        return self.model_copy(
            update={
                "causation_id": str(cause.metadata.event_id),
                "correlation_id": cause.metadata.correlation_id,
                "trace_id": cause.metadata.trace_id,
            }
        )


class Money(AvroModel):
    """An exact amount in one ISO 4217 currency."""

    avro_name: ClassVar[str] = "com.tradesense.common.Money"

    amount: Amount
    currency: str = Field(pattern=r"^[A-Z]{3}$")


# x-partition-key field per event class; looked up once per record sent.
_PARTITION_KEYS: dict[type[Event], str | None] = {}


class Event(AvroModel):
    """Base of every event: envelope metadata, schema binding and partition key."""

    metadata: EventMetadata = Field(default_factory=EventMetadata)

    @classmethod
    def type_name(cls) -> str:
        """The short type name carried in the ``event-type`` header, e.g. ``OrderPlaced``."""
        return cls.avro_name.rpartition(".")[2]

    @classmethod
    def avro_schema(cls) -> LocalSchema:
        """The bound ``.avsc`` (override to bind to a schema outside the bundled catalog)."""
        return default_catalog().get(cls.avro_name)

    @property
    def event_id(self) -> UUID:
        return self.metadata.event_id

    @property
    def occurred_at(self) -> datetime:
        return self.metadata.occurred_at

    @property
    def correlation_id(self) -> str | None:
        return self.metadata.correlation_id

    def partition_key(self) -> str | None:
        """The value of the schema's ``x-partition-key`` field, as text (``None`` if unset)."""
        cls = type(self)
        field = _PARTITION_KEYS.get(cls, "")
        if field == "":
            field = _PARTITION_KEYS[cls] = self.avro_schema().partition_key
        if field is None:
            return None
        value = getattr(self, field)
        return None if value is None else str(value)

    def to_avro_dict(self) -> dict[str, Any]:
        """The value fastavro writes with the bound schema."""
        return self.model_dump(mode="python")

    @classmethod
    def from_avro_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a decoded Avro record (raises pydantic's ``ValidationError``)."""
        return cls.model_validate(data)


__all__ = [
    "Amount",
    "AvroModel",
    "Event",
    "EventMetadata",
    "Money",
    "TimestampMillis",
    "utc_now",
]
