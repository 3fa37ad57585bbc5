"""``streaming registry ...``: run the schema registry service and ask it questions.

Exit codes: 0 done, 1 the registry answered with an error, 2 configuration problem
(bad settings, port taken), 3 Kafka or the registry unreachable.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import httpx
import structlog
import typer
from pydantic import ValidationError
from rich.console import Console

from streaming.config import KafkaSettings, RegistrySettings
from streaming.errors import ConfigError, DatabaseError, TransportError
from streaming.logging import configure_logging
from streaming.registry.errors import NotReady
from streaming.registry.server import RegistryServer, ServerSettings

app = typer.Typer(name="registry", help="The schema registry service.", no_args_is_help=True)
_err = Console(stderr=True)
_out = Console()


def _fail(message: str, code: int) -> typer.Exit:
    _err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 = any free port).")] = 8081,
    topic: Annotated[
        str | None, typer.Option(help="Compacted store topic (default REGISTRY_TOPIC or _schemas).")
    ] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka host:port list (default KAFKA_BOOTSTRAP_SERVERS).")
    ] = None,
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
    if not structlog.is_configured():
        configure_logging()  # security events (refused tokens) go to stderr, LOG_FORMAT-shaped
    try:
        registry = RegistrySettings()
        kafka = (
            KafkaSettings(bootstrap_servers=bootstrap_servers)
            if bootstrap_servers
            else KafkaSettings()
        )
        settings = ServerSettings(host=host, port=port, topic=topic or registry.topic)
        if replication_factor is not None:  # else REGISTRY_SERVER_REPLICATION_FACTOR may say
            settings = settings.model_copy(update={"replication_factor": replication_factor})
    except ValidationError as exc:
        lines = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid settings: {lines}", 2) from exc

    from streaming.config import DatabaseSettings, SecuritySettings
    from streaming.registry.auth import auth_from_settings

    try:
        auth = auth_from_settings(
            registry, SecuritySettings(), kafka=kafka, database=DatabaseSettings()
        )
    except ValidationError as exc:
        lines = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid settings: {lines}", 2) from exc
    except ConfigError as exc:
        raise _fail(str(exc), 2) from exc

    async def run() -> None:
        server = RegistryServer(
            settings,
            kafka=kafka,
            handle_signals=True,
            auth=auth,
        )
        await server.start(wait_ready=False)
        _err.print(f"schema registry listening on {server.url} (store topic {settings.topic})")
        try:
            await server.wait_closed()
        finally:
            await server.stop()

    try:
        asyncio.run(run())
    except ConfigError as exc:
        raise _fail(str(exc), 2) from exc
    except (TransportError, NotReady) as exc:
        raise _fail(
            f"{exc}; check KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers} is reachable", 3
        ) from exc
    except DatabaseError as exc:
        raise _fail(
            f"{exc}; check DATABASE_URL (or unset it to run without PostgreSQL)", 3
        ) from exc


def _get(url: str, path: str) -> Any:
    try:
        response = httpx.get(f"{url.rstrip('/')}{path}", timeout=10.0)
    except httpx.HTTPError as exc:
        raise _fail(f"registry at {url} is unreachable ({exc}); is it running?", 3) from exc
    if response.status_code >= 400:
        raise _fail(f"registry answered {response.status_code}: {response.text}", 1)
    return response.json()


@app.command()
def subjects(
    url: Annotated[str | None, typer.Option(help="Registry URL (default REGISTRY_URL).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the registry's subjects."""
    found = _get(url or RegistrySettings().url, "/subjects")
    if as_json:
        _out.print_json(json.dumps(found))
    else:
        for name in found:
            _out.print(name, highlight=False)


@app.command()
def ready(
    url: Annotated[str | None, typer.Option(help="Registry URL (default REGISTRY_URL).")] = None,
) -> None:
    """Exit 0 when the registry has caught up with its store, 1 otherwise."""
    target = (url or RegistrySettings().url).rstrip("/")
    try:
        response = httpx.get(f"{target}/ready", timeout=10.0)
    except httpx.HTTPError as exc:
        raise _fail(f"registry at {target} is unreachable ({exc})", 3) from exc
    if response.status_code != 200:
        raise _fail("registry is not ready yet (still reading its store)", 1)
    _out.print("ready")


__all__ = ["app"]


if __name__ == "__main__":  # ``python -m streaming.registry.cli serve`` before the CLI is mounted
    app()
