"""The ``streaming`` command.

Exit codes: 0 success; 1 the checked thing is unhealthy / the operation failed;
2 invalid configuration or usage; 3 the local stack cannot start.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from streaming.config import load_settings
from streaming.errors import ConfigError, DevStackError, StreamingError

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_DEVSTACK = 3

app = typer.Typer(
    name="streaming",
    help="tradesense-streaming: Kafka event backbone tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dev_app = typer.Typer(
    help="The local stack: Kafka (KRaft), PostgreSQL, schema registry.", no_args_is_help=True
)
app.add_typer(dev_app, name="dev")

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _optional(module: str) -> Any:
    """Import a CLI module that a slim deployment may not ship; None when it is absent."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


def _mount_optional(module: str, name: str, help_text: str, attr: str = "app") -> None:
    sub = _optional(module)
    if sub is not None:
        app.add_typer(getattr(sub, attr), name=name, help=help_text)


@dev_app.command("up")
def dev_up(
    brokers: Annotated[int, typer.Option(help="Number of KRaft broker+controller nodes.")] = 1,
    registry: Annotated[bool, typer.Option(help="Also start the schema registry.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Start (or reuse) the local stack; a second call is a no-op."""
    from streaming.devstack import DevStack

    stack = DevStack()
    if as_json:
        state = stack.up(brokers=brokers, registry=registry)
    else:
        with err.status("starting the local stack...", spinner="dots") as status:

            def progress(message: str) -> None:
                status.update(message + "...")
                err.print(f"[dim]-[/dim] {message}")

            state = stack.up(brokers=brokers, registry=registry, progress=progress)
    if as_json:
        out.print_json(json.dumps(state.env()))
        return
    for name, value in state.env().items():
        err.print(f"[green]ok[/green] {name}={_mask_url(value)}")


@dev_app.command("down")
def dev_down() -> None:
    """Stop what 'dev up' started (external services are left alone)."""
    from streaming.devstack import DevStack

    stopped = DevStack().down(progress=lambda m: err.print(f"- {m}"))
    err.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@dev_app.command("status")
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
                row["address"],
                ",".join(str(p) for p in row["pids"]) or "-",
                "[green]yes[/green]" if row["alive"] else "[red]no[/red]",
                "\n".join(row["logs"]) or "-",
            )
        out.print(table)
    if rows and not all(r["alive"] for r in rows):
        raise typer.Exit(EXIT_FAILED)
    if not rows:
        raise typer.Exit(EXIT_FAILED)


@dev_app.command("env")
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
        shown = value if show_secrets else _mask_url(value)
        sys.stdout.write(f"export {name}={shown}\n")


def _mask_url(value: str) -> str:
    from streaming.logging import mask_text

    return mask_text(value)


@app.command("health")
def health(
    registry: Annotated[
        bool | None, typer.Option(help="Check the registry (default: when REGISTRY_URL is set).")
    ] = None,
) -> None:
    """Print a JSON health document; exit 0 only when every component is healthy."""
    from streaming.health import check_health

    settings = load_settings()
    with_registry = registry if registry is not None else bool(os.environ.get("REGISTRY_URL"))
    report = asyncio.run(check_health(settings, registry=with_registry))
    out.print_json(json.dumps(report, default=str))
    if not report["healthy"]:
        raise typer.Exit(EXIT_FAILED)


dlq_app = typer.Typer(help="Dead-letter topics: inspect and redrive.", no_args_is_help=True)


def _mount_all() -> None:
    """Sub-commands live beside the code they drive; they are gathered here."""
    _mount_optional("streaming.registry.cli", "registry", "The schema registry service.")
    _mount_optional("streaming.security.cli", "auth", "Tokens, revocation and JWKS.")
    _mount_optional("connectors.audit_sink.cli", "audit", "The tamper-evident audit trail.")
    _mount_optional("connectors.audit_sink.cli", "db", "Database schema management.", "db_app")
    _mount_optional("connectors.outbox_relay.cli", "outbox", "Transactional outbox: relay, status.")
    _mount_optional("streaming.replay_cli", "offsets", "Consumer-group offsets.", "offsets_app")
    _mount_optional("streaming.replay_cli", "replay", "Replay a topic range.", "replay_app")
    _mount_optional("streaming.replay_cli", "table", "Compacted topics as tables.", "table_app")
    clients = _optional("streaming.clients_cli")
    if clients is not None:
        app.command("produce")(clients.produce)
        app.command("consume")(clients.consume)
        app.add_typer(clients.topics_app, name="topics")
    for source in (clients, _optional("streaming.replay_cli")):
        if source is not None:
            dlq_app.registered_commands.extend(source.dlq_app.registered_commands)
    if dlq_app.registered_commands:
        app.add_typer(dlq_app, name="dlq")


_mount_all()


def _exit_code(exc: StreamingError) -> int:
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, DevStackError):
        return EXIT_DEVSTACK
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> None:
    """Console entry point: our errors become one clear line and a meaningful exit code.

    Typer's standalone mode owns usage errors (its message, exit 2), ``typer.Exit`` and
    Ctrl-C; it lets every other exception through, so only our own errors are caught here.
    """
    try:
        app(args=argv)
    except StreamingError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(_exit_code(exc))
