"""State survives restarts and log compaction of the ``_schemas`` topic."""

from __future__ import annotations

import json
from typing import Any

import httpx

from streaming.config import KafkaSettings
from streaming.testing import eventually
from streaming.transport.base import TopicPartition
from streaming.transport.kafka import KafkaTransport
from tests.integration.registry.conftest import ServerFactory

SUBJECTS = [f"restart-{n}-value" for n in range(10)]


def version_schema(subject: int, version: int) -> str:
    fields: list[dict[str, Any]] = [{"name": "id", "type": "string"}]
    fields += [{"name": f"extra{k}", "type": "int", "default": k} for k in range(1, version)]
    return json.dumps({"type": "record", "name": f"Event{subject}", "fields": fields})


async def populate(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        for version in range(1, 6):
            for n, subject in enumerate(SUBJECTS):
                r = await c.post(
                    f"/subjects/{subject}/versions", json={"schema": version_schema(n, version)}
                )
                assert r.status_code == 200, r.text
        assert (await c.put("/config", json={"compatibility": "FULL"})).status_code == 200
        for subject in SUBJECTS[:3]:
            assert (
                await c.put(f"/config/{subject}", json={"compatibility": "NONE"})
            ).status_code == 200
        assert (await c.delete(f"/config/{SUBJECTS[2]}")).status_code == 200
        assert (await c.put(f"/mode/{SUBJECTS[3]}", json={"mode": "READONLY"})).status_code == 200
        for subject in SUBJECTS[4:7]:
            assert (await c.delete(f"/subjects/{subject}/versions/2")).status_code == 200
        assert (
            await c.delete(f"/subjects/{SUBJECTS[4]}/versions/2?permanent=true")
        ).status_code == 200
        for subject in SUBJECTS[8:10]:
            assert (await c.delete(f"/subjects/{subject}")).status_code == 200
        # SUBJECTS[9] holds the highest id (50): after compaction it must still not be reused
        assert (await c.delete(f"/subjects/{SUBJECTS[9]}?permanent=true")).status_code == 200


async def observed(url: str) -> dict[str, Any]:
    """What clients see over HTTP (ids, versions, deleted flags, configs, modes)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        out: dict[str, Any] = {"subjects": (await c.get("/subjects?deleted=true")).json()}
        out["live"] = (await c.get("/subjects")).json()
        out["global"] = (await c.get("/config")).json()
        for subject in SUBJECTS:
            versions = (await c.get(f"/subjects/{subject}/versions?deleted=true")).json()
            out[subject] = {
                "versions": versions,
                "details": [
                    (await c.get(f"/subjects/{subject}/versions/{v}?deleted=true")).json()
                    for v in (versions if isinstance(versions, list) else [])
                ],
                "config": (await c.get(f"/config/{subject}")).json(),
                "mode": (await c.get(f"/mode/{subject}")).json(),
            }
        return out


async def count_records(kafka: KafkaSettings, topic: str) -> int:
    consumer = KafkaTransport(kafka).consumer(isolation_level="read_committed")
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        seen = 0
        while await consumer.position(tp) < end:
            batches = await consumer.poll(timeout_ms=500)
            seen += sum(len(records) for records in batches.values())
        return seen
    finally:
        await consumer.stop()


async def test_state_identical_after_restart_and_after_compaction(
    start_registry: ServerFactory, kafka_settings: KafkaSettings, schemas_topic: str
) -> None:
    first = await start_registry()
    await populate(first.url)
    before_http = await observed(first.url)
    before_state = first.store.state.snapshot()
    assert len(before_state["ids"]) == 50 - 5 - 1  # hard deletes: one subject, one version
    await first.stop()

    second = await start_registry()
    assert second.store.state.snapshot() == before_state
    assert await observed(second.url) == before_http
    await second.stop()

    # Force compaction: tiny segments, always-dirty log, then roll a few segments.
    admin = KafkaTransport(kafka_settings).admin()
    await admin.start()
    try:
        await admin.alter_topic_config(
            schemas_topic,
            {
                "segment.ms": "100",
                "min.cleanable.dirty.ratio": "0.01",
                "min.compaction.lag.ms": "0",
                "delete.retention.ms": "100",
            },
        )
    finally:
        await admin.stop()
    written = await count_records(kafka_settings, schemas_topic)
    roller = await start_registry()
    async with httpx.AsyncClient(base_url=roller.url, timeout=30) as c:

        async def records_left() -> int:
            # each write lands in a new segment once segment.ms passed, so old ones get cleaned
            await c.put(f"/config/{SUBJECTS[7]}", json={"compatibility": "BACKWARD"})
            return await count_records(kafka_settings, schemas_topic)

        remaining = await eventually(
            records_left,
            until=lambda left: left < written,
            timeout_s=120,
            what=f"compaction of the {written} records",
            interval_s=0.5,
        )
        assert (await c.delete(f"/config/{SUBJECTS[7]}")).status_code == 200
    await roller.stop()
    assert remaining < written

    third = await start_registry()
    assert third.store.state.snapshot() == before_state
    assert await observed(third.url) == before_http
    # ids stay unique after compaction removed the hard-deleted ones
    async with httpx.AsyncClient(base_url=third.url, timeout=30) as c:
        r = await c.post("/subjects/fresh/versions", json={"schema": '"string"'})
        assert r.json()["id"] == 51
