"""A consumer group exactly 100 records behind, set up with confluent-kafka (an
independent client), and the ``streaming`` executable running this checkout's code."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import streaming
from streaming.config import KafkaSettings
from streaming.core.topics import dlq_topic, retry_topic

CHECKOUT = Path(streaming.__file__).resolve().parents[1]
PRODUCED, COMMITTED = 150, 50
RETRY_RECORDS, DLQ_RECORDS = 5, 3


def streaming_command() -> list[str]:
    """The installed ``streaming`` script (``python -m streaming`` if there is none)."""
    script = Path(sys.executable).with_name("streaming")
    return [str(script)] if script.exists() else [sys.executable, "-m", "streaming"]


def top_env(bootstrap_servers: str, **extra: str) -> dict[str, str]:
    """The environment of a ``streaming top`` child: this checkout's code, our broker, no
    database or registry unless ``extra`` names them."""
    unset = {"DATABASE_URL", "DB_URL", "DB_HOST", "REGISTRY_URL"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        PYTHONPATH=str(CHECKOUT),
        KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class Behind:
    topic: str
    group: str
    retry: str
    dlq: str


def _produce(producer: Producer, topic: str, count: int) -> None:
    for i in range(count):
        producer.produce(topic, value=f"v{i}".encode(), key=f"k{i}".encode(), partition=0)
    assert producer.flush(30) == 0


@pytest.fixture
def behind(kafka_settings: KafkaSettings) -> Iterator[Behind]:
    """A one-partition topic with 150 records and a group committed at 50; the group's
    first retry topic holds 5 records and its DLQ 3."""
    tag = uuid.uuid4().hex[:10]
    topic, group = f"top-{tag}", f"top-g-{tag}"
    made = Behind(topic, group, retry_topic(topic, group, 1), dlq_topic(topic, group))
    conf = {"bootstrap.servers": kafka_settings.bootstrap_servers}
    admin = AdminClient(conf)
    names = [made.topic, made.retry, made.dlq]
    for future in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        future.result(timeout=30)
    try:
        producer = Producer({**conf, "enable.idempotence": True})
        _produce(producer, made.topic, PRODUCED)
        _produce(producer, made.retry, RETRY_RECORDS)
        _produce(producer, made.dlq, DLQ_RECORDS)
        consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
        consumer.commit(offsets=[TopicPartition(topic, 0, COMMITTED)], asynchronous=False)
        consumer.close()
        yield made
    finally:
        for future in admin.delete_topics(names).values():
            future.result(timeout=30)
        for future in admin.delete_consumer_groups([group]).values():
            future.result(timeout=30)
