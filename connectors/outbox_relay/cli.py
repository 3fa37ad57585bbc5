"""``streaming outbox relay|status``: run the relay as a process, see what is pending.

Exit codes: 0 done (the relay stopped on SIGTERM/SIGINT), 1 failed, 2 invalid
configuration (including ``MESSAGING_OUTBOX_ENABLED=false`` or a missing table).
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import text

from connectors.outbox_relay.outbox import check_table
from connectors.outbox_relay.relay import OutboxRelay
from streaming.config import Settings, load_settings
from streaming.db import Database
from streaming.errors import ConfigError, StreamingError
from streaming.telemetry import command_telemetry
from streaming.transport.kafka import KafkaTransport

app = typer.Typer(help="Transactional outbox: relay and status.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
TableOpt = Annotated[str, typer.Option(help="The outbox table.")]

_STATUS = """
    SELECT count(*) FILTER (WHERE sent_at IS NULL) AS unsent,
           count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent,
           extract(epoch FROM now() - min(created_at) FILTER (WHERE sent_at IS NULL)) AS age
    FROM {t}
"""


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc


def _run(coro: Any) -> Any:
    try:
        with command_telemetry():
            return asyncio.run(coro)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    except StreamingError as exc:
        err.print(f"[red]failed:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc


async def _require_table(database: Database, table: str) -> None:
    found = await database.execute_scalar(
        "SELECT to_regclass(:name) IS NOT NULL", name=check_table(table)
    )
    if not found:
        raise ConfigError(
            [f"outbox table {table!r} does not exist: create it with 'streaming db migrate'"]
        )


@app.command("relay")
def relay_command(
    table: TableOpt = "outbox",
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 200,
    idle_wait_s: Annotated[
        float, typer.Option(min=0.01, help="Wait when the outbox is empty.")
    ] = 0.2,
    as_json: JsonOpt = False,
) -> None:
    """Publish unsent outbox rows to Kafka until SIGTERM/SIGINT (run several for HA)."""
    settings = _settings()
    if not settings.messaging.outbox_enabled:
        err.print(
            "[red]error:[/red] MESSAGING_OUTBOX_ENABLED=false: the outbox is switched off; "
            "set it to true to run the relay",
            highlight=False,
        )
        raise typer.Exit(2)

    async def main() -> dict[str, int]:
        database = Database(settings.database)
        producer = KafkaTransport(settings.kafka).producer()
        try:
            await _require_table(database, table)
            await producer.start()
            relay = OutboxRelay(
                database, producer, batch_size=batch_size, idle_wait_s=idle_wait_s, table=table
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, relay.stop)
            if not as_json:
                err.print(f"outbox relay: {table} -> Kafka (stop with Ctrl-C or SIGTERM)")
            await relay.run()
            return {"published": relay.stats.published, "rounds": relay.stats.rounds}
        finally:
            await producer.stop()
            await database.close()

    stats = _run(main())
    if as_json:
        out.print_json(json.dumps(stats))
    else:
        err.print(f"relay stopped: published {stats['published']} in {stats['rounds']} rounds")


@app.command("status")
def status_command(table: TableOpt = "outbox", as_json: JsonOpt = False) -> None:
    """Unsent and sent rows, and the age of the oldest unsent one (relay lag)."""
    settings = _settings()

    async def main() -> dict[str, Any]:
        async with Database(settings.database) as database:
            await _require_table(database, table)
            async with database.connect() as conn:
                row = (await conn.execute(text(_STATUS.format(t=check_table(table))))).one()
        age = float(row.age) if row.age is not None else None
        return {"table": table, "unsent": int(row.unsent), "sent": int(row.sent), "oldest_s": age}

    status = _run(main())
    if as_json:
        out.print_json(json.dumps(status))
        return
    oldest = f"{status['oldest_s']:.1f}s" if status["oldest_s"] is not None else "-"
    out.print(f"{table}: {status['unsent']} unsent (oldest {oldest}), {status['sent']} sent")


__all__ = ["app"]
