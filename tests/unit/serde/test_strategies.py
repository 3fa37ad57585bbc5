import pytest

from streaming.serde.context import MessageField, SerializationContext
from streaming.serde.errors import SerializeError
from streaming.serde.strategies import (
    record_name_strategy,
    topic_name_strategy,
    topic_record_name_strategy,
)
from streaming.transport.base import Record

NAME = "com.tradesense.events.OrderPlaced"


def test_topic_name_strategy_uses_topic_and_field() -> None:
    assert topic_name_strategy(SerializationContext("orders"), NAME) == "orders-value"
    key_ctx = SerializationContext("orders", MessageField.KEY)
    assert topic_name_strategy(key_ctx, NAME) == "orders-key"


def test_record_name_strategy_uses_the_fullname() -> None:
    assert record_name_strategy(SerializationContext("orders"), NAME) == NAME


def test_topic_record_name_strategy_joins_topic_and_fullname() -> None:
    assert topic_record_name_strategy(SerializationContext("orders"), NAME) == f"orders-{NAME}"


@pytest.mark.parametrize("strategy", [record_name_strategy, topic_record_name_strategy])
def test_record_strategies_need_a_named_schema(strategy: object) -> None:
    with pytest.raises(SerializeError, match="named record"):
        strategy(SerializationContext("orders"), None)  # type: ignore[operator]


def test_context_for_a_consumed_record_keeps_its_coordinates() -> None:
    record = Record("t", 3, 42, 0, None, b"x", (("event-type", b"OrderPlaced"),))
    ctx = SerializationContext.for_record(record)
    assert (ctx.topic, ctx.partition, ctx.offset, ctx.field) == ("t", 3, 42, MessageField.VALUE)
    assert ctx.headers == record.headers
