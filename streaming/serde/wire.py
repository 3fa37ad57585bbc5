"""Confluent wire format, pure: magic byte 0, 4-byte big-endian schema id, then the body."""

from __future__ import annotations

import struct

from streaming.serde.context import SerializationContext
from streaming.serde.errors import BadMagicByteError, TruncatedRecordError

MAGIC_BYTE = 0
HEADER_SIZE = 5
MAX_SCHEMA_ID = 2**31 - 1
_HEADER = struct.Struct(">bI")


def frame_header(schema_id: int) -> bytes:
    """The 5 header bytes for ``schema_id``."""
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"schema id {schema_id} is outside 0..{MAX_SCHEMA_ID}")
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def frame(schema_id: int, body: bytes) -> bytes:
    """Header plus Avro body."""
    return frame_header(schema_id) + body


def unframe(data: bytes, ctx: SerializationContext | None = None) -> tuple[int, memoryview]:
    """Split a record into ``(schema_id, body)`` without copying the body.

    Raises :class:`TruncatedRecordError` for fewer than 5 bytes and
    :class:`BadMagicByteError` when the first byte is not 0.
    """
    if len(data) < HEADER_SIZE:
        raise TruncatedRecordError(
            f"record has {len(data)} byte(s); the wire-format header alone needs {HEADER_SIZE}",
            data=data,
            ctx=ctx,
        )
    if data[0] != MAGIC_BYTE:
        raise BadMagicByteError(
            f"unknown magic byte {data[0]:#04x}; expected {MAGIC_BYTE:#04x} "
            "(was this record written without the schema-registry serializer?)",
            data=data,
            ctx=ctx,
        )
    schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
    return schema_id, memoryview(data)[HEADER_SIZE:]


__all__ = ["HEADER_SIZE", "MAGIC_BYTE", "frame", "frame_header", "unframe"]
