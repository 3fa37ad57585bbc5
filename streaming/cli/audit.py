"""``streaming audit sink|verify|export|shred|reveal|rewrap-keys|keygen``: the tamper-evident
audit trail (:mod:`connectors.audit_sink` does the work; this module parses and prints).

Exit codes: 0 intact / done; 1 verification found a break (or the operation failed);
2 invalid configuration.
"""

from __future__ import annotations

import asyncio
import base64
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
from connectors.audit_sink.reveal import reveal_subject
from connectors.audit_sink.runtime import build_store, run_export, run_verify, running_sink
from connectors.audit_sink.store import AuditStore
from connectors.audit_sink.verify import VerifyReport
from streaming.cli._common import (
    ExitCode,
    JsonOpt,
    emit_json,
    err,
    group,
    out,
    progress_bar,
    run,
)
from streaming.cli.privacy import AuditModeOpt, record_access
from streaming.config import Settings, load_settings, read_settings
from streaming.db import Database
from streaming.privacy.keylog import SubjectKeyLog
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
        emit_json(report.to_dict())
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
                    emit_json({"rows": sink.stats.rows})
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
                with progress_bar("verifying", not as_json) as on_progress:
                    return await run_verify(
                        transport=KafkaTransport(settings.kafka),
                        database=database,
                        settings=audit,
                        chain=chain,
                        since_checkpoint=since_checkpoint,
                        on_progress=on_progress,
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
            with progress_bar("exporting", not as_json) as on_progress:
                return await run_export(
                    transport=KafkaTransport(settings.kafka),
                    database=database,
                    settings=audit,
                    out=out_dir,
                    since=start,
                    until=end,
                    on_progress=on_progress,
                )

    manifest = run(main, telemetry=False)
    if as_json:
        emit_json(manifest)
    else:
        out.print(
            f"exported {manifest['rows']} row(s) of {len(manifest['chains'])} chain(s) to {out_dir}"
        )


@app.command("shred")
def shred_command(
    subject: Annotated[str, typer.Option(help="The subject (user id) whose PII to destroy.")],
    as_json: JsonOpt = False,
) -> None:
    """Destroy a subject's data keys (no KEK needed): tombstones in the subject-keys topic
    and the sink's key in PostgreSQL; its PII in every copy becomes unreadable while the
    chain still verifies. Every process stops decrypting within SECURITY_PII_KEY_MAX_LAG_S."""
    settings, audit = sink_settings()

    async def main() -> tuple[list[str], bool]:
        keys = SubjectKeyLog.from_settings(KafkaTransport(settings.kafka), settings.security)
        try:
            key_ids = await keys.shred(subject)
        finally:
            await keys.stop()
        async with Database(settings.database) as database:
            # Shredding only deletes: no KEK needed, so no cipher is built.
            store = AuditStore(database, audit.db_schema, writer_role=audit.writer_role)
            deleted = await store.subject_keys.shred(subject)
        return key_ids, deleted

    key_ids, deleted = run(main, telemetry=False)
    if as_json:
        emit_json(
            {
                "subject": subject,
                "shredded": bool(key_ids) or deleted,
                "topic_key_ids": key_ids,
                "database_key_deleted": deleted,
            }
        )
    else:
        out.print(
            f"subject {subject}: {len(key_ids)} key generation(s) tombstoned in "
            f"{settings.security.pii_keys_topic}; database data key "
            + ("deleted" if deleted else "not found")
        )


@app.command("reveal")
def reveal_command(
    subject: Annotated[str, typer.Option(help="The subject (user id) whose audit rows to read.")],
    audit_mode: AuditModeOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Print a subject's audit rows with personal data decrypted (needs SECURITY_PII_KEK
    and AUDIT_KEK). The access is itself recorded as a DATA_ACCESSED audit event first."""
    settings, audit = sink_settings()
    transport = KafkaTransport(settings.kafka)

    async def main() -> list[dict[str, Any]]:
        keys = SubjectKeyLog.from_settings(transport, settings.security, require_kek=True)
        try:
            await record_access(audit_mode, audit.topic_list[0], transport, subject, "audit.reveal")
            async with Database(settings.database) as database:
                store = build_store(database, audit, settings.security, settings.logging)
                return await reveal_subject(store, subject, keys)
        finally:
            await keys.stop()

    rows = run(main, telemetry=False)
    if as_json:
        emit_json({"subject": subject, "rows": rows})
    else:
        for row in rows:
            out.print(f"[bold]{row['chain']}#{row['seq']}[/bold] {row['event_id']}")
            out.print_json(data=row["event"], default=str)
        err.print(f"{len(rows)} row(s) for subject {subject}")


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
        emit_json({"rewrapped": changed})
    else:
        out.print(f"re-wrapped {changed} data key(s)")


@app.command("keygen")
def keygen_command(
    key_id: Annotated[str, typer.Option(help="Id for the new MAC key.")] = "k1",
) -> None:
    """Print fresh AUDIT_MAC_KEYS / AUDIT_SIGNING_KEY / AUDIT_KEK / SECURITY_PII_KEK values
    (keep them secret)."""
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
        f"SECURITY_PII_KEK={secrets.token_urlsafe(32)}",
    ):
        typer.echo(line)  # plain: no markup, no wrapping, whatever the terminal


__all__ = ["app", "sink_settings"]
