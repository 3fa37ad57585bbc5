"""Typed domain and audit events, each bound to its Avro contract in ``schemas/``.

The ``.avsc`` files are the source of truth; these Pydantic models mirror them field for
field (``tests/unit/test_events.py`` fails on any drift). Every event carries an
:class:`EventMetadata` envelope and names its partition-key field in its schema
(``x-partition-key``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID, uuid4

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from streaming.serde.avro import AvroDeserializer
from streaming.serde.catalog import LocalSchema, SchemaCatalog, default_catalog
from streaming.serde.client import SchemaRegistry
from streaming.serde.context import SerializationContext
from streaming.serde.errors import SchemaMismatchError


def _to_utc_millis(value: datetime) -> datetime:
    """Avro timestamp-millis keeps milliseconds; truncate so round trips are exact."""
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


class OrderSide(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


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


# --- orders -------------------------------------------------------------------------


class OrderType(enum.StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(enum.StrEnum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderPlaced(Event):
    """A client order was accepted by the order service."""

    avro_name: ClassVar[str] = "com.tradesense.events.OrderPlaced"

    order_id: UUID
    account_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity: Amount
    limit_price: Money | None = None
    stop_price: Money | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    client_order_id: str | None = None


class CancelReason(enum.StrEnum):
    USER_REQUESTED = "USER_REQUESTED"
    RISK_LIMIT = "RISK_LIMIT"
    EXPIRED = "EXPIRED"
    EXCHANGE_REJECTED = "EXCHANGE_REJECTED"
    SYSTEM = "SYSTEM"


class OrderCancelled(Event):
    """An open order was cancelled; nothing more will fill."""

    avro_name: ClassVar[str] = "com.tradesense.events.OrderCancelled"

    order_id: UUID
    account_id: str
    reason: CancelReason
    remaining_quantity: Amount
    note: str | None = None


class OrderFilled(Event):
    """An execution against an order (partial or final)."""

    avro_name: ClassVar[str] = "com.tradesense.events.OrderFilled"

    order_id: UUID
    fill_id: str
    account_id: str
    symbol: str
    side: OrderSide
    fill_quantity: Amount
    fill_price: Money
    cumulative_quantity: Amount
    leaves_quantity: Amount
    commission: Money | None = None
    venue: str | None = None
    executed_at: TimestampMillis


class PositionChangeReason(enum.StrEnum):
    FILL = "FILL"
    CORPORATE_ACTION = "CORPORATE_ACTION"
    TRANSFER = "TRANSFER"
    ADJUSTMENT = "ADJUSTMENT"


class PositionChanged(Event):
    """An account's holding of one instrument changed."""

    avro_name: ClassVar[str] = "com.tradesense.events.PositionChanged"

    account_id: str
    symbol: str
    previous_quantity: Amount
    new_quantity: Amount
    average_price: Money
    realized_pnl: Money | None = None
    reason: PositionChangeReason
    cause_order_id: str | None = None


# --- users --------------------------------------------------------------------------


class UserRegistered(Event):
    """A new platform user signed up (username, email, full_name are PII)."""

    avro_name: ClassVar[str] = "com.tradesense.events.UserRegistered"

    user_id: UUID
    username: str
    email: str
    full_name: str | None = None
    country: str | None = None
    roles: tuple[str, ...] = ()


# --- audit --------------------------------------------------------------------------


class AuditEventType(enum.StrEnum):
    """What was audited; ``UNKNOWN`` is the enum default old readers fall back to."""

    USER_LOGIN = "USER_LOGIN"
    LOGIN_FAILED = "LOGIN_FAILED"
    LOGOUT = "LOGOUT"
    USER_REGISTERED = "USER_REGISTERED"
    USER_UPDATED = "USER_UPDATED"
    USER_DEACTIVATED = "USER_DEACTIVATED"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"  # noqa: S105
    PASSWORD_RESET_REQUESTED = "PASSWORD_RESET_REQUESTED"  # noqa: S105
    MFA_ENABLED = "MFA_ENABLED"
    MFA_DISABLED = "MFA_DISABLED"
    TOKEN_REFRESHED = "TOKEN_REFRESHED"  # noqa: S105
    TOKEN_REVOKED = "TOKEN_REVOKED"  # noqa: S105
    REFRESH_TOKEN_REUSE = "REFRESH_TOKEN_REUSE"  # noqa: S105
    PERMISSION_CHANGED = "PERMISSION_CHANGED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    ROLE_ASSIGNED = "ROLE_ASSIGNED"
    ROLE_REVOKED = "ROLE_REVOKED"
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_MODIFIED = "ORDER_MODIFIED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_REJECTED = "ORDER_REJECTED"
    POSITION_CHANGED = "POSITION_CHANGED"
    FUNDS_DEPOSITED = "FUNDS_DEPOSITED"
    FUNDS_WITHDRAWN = "FUNDS_WITHDRAWN"
    RISK_LIMIT_BREACHED = "RISK_LIMIT_BREACHED"
    DATA_ACCESSED = "DATA_ACCESSED"
    DATA_EXPORTED = "DATA_EXPORTED"
    DATA_DELETED = "DATA_DELETED"
    CONFIG_CHANGED = "CONFIG_CHANGED"
    KEY_ROTATED = "KEY_ROTATED"
    REGISTRY_CHANGE = "REGISTRY_CHANGE"
    DLQ_REDRIVE = "DLQ_REDRIVE"
    OFFSET_RESET = "OFFSET_RESET"
    REPLAY_STARTED = "REPLAY_STARTED"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    UNKNOWN = "UNKNOWN"


