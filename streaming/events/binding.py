"""Event types by name and typed deserialization: bytes -> the bound :class:`Event`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from pydantic import ValidationError

from streaming.events.audit import AuditEvent
from streaming.events.base import Event
from streaming.events.domain import (
    OrderCancelled,
    OrderFilled,
    OrderPlaced,
    PositionChanged,
    UserRegistered,
)
from streaming.serde.avro import AvroDeserializer
from streaming.serde.catalog import SchemaCatalog
from streaming.serde.client import SchemaRegistry
from streaming.serde.context import SerializationContext
from streaming.serde.errors import SchemaMismatchError


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
        # The models parse uuid text themselves (in pydantic-core): no uuid.UUID() twice.
        self._avro = AvroDeserializer(
            registry, use_local_schemas=True, catalog=catalog, uuid_as_text=True
        )

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
