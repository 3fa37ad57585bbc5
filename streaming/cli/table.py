"""``streaming table dump``: a compacted topic as a table (latest value per key)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from streaming.cli._common import (
    JsonOpt,
    emit_json,
    group,
    kafka_transport,
    out,
    run,
)
from streaming.cli.consume import text
from streaming.replay import CompactedTable

app = group("Compacted topics as tables.")


@app.command("dump")
def table_dump(
    topic: Annotated[str, typer.Option("--topic", "-t", help="A compacted topic.")],
    as_json: JsonOpt = False,
) -> None:
    """Print the latest value of every key (tombstoned keys are absent)."""
    transport = kafka_transport()

    async def go() -> dict[bytes, bytes]:
        async with CompactedTable(transport, topic) as table:
            return table.snapshot()

    rows = run(go)
    if as_json:
        emit_json({text(k): text(v) for k, v in sorted(rows.items())})
        return
    table = Table("key", "value", title=f"{topic} ({len(rows)} keys)")
    for k, v in sorted(rows.items()):
        table.add_row(text(k), text(v))
    out.print(table)


__all__ = ["app"]
