import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming.serde.context import SerializationContext
from streaming.serde.errors import BadMagicByteError, TruncatedRecordError
from streaming.serde.wire import HEADER_SIZE, frame, frame_header, unframe


@given(st.integers(0, 2**31 - 1), st.binary(max_size=64))
def test_frame_then_unframe_returns_id_and_body(schema_id: int, body: bytes) -> None:
    data = frame(schema_id, body)
    assert len(data) == HEADER_SIZE + len(body)
    got_id, got_body = unframe(data)
    assert (got_id, bytes(got_body)) == (schema_id, body)


def test_header_is_magic_zero_and_big_endian_id() -> None:
    assert frame_header(258) == b"\x00\x00\x00\x01\x02"


@pytest.mark.parametrize("schema_id", [-1, 2**31])
def test_ids_outside_the_java_int_range_are_rejected(schema_id: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        frame_header(schema_id)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00\x01"])
def test_records_shorter_than_the_header_are_truncated(data: bytes) -> None:
    ctx = SerializationContext("orders", partition=2, offset=7)
    with pytest.raises(TruncatedRecordError) as caught:
        unframe(data, ctx)
    assert caught.value.data == data
    assert (caught.value.topic, caught.value.partition, caught.value.offset) == ("orders", 2, 7)


def test_a_non_zero_first_byte_is_a_bad_magic_byte() -> None:
    with pytest.raises(BadMagicByteError, match="0x7b") as caught:
        unframe(b'{"json": true}')
    assert caught.value.data == b'{"json": true}'
