"""The ``streaming`` command: the root group gathers one module per command group.

Exit codes are :class:`streaming.cli._common.ExitCode`: 0 done; 1 failed or unhealthy;
2 invalid usage, input or configuration; 3 the local stack cannot start or a service is
unreachable; 4 refused because of the cluster's state. Our errors become those codes in
one place, the group class every group shares (:class:`~streaming.cli._common.CommandGroup`).
"""

from __future__ import annotations

from streaming.cli import (
    audit,
    auth,
    consume,
    db,
    dev,
    dlq,
    health,
    offsets,
    outbox,
    produce,
    registry,
    replay,
    table,
    top,
    topics,
)
from streaming.cli._common import group

app = group("tradesense-streaming: Kafka event backbone tools.", name="streaming")
app.command("health")(health.health)
app.command("produce")(produce.produce)
app.command("consume")(consume.consume)
app.command("top")(top.top)
app.add_typer(dev.app, name="dev")
app.add_typer(topics.app, name="topics")
app.add_typer(dlq.app, name="dlq")
app.add_typer(offsets.app, name="offsets")
app.add_typer(replay.app, name="replay")
app.add_typer(table.app, name="table")
app.add_typer(registry.app, name="registry")
app.add_typer(auth.app, name="auth")
app.add_typer(audit.app, name="audit")
app.add_typer(db.app, name="db")
app.add_typer(outbox.app, name="outbox")


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``streaming``, ``python -m streaming``).

    Typer's standalone mode owns usage errors (its message, exit 2), ``typer.Exit`` and
    Ctrl-C; our errors were already mapped to exit codes by the groups.
    """
    app(args=argv)
