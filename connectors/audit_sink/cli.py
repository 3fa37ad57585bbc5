"""``streaming audit ...`` and ``streaming db migrate``.

Exit codes: 0 intact / done; 1 verification found a break (or the operation failed);
2 invalid configuration.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console

from connectors.audit_sink.bundle import verify_bundle
from connectors.audit_sink.config import AuditSinkSettings
from connectors.audit_sink.metrics import METER_NAME
from connectors.audit_sink.runtime import build_store, run_export, run_verify, running_sink
from connectors.audit_sink.verify import VerifyReport
from streaming.config import Settings, load_settings
from streaming.db import Database
from streaming.errors import ConfigError, StreamingError
from streaming.serde.client import SchemaRegistryClient
from streaming.telemetry import configure_telemetry
from streaming.transport.kafka import KafkaTransport

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)


@db_app.callback()
def _db_group() -> None:
    """Database schema management (keeps 'migrate' a subcommand)."""


# Never wrapped at the terminal width: keys and result lines are copied and parsed.
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _settings() -> tuple[Settings, AuditSinkSettings]:
    try:
        return load_settings(), AuditSinkSettings()
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    except StreamingError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _print_report(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    elif report.ok:
        window = f" recorded in [{report.window[0]}, {report.window[1]})" if report.window else ""
        legacy = (
            f"; {report.legacy_rows} row(s) predate column binding" if report.legacy_rows else ""
        )
        out.print(
            f"[green]intact[/green]: {report.chains} chain(s), {report.rows} row(s){window} "
            f"verified; latest checkpoint {report.latest_checkpoint_id}{legacy}",
        )
    else:
        first = report.first
        assert first is not None
        err.print(
            f"[red]BROKEN[/red] chain={first.chain_id} seq={first.seq} "
            f"reason={first.reason.value}: {first.detail}"
        )
        for other in report.findings[1:]:
            err.print(f"  also: chain={other.chain_id} seq={other.seq} reason={other.reason.value}")


@app.command("sink")
def sink_command(as_json: JsonOpt = False) -> None:
    """Consume AUDIT_TOPICS into the PostgreSQL hash chains until SIGTERM/SIGINT."""
    settings, audit = _settings()

    async def main() -> None:
        database = Database(settings.database)
        registry = SchemaRegistryClient(settings.registry)
        # Metrics go to OTEL_EXPORTER_OTLP_ENDPOINT when it is set (no-op otherwise).
        telemetry = configure_telemetry(settings.otel)
        try:
            async with running_sink(
                transport=KafkaTransport(settings.kafka),
                database=database,
                registry=registry,
                settings=audit,
                security=settings.security,
                meter=telemetry.meter_provider.get_meter(METER_NAME),
            ) as sink:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, sink.stop)
                if not as_json:
                    err.print(f"audit sink consuming {audit.topic_list} into {audit.db_schema}")
                await sink.run()
                if as_json:
                    out.print_json(json.dumps({"rows": sink.stats.rows}))
        finally:
            await registry.aclose()
            await database.close()
            telemetry.shutdown()

    _run(main())


@app.command("verify")
def verify_command(
    chain: Annotated[
        str | None, typer.Option(help="Verify only this chain (topic/partition).")
    ] = None,
    since_checkpoint: Annotated[
        bool,
        typer.Option(
            "--since-checkpoint",
            help="Skip rows up to the checkpoint the last full verify recorded "
            "(only when its record verifies with the MAC key).",
        ),
    ] = False,
    bundle: Annotated[
        Path | None, typer.Option(help="Verify an export bundle offline (no database).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Exit 0 when every chain and checkpoint is intact, 1 with the first break otherwise."""
    _, audit = _settings()
    if bundle is not None:
        try:
            keys = audit.public_keys() if (audit.verify_keys or audit.signing_key) else None
            report = verify_bundle(bundle, audit.mac_key_ring(), keys)
        except ConfigError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        except StreamingError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
    else:
        settings, _ = _settings()

        async def main() -> VerifyReport:
            async with Database(settings.database) as database:
                return await run_verify(
                    transport=KafkaTransport(settings.kafka),
                    database=database,
                    settings=audit,
                    chain=chain,
                    since_checkpoint=since_checkpoint,
                )

        report = _run(main())
    _print_report(report, as_json)
    raise typer.Exit(0 if report.ok else 1)


