"""The event framework: the envelope, the :class:`Event` base and its schema binding.

Models mirror the ``.avsc`` contracts in ``schemas/`` field for field
(``tests/unit/test_events.py`` fails on any drift). Every event carries an
:class:`EventMetadata` envelope and names its partition-key field in its schema
(``x-partition-key``). The trading models live in :mod:`streaming.events.domain`, the
audit models in :mod:`streaming.events.audit`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from types import UnionType
from typing import Annotated, Any, ClassVar, Self, Union, cast, get_args, get_origin
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
        """The value fastavro writes with the bound schema (``model_dump(mode="python")``'s
        dict, built by a converter cached per class: this runs once per record sent)."""
        return _converters(type(self))[0](self)

    def to_avro_datum(self) -> dict[str, Any]:
        """:meth:`to_avro_dict` with each record-typed union branch in fastavro's tuple
        notation ``(fullname, dict)``: the same bytes, and the writer need not try each
        branch of the union against the value. What :class:`AvroSerializer` writes."""
        return _converters(type(self))[1](self)

    @classmethod
    def from_avro_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a decoded Avro record (raises pydantic's ``ValidationError``)."""
        return cls.model_validate(data)


Convert = Callable[[Any], dict[str, Any]]
_CONVERTERS: dict[type[AvroModel], tuple[Convert, Convert]] = {}
# Field types model_dump(mode="python") returns as they are (AwareDatetime: a datetime).
_ATOMIC = (
    str,
    int,
    float,
    bool,
    bytes,
    Decimal,
    UUID,
    datetime,
    date,
    time,
    enum.Enum,
    AwareDatetime,
)
_NONE = type(None)


def _converters(cls: type[AvroModel]) -> tuple[Convert, Convert]:
    """``(to_avro_dict, to_avro_datum)`` for ``cls``, made on first use."""
    found = _CONVERTERS.get(cls)
    if found is None:
        found = _CONVERTERS[cls] = _make_converters(cls)
    return found


def _dump(obj: Any) -> dict[str, Any]:
    return cast(dict[str, Any], obj.model_dump(mode="python"))


def _make_converters(cls: type[AvroModel]) -> tuple[Convert, Convert]:
    """Copy the instance's field values and convert its nested models: what
    ``model_dump`` does for these field types, at a fraction of its cost.

    A model with anything pydantic could dump otherwise (serializers, computed fields,
    extras, aliases, other field types) keeps ``model_dump``.
    """
    decorators = cls.__pydantic_decorators__
    if (
        decorators.field_serializers
        or decorators.model_serializers
        or cls.model_computed_fields
        or cls.model_config.get("extra") == "allow"
        or cls.model_config.get("serialize_by_alias")
    ):
        return _dump, _dump
    nested: list[tuple[str, Convert, str | None]] = []  # (field, converter, union tag)
    copies: list[tuple[str, type]] = []  # mutable containers: a fresh copy, as model_dump
    unions = _record_unions(cls)
    for name, info in cls.model_fields.items():
        if info.exclude or info.alias is not None or info.serialization_alias is not None:
            return _dump, _dump
        annotation = info.annotation
        args = get_args(annotation)
        if get_origin(annotation) in (Union, UnionType) and len(args) == 2 and _NONE in args:
            annotation = args[0] if args[1] is _NONE else args[1]  # Optional[X]: None as is
            args = get_args(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, AvroModel):
            tag = annotation.avro_name if unions.get(name) == annotation.avro_name else None
            nested.append((name, _converters(annotation)[0], tag))
        elif origin in (list, dict) and all(map(_is_atomic, args)):
            copies.append((name, origin))
        elif not (_is_atomic(annotation) or (origin is tuple and all(map(_is_atomic, args)))):
            return _dump, _dump
    names = tuple(cls.model_fields)

    def fields(obj: Any) -> dict[str, Any]:
        values: dict[str, Any] = obj.__dict__
        if type(obj) is cls:
            return values.copy()
        return {name: values[name] for name in names}  # a subclass: the declared fields

    def plain(obj: Any) -> dict[str, Any]:
        out = fields(obj)
        for name, inner, _ in nested:
            if (value := out[name]) is not None:
                out[name] = inner(value)
        for name, container in copies:
            if (value := out[name]) is not None:
                out[name] = container(value)
        return out

    def datum(obj: Any) -> dict[str, Any]:
        out = fields(obj)
        for name, inner, tag in nested:
            if (value := out[name]) is not None:
                out[name] = (tag, inner(value)) if tag else inner(value)
        return out  # the writer only reads the containers

    return plain, datum


def _is_atomic(tp: Any) -> bool:
    """A type ``model_dump(mode="python")`` returns as is (``...`` of ``tuple[X, ...]``)."""
    return tp is Ellipsis or (isinstance(tp, type) and issubclass(tp, _ATOMIC))


def _record_unions(cls: type[AvroModel]) -> dict[str, str]:
    """Fields of ``cls``'s schema typed ``["null", "<record fullname>"]``: field -> fullname."""
    schema = getattr(cls, "avro_schema", None)
    if schema is None:
        return {}
    out: dict[str, str] = {}
    for field in schema().definition().get("fields", ()):
        branches = field.get("type")
        if isinstance(branches, list) and len(branches) == 2 and "null" in branches:
            other = branches[1] if branches[0] == "null" else branches[0]
            if isinstance(other, str):
                out[field["name"]] = other
    return out


__all__ = [
    "Amount",
    "AvroModel",
    "Event",
    "EventMetadata",
    "Money",
    "TimestampMillis",
    "utc_now",
]
