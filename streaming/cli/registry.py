"""``streaming registry serve|subjects|ready``: run the schema registry service
(:mod:`streaming.registry.server`) and ask it questions.

Exit codes: 0 done, 1 the registry answered with an error, 2 configuration problem
(bad settings, port taken), 3 Kafka, PostgreSQL or the registry unreachable.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from streaming.cli._common import (
    BootstrapOpt,
    ExitCode,
    JsonOpt,
    RegistryOpt,
    emit_json,
    err,
    fail,
    group,
    kafka_settings,
    out,
    registry_settings,
    unavailable,
)
from streaming.config import DatabaseSettings, SecuritySettings, read_settings
from streaming.errors import DatabaseError, TransportError
from streaming.registry.auth import auth_from_settings
from streaming.registry.errors import NotReady
from streaming.registry.server import RegistryServer, ServerSettings, serve_blocking
from streaming.telemetry import command_telemetry

app = group("The schema registry service.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 = any free port).")] = 8081,
    topic: Annotated[
        str | None, typer.Option(help="Compacted store topic (default REGISTRY_TOPIC or _schemas).")
    ] = None,
    bootstrap_servers: BootstrapOpt = None,
    replication_factor: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Replicas of a new store topic (default KAFKA_DEFAULT_REPLICATION_FACTOR, "
            "else min(3, brokers)); min.insync.replicas is min(2, this) unless "
            "KAFKA_MIN_INSYNC_REPLICAS says otherwise.",
        ),
    ] = None,
) -> None:
    """Serve the Confluent-compatible registry API, storing schemas in Kafka."""
    registry = registry_settings()
    kafka = kafka_settings(bootstrap_servers)
    settings = read_settings(ServerSettings, host=host, port=port, topic=topic or registry.topic)
    if replication_factor is not None:  # else REGISTRY_SERVER_REPLICATION_FACTOR may say
        settings = settings.model_copy(update={"replication_factor": replication_factor})
    auth = auth_from_settings(
        registry,
        read_settings(SecuritySettings),
        kafka=kafka,
        database=read_settings(DatabaseSettings),
    )

    async def serve_until_stopped() -> None:
        server = RegistryServer(settings, kafka=kafka, handle_signals=True, auth=auth)
        await server.start(wait_ready=False)
        err.print(f"schema registry listening on {server.url} (store topic {settings.topic})")
        try:
            await server.wait_closed()
        finally:
            await server.stop()

    kafka_fix = f"check KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers} is reachable"
    with (
        unavailable(TransportError, NotReady, fix=kafka_fix),
        unavailable(
            DatabaseError, fix="check DATABASE_URL (or unset it to run without PostgreSQL)"
        ),
        command_telemetry(),  # OTEL_*: traces/metrics out, OTEL_PROMETHEUS_PORT serves
    ):
        serve_blocking(serve_until_stopped(), settings)


def _get(url: str, path: str) -> Any:
    try:
        response = httpx.get(f"{url.rstrip('/')}{path}", timeout=10.0)
    except httpx.HTTPError as exc:
        raise fail(
            f"registry at {url} is unreachable ({exc}); is it running?", ExitCode.UNAVAILABLE
        ) from exc
    if response.status_code >= 400:
        raise fail(f"registry answered {response.status_code}: {response.text}")
    return response.json()


@app.command()
def subjects(
    url: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the registry's subjects."""
    found = _get(registry_settings(url).url, "/subjects")
    if as_json:
        emit_json(found)
    else:
        for name in found:
            out.print(name)


@app.command()
def ready(
    url: RegistryOpt = None,
) -> None:
    """Exit 0 when the registry has caught up with its store, 1 otherwise."""
    target = registry_settings(url).url.rstrip("/")
    try:
        response = httpx.get(f"{target}/ready", timeout=10.0)
    except httpx.HTTPError as exc:
        raise fail(f"registry at {target} is unreachable ({exc})", ExitCode.UNAVAILABLE) from exc
    if response.status_code != 200:
        raise fail("registry is not ready yet (still reading its store)")
    out.print("ready")


__all__ = ["app"]
