"""HTTP details: 405 carries Allow, unaddressable subjects are refused, stalled bodies cut."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import httpx
import pytest

from streaming.registry.server import RegistryServer, ServerSettings
from streaming.transport.memory import InMemoryTransport

SCHEMA = {"schema": '"string"'}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/subjects/s/versions", {"GET", "HEAD", "POST"}),
        ("PUT", "/subjects/s", {"POST", "DELETE"}),
        ("POST", "/config", {"GET", "HEAD", "PUT", "DELETE"}),
        ("DELETE", "/schemas/ids/1", {"GET", "HEAD"}),
    ],
)
async def test_405_names_every_method_the_path_allows(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
    assert response.json()["error_code"] == 405


@pytest.mark.parametrize("subject", ["..", ".", "a\x00b", "tab\there", "bell\x07", "del\x7f"])
async def test_subjects_clients_cannot_address_are_refused_with_42208(
    client: httpx.AsyncClient, subject: str
) -> None:
    # dots percent-encoded: a plain ".." would be resolved away by the client
    encoded = quote(subject, safe="").replace(".", "%2E")
    for method, path, body in [
        ("POST", f"/subjects/{encoded}/versions", SCHEMA),
        ("POST", f"/subjects/{encoded}", SCHEMA),
        ("GET", f"/subjects/{encoded}/versions", None),
        ("PUT", f"/config/{encoded}", {"compatibility": "NONE"}),
        ("POST", f"/compatibility/subjects/{encoded}/versions", SCHEMA),
    ]:
        response = await client.request(method, path, json=body)
        assert response.status_code == 422, (method, path, response.text)
        assert response.json()["error_code"] == 42208
    assert (await client.get("/subjects?deleted=true")).json() == []


async def test_a_subject_with_dots_or_unicode_inside_is_fine(client: httpx.AsyncClient) -> None:
    for subject in ["a.b", "..a", "orders-välue", "x y"]:
        path = f"/subjects/{quote(subject, safe='')}/versions"
        assert (await client.post(path, json=SCHEMA)).status_code == 200


async def test_a_body_that_never_finishes_is_cut_with_408_and_the_connection_closed() -> None:
    settings = ServerSettings(port=0, body_timeout_s=0.5)
    async with RegistryServer(settings, transport=InMemoryTransport()) as server:
        host, port = server.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                b"POST /subjects/s/versions HTTP/1.1\r\nHost: registry\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                b'{"schema": "'
            )
            await writer.drain()
            # everything until the server closes: the answer must come without more bytes
            answer = await asyncio.wait_for(reader.read(), timeout=15)
        finally:
            writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"error_code":408' in answer
