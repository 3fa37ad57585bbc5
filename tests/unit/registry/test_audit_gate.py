"""Audit failure policy: a change whose event cannot be published is answered 500, later
changes are refused (503, nothing written) until it is, reads keep working; the
warm-up's own registrations are held and published after it."""

from __future__ import annotations

import json

import httpx

from streaming.events import AuditEventType
from streaming.registry.app import create_app
from streaming.registry.audit import AuditGate, AuditRecord, audit_event
from streaming.registry.model import CompatibilityLevel
from streaming.registry.service import RegistryService
from streaming.registry.store import InMemorySchemaStore
from tests.unit.registry.test_api import V1, V2, code, register


class FlakyHook:
    def __init__(self) -> None:
        self.up = True
        self.published: list[AuditRecord] = []

    async def __call__(self, record: AuditRecord) -> None:
        if not self.up:
            raise ConnectionError("audit topic unreachable")
        self.published.append(record)


async def test_changes_fail_closed_while_their_audit_events_cannot_be_published() -> None:
    hook = FlakyHook()
    store = InMemorySchemaStore()
    app = create_app(RegistryService(store, audit=hook))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        assert (await register(c, "a", V1)).status_code == 200
        hook.up = False
        stored = await register(c, "b", V1)
        assert (stored.status_code, code(stored)) == (500, 50001)
        assert "stored" in stored.json()["message"]
        refused = await c.put("/config/a", content=json.dumps({"compatibility": "NONE"}))
        assert (refused.status_code, code(refused)) == (503, 50003)
        assert (await c.get("/config/a")).status_code == 404  # nothing written
        assert (await c.get("/subjects")).json() == ["a", "b"]  # reads work
        assert (await register(c, "a", V1)).status_code == 200  # no change: allowed

        hook.up = True
        assert (await register(c, "a", V2)).status_code == 200
    assert [(r.action, r.subject) for r in hook.published] == [
        ("schema.register", "a"),
        ("schema.register", "b"),
        ("schema.register", "a"),
    ]


async def test_records_made_during_warm_up_are_published_after_it() -> None:
    hook = FlakyHook()
    hook.up = False  # the publisher is not usable until its warm-up finished
    store = InMemorySchemaStore()
    service: RegistryService

    async def warm_up() -> None:
        # the audit contract being registered is itself an audited change
        await service.set_config("audit-value", CompatibilityLevel.NONE, actor="registry")
        hook.up = True

    gate = AuditGate(hook, warm_up=warm_up)
    service = RegistryService(store, audit=gate)
    await gate.settle()
    assert [r.subject for r in hook.published] == ["audit-value"]
    assert gate.pending == 0


async def test_a_failed_warm_up_is_retried_by_the_next_change() -> None:
    hook = FlakyHook()
    attempts: list[int] = []

    async def warm_up() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("broker down")

    store = InMemorySchemaStore()
    app = create_app(RegistryService(store, audit=AuditGate(hook, warm_up=warm_up)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        refused = await register(c, "a", V1)
        assert (refused.status_code, code(refused)) == (503, 50003)
        assert "broker down" in refused.json()["message"]
        assert (await register(c, "a", V1)).status_code == 200
    assert len(attempts) == 2
    assert [r.subject for r in hook.published] == ["a"]


def test_registry_actions_have_typed_event_types() -> None:
    cases = {
        "schema.register": AuditEventType.SCHEMA_REGISTERED,
        "subject.delete_permanent": AuditEventType.SCHEMA_DELETED,
        "config.delete": AuditEventType.REGISTRY_CONFIG_CHANGED,
        "mode.update": AuditEventType.REGISTRY_MODE_CHANGED,
    }
    for action, expected in cases.items():
        event = audit_event(AuditRecord(action, "alice", "s", {"a": 1}, None), source="t")
        assert event.event_type is expected
        assert (event.actor.actor_id, event.resource_id) == ("alice", "s")
        assert json.loads(event.details["before"]) == {"a": 1}
    anonymous = audit_event(AuditRecord("config.update", None, None, None, "FULL"), source="t")
    assert (anonymous.actor.actor_type.value, anonymous.resource_id) == ("ANONYMOUS", "(global)")
