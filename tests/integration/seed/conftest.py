"""Running the platform document's code blocks as written, and reading what they did
with independent clients (confluent-kafka for the audit topic, SQL for the tables)."""

from __future__ import annotations

import ast
import asyncio
import inspect
import logging
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentRegistry
from confluent_kafka.schema_registry.avro import AvroDeserializer as ConfluentDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streaming.config import get_settings, reload_settings
from streaming.decorators import default_audit_logger, set_default_audit_logger
from streaming.testing.stack import StackEndpoints

AUDIT_TOPIC = "audit.events"
SEED_IMPORT = "from src.infrastructure import"
OUR_IMPORT = "from streaming import"


def seed_document() -> str | None:
    """The platform document, when this checkout sits next to ``../shared/seed``."""
    for parent in Path(__file__).resolve().parents:
        found = sorted((parent / "shared" / "seed").glob("*.txt"))
        if found:
            return found[0].read_text(encoding="utf-8")
    return None


def assert_verbatim(block: str) -> None:
    """``block`` is the seed's block with only the import path changed."""
    seed = seed_document()
    if seed is None:
        pytest.skip("the platform document (../shared/seed) is not next to this checkout")

    def lines(text: str) -> str:  # the document keeps trailing blanks, our source does not
        return "\n".join(line.rstrip() for line in text.splitlines())

    original = lines(textwrap.dedent(block).strip().replace(OUR_IMPORT, SEED_IMPORT))
    assert original in lines(seed), "the block drifted from the platform document"


async def run_block(block: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Run a seed block (top-level ``await`` allowed) in ``namespace``; returns it."""
    code = compile(
        textwrap.dedent(block), "<seed block>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        await result
    return namespace


@pytest_asyncio.fixture
async def seed_env(
    streaming_stack: StackEndpoints, registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """The seed's configuration: everything from the environment, as a service has it;
    the default audit logger is built afresh from it and stopped afterwards."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", streaming_stack.bootstrap_servers)
    monkeypatch.setenv("DATABASE_URL", streaming_stack.database_url)
    monkeypatch.setenv("REGISTRY_URL", registry_url)
    reload_settings()
    set_default_audit_logger(None)
    yield
    await default_audit_logger().aclose()
    set_default_audit_logger(None)
    get_settings.cache_clear()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Leave stdlib logging and structlog as the test found them (a block that calls
    ``configure_logging`` or a ``capture_logs`` would otherwise outlive the test)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configured, config = structlog.is_configured(), structlog.get_config()
    yield
    root.handlers, root.level = handlers, level
    if configured:
        structlog.configure(**config)
    else:
        structlog.reset_defaults()


class AuditTopicReader:
    """Reads the audit topic from where it ended when built, with confluent-kafka."""

    def __init__(self, bootstrap: str, registry_url: str, topic: str = AUDIT_TOPIC) -> None:
        self.topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"seed-audit-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self._decode = ConfluentDeserializer(ConfluentRegistry({"url": registry_url}))
        self._start = self._ends()
        self._assigned = False
        self.events: list[dict[str, Any]] = []

    def _ends(self) -> dict[int, int]:
        meta = self._consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
        if meta is None or meta.error is not None:
            return {}
        return {
            p: self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
            for p in meta.partitions
        }

    def _assign(self) -> bool:
        ends = self._ends()
        if not ends:
            return False  # the logger creates the topic on first use
        self._consumer.assign(
            [TopicPartition(self.topic, p, self._start.get(p, OFFSET_BEGINNING)) for p in ends]
        )
        return True

    def _wait(self, match: Callable[[dict[str, Any]], bool], count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(1 for e in self.events if match(e)) >= count:
                return
            if not self._assigned:
                self._assigned = self._assign()
                if not self._assigned:
                    self._consumer.poll(0.2)  # waits on the broker, not a sleep
                    continue
            msg = self._consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            ctx = SerializationContext(self.topic, MessageField.VALUE, msg.headers())
            self.events.append(self._decode(msg.value(), ctx))
        found = [e for e in self.events if match(e)]
        raise AssertionError(
            f"{len(found)} of {count} matching audit events within {timeout_s}s; "
            f"saw {len(self.events)}: {[e.get('event_type') for e in self.events]}"
        )

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], count: int = 1, timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        await asyncio.to_thread(self._wait, match, count, timeout_s)
        return [e for e in self.events if match(e)]

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture
def audit_topic(streaming_stack: StackEndpoints, registry_url: str) -> Iterator[AuditTopicReader]:
    reader = AuditTopicReader(streaming_stack.bootstrap_servers, registry_url)
    yield reader
    reader.close()
