"""``streaming audit sink|verify|export|shred|rewrap-keys|keygen``: the tamper-evident
audit trail (:mod:`connectors.audit_sink` does the work; this module parses and prints).

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

from connectors.audit_sink.bundle import verify_bundle
from connectors.audit_sink.config import AuditSinkSettings
from connectors.audit_sink.metrics import METER_NAME
from connectors.audit_sink.runtime import build_store, run_export, run_verify, running_sink
from connectors.audit_sink.verify import VerifyReport
from streaming.cli._common import ExitCode, JsonOpt, err, group, out, run
from streaming.config import Settings, load_settings, read_settings
from streaming.db import Database
from streaming.serde.client import SchemaRegistryClient
from streaming.telemetry import configure_telemetry
from streaming.transport.kafka import KafkaTransport

app = group("The tamper-evident audit trail.")


def sink_settings() -> tuple[Settings, AuditSinkSettings]:
    """The library's settings and AUDIT_*; every bad value listed in one ConfigError."""
    return load_settings(), read_settings(AuditSinkSettings)


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
    settings, audit = sink_settings()

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
                logging=settings.logging,
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

    run(main, telemetry=False)


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
    _, audit = sink_settings()
    if bundle is not None:
        keys = audit.public_keys() if (audit.verify_keys or audit.signing_key) else None
        report = verify_bundle(bundle, audit.mac_key_ring(), keys)
    else:
        settings, _ = sink_settings()

        async def main() -> VerifyReport:
            async with Database(settings.database) as database:
                return await run_verify(
                    transport=KafkaTransport(settings.kafka),
                    database=database,
                    settings=audit,
                    chain=chain,
                    since_checkpoint=since_checkpoint,
                )

        report = run(main, telemetry=False)
    _print_report(report, as_json)
    raise typer.Exit(ExitCode.OK if report.ok else ExitCode.FAILED)


@app.command("export")
def export_command(
    since: Annotated[str, typer.Option(help="ISO 8601 start (inclusive), by recorded time.")],
    until: Annotated[str, typer.Option(help="ISO 8601 end (exclusive).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the bundle to.")],
    as_json: JsonOpt = False,
) -> None:
    """Write rows, checkpoints and public keys that 'audit verify --bundle' checks offline."""
    settings, audit = sink_settings()
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

    manifest = run(main, telemetry=False)
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
    settings, audit = sink_settings()

    async def main() -> bool:
        async with Database(settings.database) as database:
            store = build_store(database, audit, settings.security, settings.logging)
            return await store.subject_keys.shred(subject)

    deleted = run(main, telemetry=False)
    if as_json:
        out.print_json(json.dumps({"subject": subject, "shredded": deleted}))
    else:
        out.print(f"subject {subject}: " + ("data key deleted" if deleted else "no data key found"))


@app.command("rewrap-keys")
def rewrap_command(as_json: JsonOpt = False) -> None:
    """Re-wrap every subject data key under the active AUDIT_KEK (after a KEK rotation)."""
    settings, audit = sink_settings()

    async def main() -> int:
        async with Database(settings.database) as database:
            return await build_store(
                database, audit, settings.security, settings.logging
            ).subject_keys.rewrap()

    changed = run(main, telemetry=False)
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


__all__ = ["app", "sink_settings"]
