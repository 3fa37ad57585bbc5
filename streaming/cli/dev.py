"""``streaming dev up|down|status|env``: the local stack (:mod:`streaming.devstack`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from streaming.cli._common import ExitCode, JsonOpt, err, group, out
from streaming.errors import DevStackError
from streaming.logging import mask_text

app = group("The local stack: Kafka (KRaft), PostgreSQL, schema registry.")


@app.command("up")
def dev_up(
    brokers: Annotated[int, typer.Option(help="Number of KRaft broker+controller nodes.")] = 1,
    registry: Annotated[bool, typer.Option(help="Also start the schema registry.")] = True,
    observability: Annotated[
        bool,
        typer.Option(
            help="Also start Jaeger (traces) and Prometheus (metrics); 'dev env' then points "
            "OTEL_EXPORTER_OTLP_ENDPOINT at them. Builds Jaeger with Go the first time."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start (or reuse) the local stack; a second call is a no-op."""
    from streaming.devstack import DevStack

    stack = DevStack()
    if as_json:
        state = stack.up(brokers=brokers, registry=registry, observability=observability)
        out.print_json(json.dumps(state.env()))
        return
    with err.status("starting the local stack...", spinner="dots") as status:

        def progress(message: str) -> None:
            status.update(message + "...")
            err.print(f"[dim]-[/dim] {message}")

        state = stack.up(
            brokers=brokers, registry=registry, observability=observability, progress=progress
        )
    for name, value in state.env().items():
        err.print(f"[green]ok[/green] {name}={mask_text(value)}")
    for svc in (state.jaeger, state.prometheus):
        if svc is not None:
            err.print(f"[green]ok[/green] {svc.name} at {svc.address}")


@app.command("down")
def dev_down() -> None:
    """Stop what 'dev up' started (external services are left alone)."""
    from streaming.devstack import DevStack

    stopped = DevStack().down(progress=lambda m: err.print(f"- {m}"))
    err.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@app.command("status")
def dev_status(as_json: JsonOpt = False) -> None:
    """What runs, where, its pids and log files. Exit 1 if something recorded is down."""
    from streaming.devstack import DevStack

    rows = DevStack().status()
    if as_json:
        out.print_json(json.dumps(rows))
    elif not rows:
        err.print("the local stack is not running (start it with 'streaming dev up')")
    else:
        table = Table("service", "kind", "address", "pid", "alive", "logs")
        for row in rows:
            table.add_row(
                row["service"],
                row["kind"],
                "\n".join(
                    [
                        row["address"],
                        *(f"{k} {v}" for k, v in row["endpoints"].items() if v != row["address"]),
                    ]
                ),
                ",".join(str(p) for p in row["pids"]) or "-",
                "[green]yes[/green]" if row["alive"] else "[red]no[/red]",
                "\n".join(row["logs"]) or "-",
            )
        out.print(table)
    if not rows or not all(r["alive"] for r in rows):
        raise typer.Exit(ExitCode.FAILED)


@app.command("env")
def dev_env(
    show_secrets: Annotated[
        bool, typer.Option(help="Print passwords in URLs as they are.")
    ] = False,
) -> None:
    """Print 'export VAR=...' lines for the running stack (eval "$(streaming dev env)")."""
    from streaming.devstack import DevStack

    state = DevStack().load()
    if state is None:
        raise DevStackError("the local stack is not running; start it with 'streaming dev up'")
    for name, value in state.env().items():
        shown = value if show_secrets else mask_text(value)
        sys.stdout.write(f"export {name}={shown}\n")


__all__ = ["app"]
