"""Registry changes land in the audit topic as typed AuditEvents (issue 18, last bullet).

A ``streaming registry serve`` process with auth on is changed over HTTP by a named
admin; an independent confluent-kafka consumer + Avro deserializer then reads the audit
topic and must find every change with its actor, subject, before and after. A second
test shows the failure policy: without an audit topic, changes are refused (503) while
reads still work, and they are accepted once the topic exists.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streaming.config import DatabaseSettings, KafkaSettings
from streaming.registry.server import RegistryServer, ServerSettings
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from tests.integration.registry.conftest import _delete_topic
from tests.integration.security.secured_registry import PASSWORDS, deployment, registry_process

CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
V1 = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}
V2 = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}


def _read_audit(bootstrap: str, topic: str, url: str, auth: str) -> list[dict[str, Any]]:
    """Every event on ``topic`` so far, decoded by confluent-kafka's own Avro client."""
    registry = SchemaRegistryClient({"url": url, "basic.auth.user.info": auth})
    decode = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"audit-check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    events: list[dict[str, Any]] = []
    try:
        idle = 0
        while idle < 3:
            msg = consumer.poll(1.0)
            if msg is None:
                idle += 1
                continue
            if msg.error():
                raise AssertionError(str(msg.error()))
            ctx = SerializationContext(topic, MessageField.VALUE)
            events.append(decode(msg.value(), ctx))
    finally:
        consumer.close()
    return events


def _find(events: list[dict[str, Any]], action: str, subject: str) -> dict[str, Any] | None:
    for event in events:
        if event["action"] == action and event["resource_id"] == subject:
            return event
    return None


async def test_registry_changes_are_audit_events_with_actor_before_and_after(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    topic_factory: TopicFactory,
) -> None:
    audit_topic = await topic_factory(prefix="audit-registry")
    bootstrap = kafka_settings.bootstrap_servers
    dep = deployment(tmp_path, bootstrap, database_settings.url.get_secret_value())
    env = dep.env | {"REGISTRY_SERVER_AUDIT": "chain", "REGISTRY_SERVER_AUDIT_TOPIC": audit_topic}
    admin = ("admin", PASSWORDS["admin"])
    subject = f"orders-{uuid.uuid4().hex[:6]}-value"
    with registry_process(env, tmp_path / "registry.log") as url:
        async with httpx.AsyncClient(base_url=url, auth=admin, headers=CT, timeout=30) as http:

            async def call(method: str, path: str, body: Any = None) -> Any:
                content = None if body is None else json.dumps(body)
                r = await http.request(method, path, content=content)
                assert r.status_code == 200, r.text
                return r.json()

            first = await call("POST", f"/subjects/{subject}/versions", {"schema": json.dumps(V1)})
            second = await call("POST", f"/subjects/{subject}/versions", {"schema": json.dumps(V2)})
            await call("PUT", f"/config/{subject}", {"compatibility": "FULL"})
            await call("PUT", "/config", {"compatibility": "FORWARD"})
            await call("PUT", f"/mode/{subject}", {"mode": "READONLY"})
            await call("DELETE", f"/mode/{subject}")
            await call("DELETE", f"/subjects/{subject}/versions/2")
            await call("DELETE", f"/subjects/{subject}")

        wanted = {
            ("schema.register", subject): (1, None, {"id": first["id"], "version": 1}),
            ("config.update", subject): (None, None, "FULL"),
            ("config.update", "(global)"): (None, None, "FORWARD"),
            ("mode.update", subject): (None, None, "READONLY"),
            ("mode.delete", subject): (None, "READONLY", None),
            ("schema.delete", subject): (
                None,
                {"version": 2},
                {"version": 2, "soft_deleted": True},
            ),
            ("subject.delete", subject): (
                None,
                {"versions": [1]},
                {"versions": [1], "soft_deleted": True},
            ),
        }
        auth = f"admin:{PASSWORDS['admin']}"
        events = await eventually(
            lambda: asyncio.to_thread(_read_audit, bootstrap, audit_topic, url, auth),
            until=lambda got: all(_find(got, a, s) for a, s in wanted),
            timeout_s=60,
            what="every registry change on the audit topic",
        )
    registered = [
        e for e in events if e["action"] == "schema.register" and e["resource_id"] == subject
    ]
    assert [json.loads(e["details"]["after"]) for e in registered] == [
        {"id": first["id"], "version": 1},
        {"id": second["id"], "version": 2},
    ]
    assert json.loads(registered[1]["details"]["before"]) == 1
    types = {
        "schema.register": "SCHEMA_REGISTERED",
        "schema.delete": "SCHEMA_DELETED",
        "subject.delete": "SCHEMA_DELETED",
        "config.update": "REGISTRY_CONFIG_CHANGED",
        "mode.update": "REGISTRY_MODE_CHANGED",
        "mode.delete": "REGISTRY_MODE_CHANGED",
    }
    for (action, resource), (_, before, after) in wanted.items():
        event = _find(events, action, resource)
        assert event is not None
        assert event["event_type"] == types[action]
        assert event["actor"]["actor_id"] == "admin"
        assert event["actor"]["actor_type"] == "USER"
        assert event["outcome"] == "SUCCESS"
        assert event["ip_address"] == "127.0.0.1"
        assert event["metadata"]["source"] == "schema-registry"
        if before is not None:
            assert json.loads(event["details"]["before"]) == before
        if action != "schema.register":
            assert json.loads(event["details"]["after"]) == after


async def test_changes_are_refused_until_they_can_be_audited(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory
) -> None:
    audit_topic = f"audit-missing-{uuid.uuid4().hex[:8]}"
    store_topic = f"_schemas-audit-{uuid.uuid4().hex[:8]}"
    settings = ServerSettings(port=0, topic=store_topic, audit="chain", audit_topic=audit_topic)
    server = RegistryServer(settings, kafka=kafka_settings)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=CT, timeout=30) as http:
            body = json.dumps({"schema": json.dumps(V1)})
            refused = await http.post("/subjects/orders-value/versions", content=body)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error_code"] == 50003
            assert "audit" in refused.json()["message"]
            assert (await http.get("/subjects")).json() == []  # nothing was written
            assert (await http.get("/schemas/types")).status_code == 200  # reads work

            await topic_factory(name=audit_topic)
            accepted = await http.post("/subjects/orders-value/versions", content=body)
            assert accepted.status_code == 200, accepted.text
    finally:
        await server.stop()
        await _delete_topic(kafka_settings, store_topic)
