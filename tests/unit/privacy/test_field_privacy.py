"""Producer-side PII encryption on in-memory parts: marked fields leave the producer as
ciphertext, readers with the KEK get text, readers without get a typed marker, a shred
turns values into shredded markers, and a returning subject gets a new key."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy
from streaming.events import UserRegistered
from streaming.events.audit import Actor, ActorType, AuditEvent, AuditEventType, AuditOutcome
from streaming.privacy import (
    EncryptedValue,
    EnvKeyProvider,
    FieldProtector,
    FieldRevealer,
    SubjectKeyLog,
    SubjectKeysUnavailableError,
)
from streaming.privacy.tokens import encrypt_text, parse_token
from streaming.security.errors import DecryptionError
from streaming.security.fields import FieldEncryptor
from streaming.serde.avro import AvroDeserializer
from streaming.serde.context import SerializationContext
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.testing import eventually
from streaming.transport.base import Record, TopicPartition
from streaming.transport.memory import InMemoryTransport
from tests.unit.security.test_revocation_log import ManualClock

TOPIC = "users"
KEYS_TOPIC = "_test.subject-keys"


def provider() -> EnvKeyProvider:
    return EnvKeyProvider(FieldEncryptor(KEK))


KEK = secrets.token_bytes(32)


def keys(transport: InMemoryTransport, *, kek: bool = True, **kw: object) -> SubjectKeyLog:
    return SubjectKeyLog(
        transport,
        provider() if kek else None,
        topic=KEYS_TOPIC,
        poll_timeout_ms=10,
        **kw,  # type: ignore[arg-type]
    )


def user(user_id: uuid.UUID | None = None, name: str = "alice") -> UserRegistered:
    return UserRegistered(
        user_id=user_id or uuid.uuid4(),
        username=name,
        email=f"{name}@example.com",
        full_name=f"{name.title()} Example",
    )


async def raw_records(transport: InMemoryTransport, topic: str) -> list[Record]:
    consumer = transport.consumer()
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        batch = await consumer.poll(timeout_ms=100)
    finally:
        await consumer.stop()
    return batch.get(tp, [])


@pytest.fixture
def transport() -> InMemoryTransport:
    return InMemoryTransport(auto_create_topics=True)


async def test_marked_fields_leave_the_producer_encrypted(transport: InMemoryTransport) -> None:
    registry = InMemorySchemaRegistryClient()
    event = user(name="zelda")
    async with EventProducer(
        transport, registry, privacy=FieldProtector(keys(transport))
    ) as producer:
        await producer.send(TOPIC, event)
    (record,) = await raw_records(transport, TOPIC)
    assert record.value is not None
    assert b"zelda" not in record.value and b"Zelda" not in record.value
    decoded = await AvroDeserializer(registry).deserialize(
        record.value, SerializationContext.for_record(record)
    )
    value = decoded.value
    assert isinstance(value, dict)
    for field in ("username", "email", "full_name"):
        token = parse_token(value[field])
        assert token is not None, field
    assert value["user_id"] == event.user_id  # the subject stays readable


async def test_reader_with_the_kek_gets_text_and_without_it_a_typed_marker(
    transport: InMemoryTransport,
) -> None:
    event = user()
    protected = await FieldProtector(keys(transport)).protect(event)
    assert protected.email != event.email

    revealed = await FieldRevealer(keys(transport)).reveal(protected)
    assert revealed == event

    locked = await FieldRevealer(None).reveal(protected)
    assert isinstance(locked.email, EncryptedValue)
    assert not locked.email.shredded and locked.email.subject == str(event.user_id)
    assert locked.email == protected.email  # forwarding it keeps the ciphertext


async def test_an_event_without_marked_fields_never_touches_the_key_topic(
    transport: InMemoryTransport,
) -> None:
    log = keys(transport)
    event = AuditEvent(
        event_type=AuditEventType.ORDER_PLACED,
        actor=Actor(actor_type=ActorType.SERVICE, actor_id="svc"),
        resource_type="order",
        action="place",
        outcome=AuditOutcome.SUCCESS,
    )
    assert await FieldProtector(log).protect(event) is event
    assert not log._tail.started  # no tail, no key, no topic
    assert not log.generations("svc")


async def test_nested_marked_fields_are_encrypted_under_the_actor_subject(
    transport: InMemoryTransport,
) -> None:
    event = AuditEvent(
        event_type=AuditEventType.USER_LOGIN,
        actor=Actor(actor_type=ActorType.USER, actor_id="u-7", username="bob"),
        resource_type="session",
        action="login",
        outcome=AuditOutcome.SUCCESS,
        ip_address="10.0.0.7",
    )
    protected = await FieldProtector(keys(transport)).protect(event)
    assert parse_token(protected.actor.username) is not None
    assert parse_token(protected.ip_address) is not None
    assert protected.user_agent is None  # null stays null
    assert protected.actor.actor_id == "u-7"
    assert await FieldRevealer(keys(transport)).reveal(protected) == event


async def test_shredded_subject_reads_as_shredded_and_a_returning_one_gets_a_new_key(
    transport: InMemoryTransport,
) -> None:
    uid = uuid.uuid4()
    producer_keys, reader_keys = keys(transport), keys(transport)
    protector, reader = FieldProtector(producer_keys), FieldRevealer(reader_keys)
    old = await protector.protect(user(uid))
    assert (await reader.reveal(old)).username == "alice"

    shredded_ids = await keys(transport, kek=False).shred(str(uid))  # no KEK needed
    assert len(shredded_ids) == 1

    async def old_value_is_shredded() -> bool:
        value = (await reader.reveal(old)).username
        return isinstance(value, EncryptedValue) and value.shredded

    await eventually(old_value_is_shredded, timeout_s=5, what="the shred reaching the reader")
    await eventually(
        lambda: not producer_keys.generations(str(uid)), timeout_s=5, what="the producer's copy"
    )
    new = await protector.protect(user(uid, name="alice2"))
    assert parse_token(new.username).key_id != parse_token(old.username).key_id  # type: ignore[union-attr]
    assert (await reader.reveal(new)).username == "alice2"
    still = (await reader.reveal(old)).username
    assert isinstance(still, EncryptedValue) and still.shredded
    for log in (producer_keys, reader_keys):
        await log.stop()


async def test_racing_producers_never_write_a_value_nobody_can_decrypt(
    transport: InMemoryTransport,
) -> None:
    uid = uuid.uuid4()
    logs = [keys(transport) for _ in range(4)]
    protected = await asyncio.gather(
        *(FieldProtector(log).protect(user(uid, name=f"n{i}")) for i, log in enumerate(logs))
    )
    reader = FieldRevealer(keys(transport))
    names = [(await reader.reveal(p)).username for p in protected]
    assert names == ["n0", "n1", "n2", "n3"]
    # every later producer converges on the first generation in the log
    first = keys(transport)
    await first.current()
    expected = first.generations(str(uid))[0].key_id
    late = await FieldProtector(keys(transport)).protect(user(uid))
    assert parse_token(late.email).key_id == expected  # type: ignore[union-attr]


async def test_a_value_moved_to_another_field_or_subject_does_not_decrypt(
    transport: InMemoryTransport,
) -> None:
    a, b = user(name="ann"), user(name="ben")
    protector = FieldProtector(keys(transport))
    pa, pb = await protector.protect(a), await protector.protect(b)
    reader = FieldRevealer(keys(transport))
    with pytest.raises(DecryptionError, match="altered or copied"):
        await reader.reveal(pa.model_copy(update={"username": pa.email}))
    with pytest.raises(DecryptionError):
        await reader.reveal(
            pb.model_copy(
                update={
                    "email": pa.email.replace(
                        parse_token(pa.email).key_id,  # type: ignore[union-attr]
                        parse_token(pb.email).key_id,  # type: ignore[union-attr]
                    )
                }
            )
        )


async def test_a_stale_key_list_neither_encrypts_nor_decrypts(
    transport: InMemoryTransport,
) -> None:
    clock = ManualClock()
    log = keys(transport, clock=clock, max_lag_s=2.0, wait_s=0.3)
    protector = FieldProtector(log)
    await protector.protect(user())
    await log.stop()  # the tail stops confirming (Kafka unreachable)
    clock.now += 2.5
    log._tail.start = _never_current  # type: ignore[method-assign]
    with pytest.raises(SubjectKeysUnavailableError):
        await protector.protect(user())


async def _never_current() -> None:
    return None


async def test_consumer_handlers_see_clear_text_and_the_dlq_keeps_ciphertext(
    transport: InMemoryTransport,
) -> None:
    registry = InMemorySchemaRegistryClient()
    event = user(name="carol")
    async with EventProducer(
        transport, registry, privacy=FieldProtector(keys(transport))
    ) as producer:
        await producer.send(TOPIC, event)
    seen: list[UserRegistered] = []
    consumer = EventConsumer(
        transport,
        registry,
        topics=[TOPIC],
        group_id="g",
        poll_timeout_ms=20,
        retry_policy=RetryPolicy(attempts=2, delays_s=(0.05,), jitter=0),
        privacy=FieldRevealer(keys(transport)),
    )

    @consumer.handler(UserRegistered)
    async def handle(got: UserRegistered) -> None:
        seen.append(got)
        raise ValueError("send it to the DLQ")

    task = asyncio.create_task(consumer.run())
    try:
        await eventually(
            lambda: consumer.stats.dead_lettered == 1, timeout_s=10, what="the DLQ write"
        )
    finally:
        consumer.request_stop()
        await task
    assert seen and all(s.email == "carol@example.com" for s in seen)
    dead = await raw_records(transport, f"{TOPIC}.g.dlq")
    retried = await raw_records(transport, f"{TOPIC}.g.retry.1")
    assert dead and retried
    assert all(b"carol" not in (r.value or b"") for r in dead + retried)


def test_encrypt_text_round_trips_through_parse() -> None:
    aes = AESGCM(AESGCM.generate_key(bit_length=256))
    token = encrypt_text(aes, "x", subject="s", path="p", key_id="0" * 16)
    parsed = parse_token(token)
    assert parsed is not None and parsed.key_id == "0" * 16
    assert parse_token("pii:v1:nothex:AAAA") is None and parse_token("plain") is None
