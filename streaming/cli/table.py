"""``streaming table dump``: a compacted topic as a table (latest value per key).

Keys and values in the registry wire format are decoded through the registry into typed
JSON (``--raw`` prints the bytes); others print as UTF-8 text, or ``base64:...``.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import typer

from streaming.cli._common import (
    ExitCode,
    JsonOpt,
    RegistryOpt,
    emit_json,
    err,
    fail,
    group,
    kafka_transport,
    print_table,
    registry_client,
    registry_settings,
    run,
)
from streaming.cli.consume import text
from streaming.errors import SerializationError
from streaming.replay import CompactedTable
from streaming.serde.avro import AvroDeserializer
from streaming.serde.context import MessageField, SerializationContext
from streaming.serde.wire import HEADER_SIZE, MAGIC_BYTE

app = group("Compacted topics as tables.")


def _framed(value: bytes | None) -> bool:
    return value is not None and len(value) > HEADER_SIZE and value[0] == MAGIC_BYTE


def _raw(value: bytes | None) -> str | None:
    """Bytes as they are: Avro wire bytes always as ``base64:...`` (even when they happen
    to be valid UTF-8), anything else as :func:`text` shows it."""
    if value is not None and _framed(value):
        return "base64:" + base64.b64encode(value).decode()
    return text(value)


def _plain(value: Any) -> Any:
    """An Avro value as JSON-ready data: bytes as ``base64:...``, other non-JSON types
    (timestamps, decimals, UUIDs) as their ISO / decimal text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return "base64:" + base64.b64encode(value).decode()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


async def _decoded(
    topic: str, rows: dict[bytes, bytes], registry_url: str | None
) -> tuple[dict[str, Any], int]:
    """Rows with Avro keys and values decoded; how many framed ones did not decode."""
    client = registry_client(registry_url)
    decoder = AvroDeserializer(client)
    failed = 0

    async def one(data: bytes, field: MessageField) -> Any:
        nonlocal failed
        if not _framed(data):
            return text(data)
        try:
            decoded = await decoder.deserialize(data, SerializationContext(topic, field))
        except SerializationError:
            failed += 1
            return _raw(data)
        return _plain(decoded.value)

    try:
        out: dict[str, Any] = {}
        for key, value in sorted(rows.items()):
            name = await one(key, MessageField.KEY)
            label = name if isinstance(name, str) else json.dumps(name, sort_keys=True)
            out[label] = await one(value, MessageField.VALUE)
        return out, failed
    finally:
        await client.aclose()


@app.command("dump")
def table_dump(
    topic: Annotated[str, typer.Option("--topic", "-t", help="A compacted topic.")],
    raw: Annotated[
        bool, typer.Option("--raw", help="Print Avro keys and values as their bytes.")
    ] = False,
    registry_url: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the latest value of every key (tombstoned keys are absent)."""
    transport = kafka_transport()

    async def go() -> dict[str, Any]:
        async with CompactedTable(transport, topic) as table:
            rows = table.snapshot()
        avro = any(_framed(v) or _framed(k) for k, v in rows.items())
        if raw or not avro:
            return {_raw(k) or "": _raw(v) for k, v in sorted(rows.items())}
        if not (registry_url or registry_settings().configured):
            raise fail(
                f"{topic} holds Avro in the registry wire format: set REGISTRY_URL (or "
                "--registry-url) to decode it, or pass --raw for the bytes",
                ExitCode.USAGE,
            )
        decoded, failed = await _decoded(topic, rows, registry_url)
        if failed:
            err.print(f"[yellow]warning:[/yellow] {failed} Avro value(s) did not decode; shown raw")
        return decoded

    rows = run(go)
    if as_json:
        emit_json(rows)
        return
    print_table(
        ("key", "value"),
        ((k, v if isinstance(v, str) else json.dumps(v, sort_keys=True)) for k, v in rows.items()),
        title=f"{topic} ({len(rows)} keys)",
    )


__all__ = ["app"]