@app.command("export")
def export_command(
    since: Annotated[str, typer.Option(help="ISO 8601 start (inclusive), by recorded time.")],
    until: Annotated[str, typer.Option(help="ISO 8601 end (exclusive).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the bundle to.")],
    as_json: JsonOpt = False,
) -> None:
    """Write rows, checkpoints and public keys that 'audit verify --bundle' checks offline."""
    settings, audit = _settings()
    start, end = _parse_time(since), _parse_time(until)

    async def main() -> dict[str, Any]:
        async with Database(settings.database) as database:
            return await run_export(
                transport=KafkaTransport(settings.kafka),
                database=database,
                settings=audit,
                out=out_dir,
                since=start,
                until=end,
            )

    manifest = _run(main())
    if as_json:
        out.print_json(json.dumps(manifest))
    else:
        out.print(
            f"exported {manifest['rows']} row(s) of {len(manifest['chains'])} chain(s) to {out_dir}"
        )


@app.command("shred")
def shred_command(
    subject: Annotated[str, typer.Option(help="The subject (user id) whose PII to destroy.")],
    as_json: JsonOpt = False,
) -> None:
    """Delete a subject's data key: its PII becomes unreadable; the chain still verifies."""
    settings, audit = _settings()

    async def main() -> bool:
        async with Database(settings.database) as database:
            store = build_store(database, audit, settings.security)
            return await store.shred(subject)

    deleted = _run(main())
    if as_json:
        out.print_json(json.dumps({"subject": subject, "shredded": deleted}))
    else:
        out.print(f"subject {subject}: " + ("data key deleted" if deleted else "no data key found"))


@app.command("rewrap-keys")
def rewrap_command(as_json: JsonOpt = False) -> None:
    """Re-wrap every subject data key under the active AUDIT_KEK (after a KEK rotation)."""
    settings, audit = _settings()

    async def main() -> int:
        async with Database(settings.database) as database:
            return await build_store(database, audit, settings.security).rewrap_subject_keys()

    changed = _run(main())
    if as_json:
        out.print_json(json.dumps({"rewrapped": changed}))
    else:
        out.print(f"re-wrapped {changed} data key(s)")


@app.command("keygen")
def keygen_command(
    key_id: Annotated[str, typer.Option(help="Id for the new MAC key.")] = "k1",
) -> None:
    """Print fresh AUDIT_MAC_KEYS / AUDIT_SIGNING_KEY / AUDIT_KEK values (keep them secret)."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    for line in (
        f"AUDIT_MAC_KEYS={key_id}:{secrets.token_urlsafe(32)}",
        f"AUDIT_SIGNING_KEY={base64.b64encode(raw).decode()}",
        f"AUDIT_VERIFY_KEYS={base64.b64encode(public).decode()}",
        f"AUDIT_KEK={secrets.token_urlsafe(32)}",
    ):
        typer.echo(line)  # plain: no markup, no wrapping, whatever the terminal


@db_app.command("migrate")
def migrate_command(as_json: JsonOpt = False) -> None:
    """Create or upgrade the audit and outbox tables (idempotent)."""
    settings, audit = _settings()

    async def main() -> None:
        from connectors.audit_sink.store import AuditStore
        from connectors.outbox_relay.outbox import migrate_outbox

        async with Database(settings.database) as database:
            await AuditStore(database, audit.db_schema, writer_role=audit.writer_role).migrate()
            await migrate_outbox(database)

    _run(main())
    if as_json:
        out.print_json(json.dumps({"migrated": True, "audit_schema": audit.db_schema}))
    else:
        out.print(f"migrated: audit schema '{audit.db_schema}', outbox table")


__all__ = ["app", "db_app"]