class ActorType(enum.StrEnum):
    USER = "USER"
    SERVICE = "SERVICE"
    SYSTEM = "SYSTEM"
    ANONYMOUS = "ANONYMOUS"


class Actor(AvroModel):
    """Who did it (``username`` is PII)."""

    avro_name: ClassVar[str] = "com.tradesense.audit.Actor"

    actor_type: ActorType
    actor_id: str | None = None
    username: str | None = None


class AuditOutcome(enum.StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DENIED = "DENIED"
    ERROR = "ERROR"


class AuditEvent(Event):
    """One audited action; ``metadata`` holds occurred_at, correlation_id and trace_id.

    ``ip_address``, ``user_agent`` and ``actor.username`` are PII (see
    ``AuditEvent.avro_schema().pii_fields``): the audit sink encrypts them.
    """

    avro_name: ClassVar[str] = "com.tradesense.audit.AuditEvent"

    event_type: AuditEventType
    actor: Actor
    resource_type: str
    resource_id: str | None = None
    action: str
    outcome: AuditOutcome
    details: dict[str, str] = Field(default_factory=dict)
    ip_address: str | None = None
    user_agent: str | None = None
    session_id: str | None = None


# --- type registry and typed deserialization ----------------------------------------


class EventTypes(Mapping[str, type[Event]]):
    """An immutable registry of event classes by Avro fullname (and by short name)."""

    def __init__(self, types: Iterable[type[Event]]) -> None:
        self._by_name: dict[str, type[Event]] = {}
        for cls in types:
            if cls.avro_name in self._by_name:
                raise ValueError(f"two event types claim {cls.avro_name}")
            self._by_name[cls.avro_name] = cls
        self._by_short = {cls.type_name(): cls for cls in self._by_name.values()}

    def __getitem__(self, fullname: str) -> type[Event]:
        return self._by_name[fullname]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def by_event_type(self, event_type: str) -> type[Event] | None:
        """The class for a short name such as ``OrderPlaced`` (the ``event-type`` header)."""
        return self._by_short.get(event_type)

    def with_types(self, *types: type[Event]) -> EventTypes:
        """A new registry with ``types`` added (e.g. an application's own events)."""
        return EventTypes([*self._by_name.values(), *types])


EVENT_TYPES = EventTypes(
    [OrderPlaced, OrderCancelled, OrderFilled, PositionChanged, UserRegistered, AuditEvent]
)
"""Every event type this package defines."""


class EventDeserializer:
    """Bytes -> typed :class:`Event`, reading each record with the local model's schema.

    A consumer built against schema v2 therefore reads v1 records (Avro resolution fills
    defaults). Records of a type not in ``event_types``, or whose data the model rejects,
    raise :class:`~streaming.serde.errors.SchemaMismatchError` (with the raw bytes).
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        *,
        event_types: EventTypes = EVENT_TYPES,
        catalog: SchemaCatalog | None = None,
    ) -> None:
        self._types = event_types
        self._avro = AvroDeserializer(registry, use_local_schemas=True, catalog=catalog)

    async def deserialize(self, data: bytes, ctx: SerializationContext) -> Event:
        decoded = await self._avro.deserialize(data, ctx)
        cls = self._types.get(decoded.record_name or "")
        if cls is None:
            raise SchemaMismatchError(
                f"no event type is bound to {decoded.record_name}",
                data=data,
                ctx=ctx,
                schema_id=decoded.schema_id,
            )
        try:
            return cls.from_avro_dict(decoded.value)
        except ValidationError as exc:
            raise SchemaMismatchError(
                f"{decoded.record_name} does not fit {cls.__name__}: {exc}",
                data=data,
                ctx=ctx,
                schema_id=decoded.schema_id,
            ) from exc


__all__ = [
    "EVENT_TYPES",
    "Actor",
    "ActorType",
    "Amount",
    "AuditEvent",
    "AuditEventType",
    "AuditOutcome",
    "AvroModel",
    "CancelReason",
    "Event",
    "EventDeserializer",
    "EventMetadata",
    "EventTypes",
    "Money",
    "OrderCancelled",
    "OrderFilled",
    "OrderPlaced",
    "OrderSide",
    "OrderType",
    "PositionChangeReason",
    "PositionChanged",
    "TimeInForce",
    "TimestampMillis",
    "UserRegistered",
    "utc_now",
]
