"""Events mirror their .avsc contracts exactly, and round-trip through serde."""

import enum
import io
import random
import types
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, field_serializer
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from streaming.events import (
    EVENT_TYPES,
    Actor,
    ActorType,
    AuditEvent,
    AuditEventType,
    AuditOutcome,
    AvroModel,
    EventDeserializer,
    EventMetadata,
    EventTypes,
    Money,
    OrderPlaced,
    OrderSide,
    OrderType,
    UserRegistered,
)
from streaming.events.base import Event
from streaming.events.fake import FAKERS, fake_events
from streaming.serde import (
    AvroSerializer,
    InMemorySchemaRegistryClient,
    SchemaMismatchError,
    SerializationContext,
    default_catalog,
)
from streaming.serde.schema import schema_fullname
from streaming.serde.wire import unframe

CATALOG = default_catalog()
# Top-level records of the catalog; nested ones (Actor) are checked through their parent.
MODELS: dict[str, type[AvroModel]] = {
    cls.avro_name: cls for cls in (*EVENT_TYPES.values(), EventMetadata, Money)
}
ENUMS = {
    "com.tradesense.common.OrderSide": OrderSide,
}

# --- model <-> schema agreement --------------------------------------------------------


def _strip_annotated(tp: Any) -> tuple[Any, list[Any]]:
    meta: list[Any] = []
    while typing.get_origin(tp) is typing.Annotated:
        tp, *extra = typing.get_args(tp)
        meta.extend(extra)
    return tp, meta


def _decimal_constraints(meta: list[Any]) -> tuple[Any, Any]:
    digits = places = None
    for item in meta:
        item_meta = item.metadata if isinstance(item, FieldInfo) else [item]
        for m in item_meta:
            digits = getattr(m, "max_digits", digits)
            places = getattr(m, "decimal_places", places)
    return digits, places


def compare_type(avro: Any, tp: Any, meta: list[Any], where: str, ns: str) -> list[str]:
    tp, extra = _strip_annotated(tp)
    meta = meta + extra
    if isinstance(avro, list):
        args = (
            typing.get_args(tp)
            if typing.get_origin(tp) in (typing.Union, types.UnionType)
            else (tp,)
        )
        non_null = [a for a in args if a is not type(None)]
        problems = []
        if ("null" in avro) != (type(None) in args):
            problems.append(f"{where}: nullability differs ({avro} vs {tp})")
        branches = [b for b in avro if b != "null"]
        if len(branches) != len(non_null):
            return [*problems, f"{where}: union {avro} vs {tp}"]
        for branch, arg in zip(branches, non_null, strict=True):
            problems += compare_type(branch, arg, meta, where, ns)
        return problems
    if isinstance(avro, str) and avro not in {
        "string",
        "long",
        "int",
        "boolean",
        "double",
        "float",
        "bytes",
        "null",
    }:
        fullname = avro if "." in avro else f"{ns}.{avro}"
        return compare_named(CATALOG.get(fullname).definition(), tp, where)
    if isinstance(avro, dict):
        kind, logical = avro["type"], avro.get("logicalType")
        if kind in ("record", "enum"):
            return compare_named(avro, tp, where, ns)
        if kind == "array":
            ok = typing.get_origin(tp) in (tuple, list)
            items = typing.get_args(tp)[0] if ok else None
            return (
                compare_type(avro["items"], items, [], f"{where}[]", ns)
                if ok
                else [f"{where}: array vs {tp}"]
            )
        if kind == "map":
            ok = typing.get_origin(tp) is dict and typing.get_args(tp)[0] is str
            return (
                compare_type(avro["values"], typing.get_args(tp)[1], [], f"{where}{{}}", ns)
                if ok
                else [f"{where}: map vs {tp}"]
            )
        if logical == "uuid":
            return [] if tp is uuid.UUID else [f"{where}: uuid vs {tp}"]
        if logical == "timestamp-millis":
            return [] if tp in (datetime, AwareDatetime) else [f"{where}: timestamp-millis vs {tp}"]
        if logical == "decimal":
            if tp is not Decimal:
                return [f"{where}: decimal vs {tp}"]
            got = _decimal_constraints(meta)
            want = (avro["precision"], avro["scale"])
            return [] if got == want else [f"{where}: decimal{want} vs max_digits/places {got}"]
        return compare_type(kind, tp, meta, where, ns)
    python = {
        "string": str,
        "long": int,
        "int": int,
        "boolean": bool,
        "double": float,
        "float": float,
        "bytes": bytes,
    }
    return [] if python[avro] is tp else [f"{where}: {avro} vs {tp}"]


