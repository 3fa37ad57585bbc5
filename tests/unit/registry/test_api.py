"""The REST API's shapes and Confluent error codes, over the in-memory store."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from streaming.registry.store import InMemorySchemaStore
from tests.unit.registry.conftest import Recorder, token_hooks

CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def rec(*fields: dict[str, Any], name: str = "Trade") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "t", "fields": list(fields)})


V1 = rec({"name": "a", "type": "string"})
V2 = rec({"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0})
BAD = rec({"name": "a", "type": "string"}, {"name": "c", "type": "int"})


async def register(
    client: httpx.AsyncClient, subject: str, schema: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/subjects/{subject}/versions", json={"schema": schema, **body}, headers=CT
    )


def code(response: httpx.Response) -> int:
    return int(response.json()["error_code"])


async def test_register_is_idempotent_and_reuses_ids_across_subjects(
    client: httpx.AsyncClient,
) -> None:
    assert (await register(client, "s-value", V1)).json() == {"id": 1}
    assert (await register(client, "s-value", V1)).json() == {"id": 1}
    assert (await register(client, "s-value", V2)).json() == {"id": 2}
    assert (await register(client, "other", V1)).json() == {"id": 1}
    versions = await client.get("/subjects/s-value/versions")
    assert versions.json() == [1, 2]
    assert versions.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    latest = (await client.get("/subjects/s-value/versions/latest")).json()
    assert latest["subject"] == "s-value" and latest["version"] == 2 and latest["id"] == 2
    assert "schemaType" not in latest
    assert (await client.get("/schemas/ids/1/subjects")).json() == ["other", "s-value"]
    assert (await client.get("/schemas/ids/1/versions")).json() == [
        {"subject": "other", "version": 1},
        {"subject": "s-value", "version": 1},
    ]
    raw = (await client.get("/schemas/ids/2/schema")).json()
    assert raw["name"] == "Trade"


async def test_lookup_and_normalize(client: httpx.AsyncClient) -> None:
    await register(client, "s", V1)
    found = await client.post("/subjects/s", json={"schema": V1})
    assert found.json()["id"] == 1 and found.json()["version"] == 1
    reordered = json.dumps(
        {
            "namespace": "t",
            "fields": [{"type": "string", "name": "a"}],
            "name": "Trade",
            "type": "record",
        }
    )
    # avro re-serialises, so key order never matters (as with Confluent's canonical string)
    assert (await client.post("/subjects/s", json={"schema": reordered})).json()["id"] == 1
    assert (await client.post("/subjects/s?normalize=true", json={"schema": reordered})).json()[
        "id"
    ] == 1
    other = rec({"name": "a", "type": "long"})
    assert code(await client.post("/subjects/s", json={"schema": other})) == 40403
    assert code(await client.post("/subjects/nope", json={"schema": V1})) == 40401


async def test_incompatible_schema_is_409_and_verbose_check_explains(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "s", V1)
    response = await register(client, "s", BAD)
    assert response.status_code == 409 and code(response) == 409
    check = await client.post(
        "/compatibility/subjects/s/versions/latest?verbose=true", json={"schema": BAD}
    )
    assert check.json()["is_compatible"] is False
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m for m in check.json()["messages"])
    ok = await client.post("/compatibility/subjects/s/versions", json={"schema": V2})
    assert ok.json() == {"is_compatible": True}
    fresh = await client.post("/compatibility/subjects/new/versions/latest", json={"schema": V2})
    assert fresh.json() == {"is_compatible": True}
    missing = await client.post("/compatibility/subjects/new/versions/3", json={"schema": V2})
    assert code(missing) == 40402


async def test_config_levels_change_what_registers(
    client: httpx.AsyncClient, audit: Recorder
) -> None:
    assert (await client.get("/config")).json() == {"compatibilityLevel": "BACKWARD"}
    assert code(await client.get("/config/s")) == 40408
    assert (await client.get("/config/s?defaultToGlobal=true")).json() == {
        "compatibilityLevel": "BACKWARD"
    }
    put = await client.put("/config/s", json={"compatibility": "NONE"})
    assert put.json() == {"compatibility": "NONE"}
    await register(client, "s", V1)
    assert (await register(client, "s", BAD)).status_code == 200
    assert (await client.delete("/config/s")).json() == {"compatibilityLevel": "NONE"}
    assert code(await client.put("/config", json={"compatibility": "SIDEWAYS"})) == 42203
    assert (await client.put("/config", json={"compatibility": "FULL"})).status_code == 200
    assert (await client.delete("/config")).json() == {"compatibilityLevel": "FULL"}
    assert (await client.get("/config")).json() == {"compatibilityLevel": "BACKWARD"}
    actions = [r.action for r in audit.records]
    assert actions.count("config.update") == 2 and "schema.register" in actions
    update = next(r for r in audit.records if r.action == "config.update")
    assert (update.subject, update.before, update.after) == ("s", None, "NONE")


async def test_soft_then_hard_delete(client: httpx.AsyncClient, store: InMemorySchemaStore) -> None:
    await register(client, "s", V1)
    await register(client, "s", V2)
    assert code(await client.delete("/subjects/s/versions/1?permanent=true")) == 40407
    assert (await client.delete("/subjects/s/versions/1")).json() == 1
    assert code(await client.delete("/subjects/s/versions/1")) == 40406
    assert (await client.get("/subjects/s/versions")).json() == [2]
    assert (await client.get("/subjects/s/versions?deleted=true")).json() == [1, 2]
    assert (await client.get("/subjects/s/versions/1?deleted=true")).json()["version"] == 1
    assert code(await client.get("/subjects/s/versions/1")) == 40402
    assert (await client.delete("/subjects/s/versions/1?permanent=true")).json() == 1
    assert code(await client.delete("/subjects/s?permanent=true")) == 40405
    assert (await client.delete("/subjects/s")).json() == [2]
    assert code(await client.delete("/subjects/s")) == 40404
    assert (await client.get("/subjects?deleted=true")).json() == ["s"]
    assert (await client.delete("/subjects/s?permanent=true")).json() == [2]
    assert (await client.get("/subjects?deleted=true")).json() == []
    assert code(await client.get("/schemas/ids/2")) == 40403
    # ids are never reused, even though id 2 is gone
    assert (await register(client, "s", rec({"name": "z", "type": "long"}))).json() == {"id": 3}
    assert store.replay().snapshot() == store.state.snapshot()


async def test_referenced_versions_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    money = json.dumps(
        {
            "type": "record",
            "name": "Money",
            "namespace": "t",
            "fields": [{"name": "u", "type": "long"}],
        }
    )
    await register(client, "money", money)
    order = json.dumps(
        {
            "type": "record",
            "name": "Order",
            "namespace": "t",
            "fields": [{"name": "p", "type": "t.Money"}],
        }
    )
    ref = [{"name": "t.Money", "subject": "money", "version": 1}]
    assert (await register(client, "order", order, references=ref)).json() == {"id": 2}
    body = (await client.get("/schemas/ids/2")).json()
    assert body["references"] == ref
    assert (await client.get("/subjects/money/versions/1/referencedby")).json() == [2]
    assert code(await client.delete("/subjects/money/versions/1")) == 42206
    assert code(await client.delete("/subjects/money")) == 42206
    await client.delete("/subjects/order")
    assert code(await client.delete("/subjects/money")) == 42206  # soft-deleted users still count
    await client.delete("/subjects/order?permanent=true")
    assert (await client.delete("/subjects/money")).json() == [1]


async def test_modes(client: httpx.AsyncClient) -> None:
    await register(client, "s", V1)
    assert (await client.get("/mode")).json() == {"mode": "READWRITE"}
    assert code(await client.put("/mode", json={"mode": "IMPORT"})) == 42205
    assert (await client.put("/mode/s", json={"mode": "READONLY"})).json() == {"mode": "READONLY"}
    assert code(await register(client, "s", V2)) == 42205
    assert code(await client.delete("/subjects/s")) == 42205
    assert (await client.delete("/mode/s")).json() == {"mode": "READONLY"}
    assert code(await client.get("/mode/s")) == 40409
    assert code(await register(client, "imp", V2, id=40, version=3)) == 42205
    assert code(await client.put("/mode", json={"mode": "BOGUS"})) == 42204
    assert (await client.put("/mode?force=true", json={"mode": "IMPORT"})).status_code == 200
    assert (await register(client, "imp", V2, id=40, version=3)).json() == {"id": 40}
    assert (await client.get("/subjects/imp/versions/3")).json()["id"] == 40
    await client.put("/mode", json={"mode": "READWRITE"})
    assert (await register(client, "new", BAD)).json() == {"id": 41}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error_code"),
    [
        ("POST", "/subjects/s/versions", b"{oops", 400, 400),
        ("POST", "/subjects/s/versions", b'{"schema":"{\\"type\\":\\"nope\\"}"}', 422, 42201),
        ("POST", "/subjects/s/versions", b'{"schema":"not json"}', 422, 42201),
        (
            "POST",
            "/subjects/s/versions",
            b'{"schema":"\\"int\\"","schemaType":"THRIFT"}',
            422,
            42201,
        ),
        ("POST", "/subjects/s/versions", b"x" * (1024 * 1024 + 1), 413, 413),
        ("GET", "/subjects/s/versions/0", None, 422, 42202),
        ("GET", "/subjects/s/versions/latest2", None, 422, 42202),
        ("GET", "/subjects/unknown/versions", None, 404, 40401),
        ("GET", "/subjects/unknown/versions/1", None, 404, 40401),
        ("GET", "/schemas/ids/77", None, 404, 40403),
        ("GET", "/schemas/ids/abc", None, 404, 40403),
        ("DELETE", "/subjects/unknown", None, 404, 40401),
        ("GET", "/associations/resources/default/orders", None, 404, 40401),
        ("GET", "/no/such/route", None, 404, 404),
        ("PATCH", "/config", None, 405, 405),
    ],
)
async def test_bad_input_gets_confluent_codes(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    error_code: int,
) -> None:
    response = await client.request(method, path, content=body, headers=CT)
    assert response.status_code == status, response.text
    assert code(response) == error_code


async def test_unsupported_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/subjects/s/versions",
        content=b'{"schema":"\\"int\\""}',
        headers={"Content-Type": "text/xml"},
    )
    assert response.status_code == 415
    plain = await client.post(
        "/subjects/s/versions",
        content=b'{"schema":"\\"int\\""}',
        headers={"Content-Type": "application/json"},
    )
    assert plain.status_code == 200


async def test_misc_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/schemas/types")).json() == ["AVRO"]
    assert (await client.get("/contexts")).json() == ["."]
    assert "clusters" in (await client.get("/v1/metadata/id")).json()["scope"]
    assert (await client.get("/ready")).json() == {"ready": True}
    assert (await client.get("/")).json() == {}


async def test_auth_hooks_guard_requests(store: InMemorySchemaStore) -> None:
    from streaming.errors import AuthenticationError, PermissionDenied
    from streaming.registry.app import create_app
    from streaming.registry.service import RegistryService

    seen: list[tuple[str, str | None, str]] = []

    async def authenticate(headers: Any) -> str:
        if headers.get("authorization") != "Bearer good":
            raise AuthenticationError("no token")
        return "alice"

    async def authorize(principal: str, subject: str | None, action: str) -> None:
        seen.append((principal, subject, action))
        if action == "admin":
            raise PermissionDenied("alice may not administer")

    recorder = Recorder()
    app = create_app(
        RegistryService(store, audit=recorder), authenticator=authenticate, authorizer=authorize
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        anonymous = await c.get("/subjects")
        assert anonymous.status_code == 401 and code(anonymous) == 40101
        auth = {"Authorization": "Bearer good"}
        ok = await c.post("/subjects/s/versions", json={"schema": V1}, headers=auth)
        assert ok.status_code == 200
        denied = await c.delete("/subjects/s", headers=auth)
        assert denied.status_code == 403 and code(denied) == 40301
        assert (await c.get("/ready")).status_code == 200
    assert ("alice", "s", "write") in seen and ("alice", "s", "admin") in seen
    assert recorder.records[0].actor == "alice"


async def test_with_auth_unrouted_requests_need_credentials_and_admin(
    store: InMemorySchemaStore,
) -> None:
    from streaming.registry.app import create_app
    from streaming.registry.service import RegistryService

    authenticate, authorize = token_hooks(
        {"Bearer admin": "root", "Bearer reader": "bob"},
        lambda user, action: action != "admin" or user == "root",
    )

    ready = [False]
    app = create_app(
        RegistryService(store),
        authenticator=authenticate,
        authorizer=authorize,
        also_ready=lambda: ready[0],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        for method, path in (("GET", "/no/such/route"), ("PATCH", "/config")):
            anonymous = await c.request(method, path)
            assert (anonymous.status_code, code(anonymous)) == (401, 40101)
            reader = await c.request(method, path, headers={"Authorization": "Bearer reader"})
            assert (reader.status_code, code(reader)) == (403, 40301)
        admin = {"Authorization": "Bearer admin"}
        assert (await c.get("/no/such/route", headers=admin)).status_code == 404
        assert (await c.patch("/config", headers=admin)).status_code == 405
        assert (await c.get("/ready")).status_code == 503
        ready[0] = True
        assert (await c.get("/ready")).status_code == 200
