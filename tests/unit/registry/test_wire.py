"""The one-send protocol changes how bytes leave, never which: HEAD, ``100 Continue``,
pipelining and keep-alive behave as with uvicorn's own httptools protocol."""

from __future__ import annotations

import asyncio
import json

import pytest

from streaming.registry.server import RegistryServer, ServerSettings
from streaming.transport.memory import InMemoryTransport

pytestmark = pytest.mark.parametrize("http", ["onesend", "httptools"])


async def _response(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head[:-4].split(b"\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(b": ") for line in lines)}
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, body


async def test_head_pipelining_and_100_continue(http: str) -> None:
    settings = ServerSettings(port=0, http=http)  # type: ignore[arg-type]
    async with RegistryServer(settings, transport=InMemoryTransport()) as server:
        host, port = server.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            body = json.dumps({"schema": '"string"'}).encode()
            writer.write(
                b"POST /subjects/s/versions HTTP/1.1\r\nHost: r\r\nExpect: 100-continue\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            )
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(body)
            status, _, answer = await _response(reader)
            assert (status, json.loads(answer)) == (b"HTTP/1.1 200 OK", {"id": 1})

            writer.write(b"HEAD /schemas/ids/1 HTTP/1.1\r\nHost: r\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")

            writer.write(b"GET /schemas/ids/1 HTTP/1.1\r\nHost: r\r\n\r\n" * 3)
            for _ in range(3):
                status, headers, answer = await _response(reader)
                assert status == b"HTTP/1.1 200 OK"
                assert headers[b"content-type"] == b"application/vnd.schemaregistry.v1+json"
                assert json.loads(answer) == {"schema": '"string"'}
        finally:
            writer.close()
