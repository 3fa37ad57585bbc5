"""The cached GET-by-id and POST-lookup answers: same bytes as the full app, never stale,
and behind the same auth hooks."""

from __future__ import annotations

import json
from typing import Any

import httpx

from streaming.registry.app import create_app
from streaming.registry.fast import HotPaths
from streaming.registry.service import RegistryService
from streaming.registry.store import InMemorySchemaStore
from tests.unit.registry.conftest import token_hooks
from tests.unit.registry.test_api import CT, V1, V2, code, register


def _clients(app: HotPaths) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """One client through the hot paths, one straight to the full Starlette app."""
    fast = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r")
    full = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app), base_url="http://r")
    return fast, full


async def test_hot_answers_are_the_full_apps_bytes_and_headers() -> None:
    app = create_app(RegistryService(InMemorySchemaStore()))
    fast, full = _clients(app)
    async with fast, full:
        schema_id = (await register(fast, "s", V1)).json()["id"]
        body = json.dumps({"schema": V1})
        for _ in range(2):  # the miss fills the cache, the second answer comes from it
            for method, path, content in (
                ("GET", f"/schemas/ids/{schema_id}", None),
                ("POST", "/subjects/s", body),
            ):
                hot = await fast.request(method, path, content=content, headers=CT)
                slow = await full.request(method, path, content=content, headers=CT)
                assert (hot.status_code, hot.content) == (200, slow.content)
                for header in ("content-type", "content-length"):
                    assert hot.headers[header] == slow.headers[header]
        assert json.loads((await fast.get(f"/schemas/ids/{schema_id}")).json()["schema"]) == (
            json.loads(V1)
        )


async def test_a_change_empties_the_caches() -> None:
    app = create_app(RegistryService(InMemorySchemaStore()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        schema_id = (await register(c, "s", V1)).json()["id"]
        body = json.dumps({"schema": V1})
        assert (await c.post("/subjects/s", content=body, headers=CT)).status_code == 200
        assert (await c.get(f"/schemas/ids/{schema_id}")).status_code == 200

        assert (await c.delete("/subjects/s")).status_code == 200
        gone = await c.post("/subjects/s", content=body, headers=CT)
        assert (gone.status_code, code(gone)) == (404, 40401)
        assert (await c.delete("/subjects/s?permanent=true")).status_code == 200
        missing = await c.get(f"/schemas/ids/{schema_id}")
        assert (missing.status_code, code(missing)) == (404, 40403)

        again = (await register(c, "s", V2)).json()["id"]
        assert json.loads((await c.get(f"/schemas/ids/{again}")).json()["schema"]) == json.loads(V2)


async def test_query_flags_and_bodies_are_part_of_the_lookup_key() -> None:
    app = create_app(RegistryService(InMemorySchemaStore()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        await register(c, "s", V1)
        await c.delete("/subjects/s")
        body = json.dumps({"schema": V1})
        hidden = await c.post("/subjects/s", content=body, headers=CT)
        assert hidden.status_code == 404
        found = await c.post("/subjects/s?deleted=true", content=body, headers=CT)
        assert found.status_code == 200
        assert (await c.post("/subjects/s", content=body, headers=CT)).status_code == 404
        other = await c.post("/subjects/s?deleted=true", content=json.dumps({"schema": V2}))
        assert (other.status_code, code(other)) == (404, 40403)
        bad_type = await c.post(
            "/subjects/s?deleted=true", content=body, headers={"Content-Type": "text/plain"}
        )
        assert bad_type.status_code == 415


async def test_cached_answers_still_need_credentials() -> None:
    authenticate, authorize = token_hooks(
        {"Bearer r": "reader", "Bearer x": "stranger"}, lambda user, _: user == "reader"
    )

    store = InMemorySchemaStore()
    service = RegistryService(store)
    schema_id = await service.register("s", _request(V1))
    app = create_app(service, authenticator=authenticate, authorizer=authorize)
    body = json.dumps({"schema": V1})
    reader = {"Authorization": "Bearer r", **CT}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        for _ in range(2):  # second round: from the cache
            assert (await c.get(f"/schemas/ids/{schema_id}", headers=reader)).status_code == 200
            assert (await c.post("/subjects/s", content=body, headers=reader)).status_code == 200
            for headers, status, error in (
                ({}, 401, 40101),
                ({"Authorization": "Bearer x"}, 403, 40301),
            ):
                got = await c.get(f"/schemas/ids/{schema_id}", headers=headers)
                assert (got.status_code, code(got)) == (status, error)
                got = await c.post("/subjects/s", content=body, headers={**headers, **CT})
                assert (got.status_code, code(got)) == (status, error)


def _request(schema: str) -> Any:
    from streaming.registry.requests import schema_request

    return schema_request(json.dumps({"schema": schema}).encode())


async def test_answers_from_the_caches_are_counted_in_health() -> None:
    app = create_app(RegistryService(InMemorySchemaStore()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        schema_id = (await register(c, "s", V1)).json()["id"]
        body = json.dumps({"schema": V1})
        before = (await c.get("/health")).json()["requests_total"]
        for _ in range(3):  # the first of each fills the cache, two come from it
            assert (await c.get(f"/schemas/ids/{schema_id}")).status_code == 200
            assert (await c.post("/subjects/s", content=body, headers=CT)).status_code == 200
        assert (await c.get("/health")).json()["requests_total"] == before + 6
