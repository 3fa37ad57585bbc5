"""Confluent wire format, pure: magic byte 0, 4-byte big-endian schema id, then the body."""

from __future__ import annotations

import struct

from streaming.serde.context import SerializationContext
from streaming.serde.errors import BadMagicByteError, TruncatedRecordError

MAGIC_BYTE = 0
HEADER_SIZE = 5
MAX_SCHEMA_ID = 2**31 - 1
_HEADER = struct.Struct(">bI")
_ID = struct.Struct(">I")


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
    return unframe_id(data, ctx), memoryview(data)[HEADER_SIZE:]


def unframe_id(data: bytes, ctx: SerializationContext | None = None) -> int:
    """The schema id of a framed record (the body starts at :data:`HEADER_SIZE`); raises
    as :func:`unframe` does. The consumer's hot path: no slice, no view."""
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
    return _ID.unpack_from(data, 1)[0]  # type: ignore[no-any-return]


__all__ = ["HEADER_SIZE", "MAGIC_BYTE", "frame", "frame_header", "unframe", "unframe_id"]