def compare_named(avro: dict[str, Any], tp: Any, where: str, ns: str = "") -> list[str]:
    fullname = schema_fullname(avro, ns)
    assert fullname is not None
    if avro["type"] == "enum":
        if not (isinstance(tp, type) and issubclass(tp, enum.Enum)):
            return [f"{where}: enum {fullname} vs {tp}"]
        values = [m.value for m in tp]
        return (
            [] if values == avro["symbols"] else [f"{where}: symbols {avro['symbols']} vs {values}"]
        )
    if not (isinstance(tp, type) and issubclass(tp, AvroModel)) or tp.avro_name != fullname:
        return [f"{where}: record {fullname} vs {tp}"]
    return compare_record(avro, tp, fullname.rpartition(".")[0])


def _default_of(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return "<factory>"
    return info.default


def compare_record(avro: dict[str, Any], model: type[BaseModel], ns: str) -> list[str]:
    name = model.__name__
    avro_fields = [f["name"] for f in avro["fields"]]
    model_fields = list(model.model_fields)
    if avro_fields != model_fields:
        return [f"{name}: fields {avro_fields} vs model {model_fields}"]
    problems = []
    for field in avro["fields"]:
        info = model.model_fields[field["name"]]
        where = f"{name}.{field['name']}"
        problems += compare_type(field["type"], info.annotation, list(info.metadata), where, ns)
        model_default = _default_of(info)
        if "default" in field:
            want = field["default"]
            got = model_default
            if isinstance(got, enum.Enum):
                got = got.value
            if isinstance(got, tuple):
                got = list(got)
            if got == "<factory>":
                got = info.default_factory()  # type: ignore[call-arg,misc]
            if got != want:
                problems.append(f"{where}: default {want!r} vs model {got!r}")
        elif model_default not in (PydanticUndefined, "<factory>"):
            problems.append(f"{where}: model default {model_default!r} but schema has none")
    return problems


@pytest.mark.parametrize("fullname", sorted(MODELS))
def test_model_and_schema_agree(fullname: str) -> None:
    definition = CATALOG.get(fullname).definition()
    assert compare_named(definition, MODELS[fullname], fullname) == []


def test_every_record_schema_in_the_catalog_has_a_model() -> None:
    records = {s.fullname for s in CATALOG if s.definition()["type"] == "record"}
    assert records == set(MODELS)
    enums = {s.fullname for s in CATALOG if s.definition()["type"] == "enum"}
    assert enums == set(ENUMS)
    for fullname, cls in ENUMS.items():
        assert [m.value for m in cls] == CATALOG.get(fullname).definition()["symbols"]


def test_the_checker_catches_drift() -> None:
    drifted = CATALOG.get("com.tradesense.events.UserRegistered").definition()
    drifted["fields"][-1]["default"] = ["trader"]
    drifted["fields"][4]["type"] = "string"
    problems = compare_named(drifted, UserRegistered, "x")
    assert any("roles: default" in p for p in problems)
    assert any(p.startswith("UserRegistered.full_name: string vs") for p in problems)


def test_audit_event_types_cover_the_seed_and_platform_needs() -> None:
    required = {
        "USER_LOGIN",
        "LOGIN_FAILED",
        "LOGOUT",
        "ORDER_PLACED",
        "ORDER_CANCELLED",
        "PERMISSION_CHANGED",
        "PASSWORD_CHANGED",
        "DATA_EXPORTED",
        "REGISTRY_CHANGE",
        "DLQ_REDRIVE",
        "TOKEN_REFRESHED",
        "TOKEN_REVOKED",
        "REFRESH_TOKEN_REUSE",
        "PERMISSION_DENIED",
    }
    assert required <= {m.value for m in AuditEventType}


# --- behaviour of the models -----------------------------------------------------------


def order(**changes: Any) -> OrderPlaced:
    fields: dict[str, Any] = {
        "order_id": uuid.uuid4(),
        "account_id": "acc-1",
        "symbol": "AAPL",
        "side": OrderSide.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": Decimal("10"),
        "limit_price": Money(amount=Decimal("187.25"), currency="USD"),
    }
    return OrderPlaced(**(fields | changes))


def test_partition_key_is_the_schema_named_field_as_text() -> None:
    placed = order()
    assert placed.partition_key() == str(placed.order_id)
    audit = AuditEvent(
        event_type=AuditEventType.USER_LOGIN,
        actor=Actor(actor_type=ActorType.USER, actor_id="u1"),
        resource_type="user",
        action="login",
        outcome=AuditOutcome.SUCCESS,
    )
    assert audit.partition_key() is None


def test_metadata_defaults_to_a_fresh_id_and_now_in_utc_millis() -> None:
    a, b = order(), order()
    assert a.event_id != b.event_id
    assert a.occurred_at.tzinfo is UTC
    assert a.occurred_at.microsecond % 1000 == 0
    assert abs(datetime.now(UTC) - a.occurred_at) < timedelta(seconds=5)


def test_timestamps_are_normalised_to_utc_milliseconds() -> None:
    local = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    meta = EventMetadata(occurred_at=local)
    assert meta.occurred_at == datetime(2025, 1, 2, 1, 4, 5, 678000, tzinfo=UTC)


def test_naive_datetimes_and_excess_decimal_places_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone"):
        EventMetadata(occurred_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="decimal places"):
        order(quantity=Decimal("0.000000001"))


def test_events_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        order().symbol = "MSFT"  # type: ignore[misc]


def test_caused_by_links_correlation_and_causation() -> None:
    cause = order(metadata=EventMetadata(correlation_id="req-1", trace_id="a" * 32))
    meta = EventMetadata().caused_by(cause)
    assert (meta.correlation_id, meta.trace_id) == ("req-1", "a" * 32)
    assert meta.causation_id == str(cause.event_id)


def test_event_types_are_found_by_fullname_and_short_name() -> None:
    assert EVENT_TYPES["com.tradesense.events.OrderPlaced"] is OrderPlaced
    assert EVENT_TYPES.by_event_type("AuditEvent") is AuditEvent
    assert OrderPlaced.type_name() == "OrderPlaced"
    with pytest.raises(ValueError, match="two event types"):
        EVENT_TYPES.with_types(OrderPlaced)


# --- round trips through serde ---------------------------------------------------------

MAX_AMOUNT = Decimal("99999999999999999999.99999999")


def avro_values(node: Any, ns: str, field_name: str = "") -> st.SearchStrategy[Any]:
    """Values fitting an Avro schema (with our model constraints), built from the schema."""
    if isinstance(node, list):
        return st.one_of(*(avro_values(b, ns, field_name) for b in node))
    if isinstance(node, str):
        if node == "null":
            return st.none()
        if node == "string":
            return (
                st.from_regex(r"\A[A-Z]{3}\Z") if field_name == "currency" else st.text(max_size=12)
            )
        if node in ("long", "int"):
            return st.integers(-(2**31), 2**31 - 1)
        fullname = node if "." in node else f"{ns}.{node}"
        return avro_values(CATALOG.get(fullname).definition(), ns, field_name)
    kind, logical = node["type"], node.get("logicalType")
    if logical == "uuid":
        return st.uuids()
    if logical == "timestamp-millis":
        return st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
        ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
    if logical == "decimal":
        return st.decimals(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT, places=8, allow_nan=False)
    if kind == "record":
        inner = schema_fullname(node, ns)
        assert inner is not None
        inner_ns = inner.rpartition(".")[0]
        return st.fixed_dictionaries(
            {f["name"]: avro_values(f["type"], inner_ns, f["name"]) for f in node["fields"]}
        )
    if kind == "enum":
        return st.sampled_from(node["symbols"])
    if kind == "array":
        return st.lists(avro_values(node["items"], ns), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=5), avro_values(node["values"], ns), max_size=3)
    return avro_values(kind, ns, field_name)


