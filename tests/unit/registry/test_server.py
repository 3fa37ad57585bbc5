"""``RegistryServer`` serves real HTTP on a free port; the CLI reports problems by exit code."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from streaming.cli.registry import app as cli
from streaming.registry.server import RegistryServer, ServerSettings
from streaming.transport.memory import InMemoryTransport


async def test_server_serves_on_a_free_port_and_reports_ready() -> None:
    transport = InMemoryTransport()
    async with RegistryServer(ServerSettings(port=0), transport=transport) as server:
        assert server.url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/ready")).json() == {"ready": True}
            registered = await client.post("/subjects/s/versions", json={"schema": '"string"'})
            assert registered.json() == {"id": 1}
            assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.")


def test_cli_ready_exits_3_when_the_registry_is_unreachable() -> None:
    result = CliRunner().invoke(cli, ["ready", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 3
    assert "unreachable" in result.output


async def test_start_registry_in_background_returns_a_running_server() -> None:
    from streaming.registry.server import start_registry_in_background

    server = await start_registry_in_background(transport=InMemoryTransport())
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/schemas/types")).json() == ["AVRO"]
    finally:
        await server.stop()
