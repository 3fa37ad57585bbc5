"""The context passed to every (de)serialize call: where the bytes live and what they are."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from streaming.transport.base import Headers, Record


class MessageField(enum.StrEnum):
    """Which part of a Kafka record is being (de)serialized."""

    KEY = "key"
    VALUE = "value"


@dataclass(frozen=True, slots=True)
class SerializationContext:
    """Topic, key/value and headers; partition and offset when the record was consumed.

    Deserialization errors copy these coordinates so a DLQ router needs nothing else.
    """

    topic: str
    field: MessageField = MessageField.VALUE
    headers: Headers = ()
    partition: int | None = None
    offset: int | None = None

    @classmethod
    def for_record(
        cls, record: Record, field: MessageField = MessageField.VALUE
    ) -> SerializationContext:
        """The context of a consumed record (topic, partition, offset, headers)."""
        return cls(
            topic=record.topic,
            field=field,
            headers=record.headers,
            partition=record.partition,
            offset=record.offset,
        )


__all__ = ["MessageField", "SerializationContext"]