@pytest.mark.parametrize("fullname", sorted(EVENT_TYPES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
async def test_every_event_round_trips_through_the_wire_format(
    fullname: str, data: st.DataObject
) -> None:
    cls = EVENT_TYPES[fullname]
    raw = data.draw(avro_values(CATALOG.get(fullname).definition(), ""))
    event = cls.from_avro_dict(raw)
    registry = InMemorySchemaRegistryClient()
    ctx = SerializationContext(f"topic-{cls.type_name()}")
    encoded = await AvroSerializer(registry).serialize(event, ctx)
    decoded = await EventDeserializer(registry).deserialize(encoded, ctx)
    assert type(decoded) is cls
    assert decoded == event


async def test_a_record_without_a_bound_event_type_is_a_schema_mismatch() -> None:
    registry = InMemorySchemaRegistryClient()
    ctx = SerializationContext("orders")
    encoded = await AvroSerializer(registry).serialize(order(), ctx)
    only_users = EventTypes([UserRegistered])
    with pytest.raises(SchemaMismatchError, match="no event type") as caught:
        await EventDeserializer(registry, event_types=only_users).deserialize(encoded, ctx)
    assert caught.value.data == encoded


async def test_a_consumer_on_v2_of_an_event_reads_v1_records() -> None:
    v1 = CATALOG.get("com.tradesense.events.UserRegistered").definition()
    v1["fields"] = [f for f in v1["fields"] if f["name"] not in ("country", "roles")]
    from streaming.serde.catalog import LocalSchema

    v1_catalog = CATALOG.replace(LocalSchema.from_json(v1))
    registry = InMemorySchemaRegistryClient()
    ctx = SerializationContext("users")
    raw = {
        "metadata": EventMetadata().model_dump(),
        "user_id": uuid.uuid4(),
        "username": "ann",
        "email": "ann@example.com",
        "full_name": None,
    }
    encoded = await AvroSerializer(
        registry, schema=v1_catalog.get(UserRegistered.avro_name), catalog=v1_catalog
    ).serialize(raw, ctx)
    event = await EventDeserializer(registry).deserialize(encoded, ctx)
    assert isinstance(event, UserRegistered)
    assert (event.username, event.country, event.roles) == ("ann", None, ())


# --- the cached converter behind to_avro_dict / to_avro_datum ----------------------------


def _written(fullname: str, value: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, CATALOG.parsed(fullname), value)
    return out.getvalue()


@pytest.mark.parametrize("cls", list(FAKERS), ids=lambda c: c.__name__)
async def test_the_converter_matches_model_dump_in_value_and_bytes(cls: type[Event]) -> None:
    registry = InMemorySchemaRegistryClient()
    serializer = AvroSerializer(registry)
    ctx = SerializationContext("t")
    for event in fake_events(cls, 200, rng=random.Random(11)):
        dumped = event.model_dump(mode="python")
        assert event.to_avro_dict() == dumped
        before = _written(cls.avro_name, dumped)  # the path before the converter
        assert _written(cls.avro_name, event.to_avro_datum()) == before
        assert unframe(await serializer.serialize(event, ctx))[1] == before


@pytest.mark.parametrize("fullname", sorted(EVENT_TYPES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_converter_matches_model_dump_for_any_schema_value(
    fullname: str, data: st.DataObject
) -> None:
    raw = data.draw(avro_values(CATALOG.get(fullname).definition(), ""))
    event = EVENT_TYPES[fullname].from_avro_dict(raw)
    assert event.to_avro_dict() == event.model_dump(mode="python")
    assert _written(fullname, event.to_avro_datum()) == _written(fullname, event.to_avro_dict())


def test_record_unions_are_tagged_for_the_writer_and_plain_for_everyone_else() -> None:
    placed = order().model_copy(update={"limit_price": Money(amount=Decimal(2), currency="USD")})
    money = {"amount": Decimal(2), "currency": "USD"}
    assert placed.to_avro_datum()["limit_price"] == ("com.tradesense.common.Money", money)
    assert placed.to_avro_dict()["limit_price"] == money
    assert placed.to_avro_datum()["stop_price"] is None


def test_the_converter_copies_containers_and_dumps_declared_fields_only() -> None:
    class RichMoney(Money):
        note: str = "extra"

    audit = AuditEvent(
        event_type=AuditEventType.USER_LOGIN,
        actor=Actor(actor_type=ActorType.USER),
        resource_type="session",
        action="login",
        outcome=AuditOutcome.SUCCESS,
        details={"k": "v"},
    )
    dumped = audit.to_avro_dict()
    dumped["details"]["k"] = "changed"
    assert audit.details == {"k": "v"}  # a copy, as model_dump gives
    placed = order().model_copy(
        update={"limit_price": RichMoney(amount=Decimal(1), currency="EUR")}
    )
    assert placed.to_avro_dict() == placed.model_dump(mode="python")


def test_a_model_with_its_own_serializer_keeps_model_dump() -> None:
    class Shouting(OrderPlaced):
        @field_serializer("symbol")
        def loud(self, value: str) -> str:
            return value.lower()

    event = Shouting(**order().model_dump())
    assert event.to_avro_dict() == event.model_dump(mode="python")
    assert event.to_avro_dict()["symbol"] == event.symbol.lower()
