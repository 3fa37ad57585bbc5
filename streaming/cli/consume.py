"""``streaming consume``: print decoded records with their headers; commits nothing.

Also the record rendering ``streaming dlq show`` shares: :func:`describe` (a record as a
JSON-ready dict, or its decode error and raw bytes).
"""

from __future__ import annotations

import base64
import enum
import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from streaming.cli._common import (
    BootstrapOpt,
    JsonOpt,
    RegistryOpt,
    err,
    kafka_settings,
    kafka_transport,
    out,
    registry_client,
    run,
)
from streaming.cli.privacy import decrypting_revealer
from streaming.clients.reader import read_topic
from streaming.errors import StreamingError
from streaming.events import EventDeserializer
from streaming.privacy.reveal import FieldRevealer
from streaming.serde.context import SerializationContext
from streaming.transport.base import Record


class Isolation(enum.StrEnum):
    """``--isolation-level`` choices (the transport's ``IsolationLevel``)."""

    READ_COMMITTED = "read_committed"
    READ_UNCOMMITTED = "read_uncommitted"


def text(value: bytes | None) -> str | None:
    """Bytes for people: UTF-8 when they are, else ``base64:...``."""
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


async def describe(
    record: Record, decoder: EventDeserializer, revealer: FieldRevealer | None = None
) -> dict[str, Any]:
    """The record as a JSON-ready dict; a value that does not decode keeps its raw bytes.
    With ``revealer`` (``--decrypt``) personal data is decrypted."""
    doc: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": text(record.key),
        "headers": [[k, text(v)] for k, v in record.headers],
    }
    if record.value is None:
        doc["value"] = None
        return doc
    try:
        event = await decoder.deserialize(record.value, SerializationContext.for_record(record))
    except StreamingError as exc:
        doc["error"] = f"{type(exc).__name__}: {exc}"
        doc["raw_value_base64"] = base64.b64encode(record.value).decode()
        return doc
    if revealer is not None:
        event = await revealer.reveal(event)
    doc["event_type"] = event.type_name()
    doc["value"] = event.model_dump(mode="json")
    return doc


def _print_text(doc: dict[str, Any]) -> None:
    """One record for people: a title line, then headers and the value, or for a record
    that does not decode, the decode error and the raw value as base64."""
    title = doc.get("event_type") or ("UNDECODABLE" if "error" in doc else "")
    out.print(
        f"[bold]{doc['topic']}[{doc['partition']}]@{doc['offset']}[/bold] {title} "
        f"key={escape(str(doc['key']))}",
        highlight=False,
    )
    body = ("headers", "value") if "error" not in doc else ("headers", "error", "raw_value_base64")
    out.print_json(json.dumps({k: doc[k] for k in body}))


def consume(
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic to read.")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record.")
    ] = False,
    max_records: Annotated[
        int | None, typer.Option("--max", min=0, help="Stop after N records.")
    ] = None,
    idle_timeout_s: Annotated[
        float | None, typer.Option(min=0.0, help="Stop after this long without records.")
    ] = None,
    isolation_level: Annotated[
        Isolation,
        typer.Option(help="read_uncommitted also shows records of aborted or open transactions."),
    ] = Isolation.READ_COMMITTED,
    bootstrap_servers: BootstrapOpt = None,
    registry_url: RegistryOpt = None,
    as_json: JsonOpt = False,
    decrypt: Annotated[
        bool,
        typer.Option(
            "--decrypt",
            help="Decrypt personal data (needs SECURITY_PII_KEK); recorded as an audit event.",
        ),
    ] = False,
) -> None:
    """Print decoded records with their headers (JSON lines with --json); commits nothing."""
    settings = kafka_settings(bootstrap_servers)

    async def work() -> int:
        registry = registry_client(registry_url)
        decoder = EventDeserializer(registry)
        revealer = await decrypting_revealer(settings, topic) if decrypt else None

        async def show(record: Record) -> None:
            doc = await describe(record, decoder, revealer)
            if as_json:
                sys.stdout.write(json.dumps(doc) + "\n")
                sys.stdout.flush()
            else:
                _print_text(doc)

        try:
            return await read_topic(
                kafka_transport(settings),
                topic,
                from_beginning=from_beginning,
                max_records=max_records,
                idle_timeout_s=idle_timeout_s,
                on_record=show,
                isolation_level=isolation_level.value,
            )
        finally:
            await registry.aclose()
            if revealer is not None:
                await revealer.close()

    count = run(work)
    if not as_json:
        err.print(f"{count} record(s)")


__all__ = ["consume", "describe", "text"]
