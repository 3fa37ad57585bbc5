"""``streaming top``: a live view of the stack, or one snapshot for scripts.

What is looked at, and the JSON shape, live in :mod:`streaming.ops.top`; this module
wires the sources from the environment and renders the document with rich. Every source
but Kafka is optional: without ``DATABASE_URL`` or ``REGISTRY_URL`` (or with them down)
their panel says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from connectors.audit_sink.config import AuditSinkSettings
from connectors.audit_sink.status import AuditStatus
from connectors.audit_sink.tables import AuditTables
from streaming.cli._common import (
    BootstrapOpt,
    ExitCode,
    JsonOpt,
    RegistryOpt,
    emit_json,
    fail,
    kafka_settings,
    kafka_transport,
    out,
    registry_settings,
    run,
)
from streaming.config import DatabaseSettings, read_settings
from streaming.db import Database
from streaming.ops.top import DEFAULT_TIMEOUT_S, Top

MAX_CHAINS_SHOWN = 8


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _num(value: float | int | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:g}{suffix}"


def _unavailable(part: dict[str, Any], name: str) -> RenderableType | None:
    if part["status"] == "ok":
        return None
    style = "yellow" if part["status"] == "unset" else "red"
    return Text(f"{name} {part['status']}: {part['error']}", style=style)


def _kafka(part: dict[str, Any]) -> RenderableType:
    problem = _unavailable(part, "kafka")
    if problem is not None:
        return Panel(problem, title=f"Kafka {part['bootstrap_servers']}")
    topics = Table("topic", "partitions", "end offset", "produce/s", title="Topics")
    for t in part["topics"]:
        topics.add_row(
            t["topic"], str(t["partitions"]), str(t["end_offset"]), _num(t["produce_rate"])
        )
    groups = Table(title="Consumer groups")
    for name in ("group", "state", "mbr", "rebal", "topic", "lag", "in/s"):
        groups.add_column(name, no_wrap=name in {"group", "topic", "state"})
    for name in ("lag/partition", "retry", "dlq"):
        groups.add_column(name)
    for g in part["groups"]:
        head = [g["group"], g["state"], str(g["members"]), str(g["rebalances"])]
        if not g["topics"]:
            groups.add_row(*head, "-", "0", "-", "", "", "")
        for i, row in enumerate(g["topics"]):
            lags = " ".join(f"{p['partition']}:{p['lag']}" for p in row["partitions"])
            retry = " ".join(str(r["depth"]) for r in row["retry"]) or "-"
            dlq = str(row["dlq"]["depth"]) if row["dlq"] else "-"
            cells = head if i == 0 else ["", "", "", ""]
            style = "bold red" if row["lag"] else None
            lag = Text(str(row["lag"]), style=style or "")
            groups.add_row(*cells, row["topic"], lag, _num(row["consume_rate"]), lags, retry, dlq)
    return Panel(Group(topics, groups), title=f"Kafka {part['bootstrap_servers']}")


def _audit(part: dict[str, Any]) -> RenderableType:
    problem = _unavailable(part, "audit")
    if problem is not None:
        return Panel(problem, title="Audit chain")
    lines = []
    checkpoint = part["checkpoint"]
    lines.append(
        "checkpoint: none yet"
        if checkpoint is None
        else f"checkpoint {checkpoint['checkpoint_id']}, {_age(checkpoint['age_s'])} old"
    )
    verify = part["last_verify"]
    lines.append(
        "last passing verify: none recorded"
        if verify is None
        else f"last passing verify: {_age(verify['age_s'])} ago, up to checkpoint "
        f"{verify['checkpoint_id']}"
    )
    heads = Table("chain", "seq", "offset", "recorded at")
    for c in part["chains"][:MAX_CHAINS_SHOWN]:
        heads.add_row(c["chain_id"], str(c["seq"]), str(c["kafka_offset"]), c["recorded_at"] or "-")
    hidden = len(part["chains"]) - MAX_CHAINS_SHOWN
    more = [Text(f"... {hidden} more chain(s)")] if hidden > 0 else []
    return Panel(Group(Text("\n".join(lines)), heads, *more), title="Audit chain")


def _registry(part: dict[str, Any]) -> RenderableType:
    problem = _unavailable(part, "registry")
    if problem is not None:
        return Panel(problem, title="Schema registry")
    ready = "[green]ready[/green]" if part["ready"] else "[red]not ready[/red]"
    text = (
        f"{part['url']}: healthy, {ready}, {_num(part['request_rate'])} req/s "
        f"({_num(part['requests_total'])} total), answered in {part['response_time_ms']:g} ms"
    )
    return Panel(text, title="Schema registry")


def render(doc: dict[str, Any], *, live: bool = False) -> RenderableType:
    """The whole view of one ``top`` document (``live``: with the hint how to quit)."""
    interval = f", {doc['interval_s']:.2f}s since the last look" if doc["interval_s"] else ""
    hint = "  (q or Ctrl-C quits)" if live else ""
    header = Text(f"streaming top  {doc['taken_at']}{interval}{hint}", style="bold")
    return Group(header, _kafka(doc["kafka"]), _audit(doc["audit"]), _registry(doc["registry"]))


@asynccontextmanager
async def _sources(
    bootstrap: str | None,
    registry_url: str | None,
    topics: list[str],
    groups: list[str],
    timeout_s: float,
) -> AsyncIterator[Top]:
    """A :class:`Top` over the configured sources, closed on the way out."""
    kafka = kafka_settings(bootstrap)
    registry = registry_settings(registry_url)
    db = read_settings(DatabaseSettings)
    database: Database | None = None
    audit: AuditStatus | str = "DATABASE_URL is not set"
    if db.model_fields_set & {"url", "host"}:
        database = Database(db)
        schema = read_settings(AuditSinkSettings).db_schema
        audit = AuditStatus(AuditTables(database, schema))
    top = Top(
        kafka_transport(kafka),
        bootstrap_servers=kafka.bootstrap_servers,
        audit=audit,
        registry_url=registry.url if (registry_url or registry.configured) else None,
        topics=topics,
        groups=groups,
        timeout_s=timeout_s,
    )
    try:
        yield top
    finally:
        await top.close()
        if database is not None:
            await database.close()


@contextlib.contextmanager
def _keys(on_quit: Callable[[], None]) -> Iterator[None]:
    """Single keys without Enter: ``q`` calls ``on_quit``; the terminal is restored after."""
    if not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def read() -> None:
        if b"q" in os.read(fd, 64).lower():
            on_quit()

    tty.setcbreak(fd)
    loop.add_reader(fd, read)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _live(top: Top, interval_s: float) -> None:
    """Refresh every ``interval_s`` until ``q`` or Ctrl-C (both end it with exit 0)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        with _keys(stop.set), Live(console=Console(), screen=True, auto_refresh=False) as live:
            while not stop.is_set():
                due = loop.time() + interval_s
                refresh = asyncio.ensure_future(top.refresh())
                await asyncio.wait({refresh, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not refresh.done():
                    refresh.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await refresh
                    break
                live.update(render(refresh.result(), live=True), refresh=True)
                # The refresh cadence (not a synchronisation): wait out the interval or quit.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stopped), max(due - loop.time(), 0))
    finally:
        stopped.cancel()
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


async def _once(top: Top, interval_s: float) -> dict[str, Any]:
    """Two looks ``interval_s`` apart, so the rates are measured, not null."""
    await top.refresh()
    await asyncio.sleep(interval_s)  # the measuring window of the rates
    return await top.refresh()


def top(
    interval: Annotated[
        float, typer.Option("--interval", "-i", min=0.1, help="Seconds between refreshes.")
    ] = 1.0,
    once: Annotated[
        bool, typer.Option("--once", help="Look twice, one interval apart, print and exit.")
    ] = False,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", "-t", help="Only topics matching (glob).")
    ] = None,
    group_pattern: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="Only groups matching (glob).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds each source may take per look.")
    ] = DEFAULT_TIMEOUT_S,
    bootstrap_servers: BootstrapOpt = None,
    registry_url: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Live rates, lag, retry/DLQ depth, rebalances, audit chain and registry health.

    Exits 0; with --once, 3 when a configured source did not answer (the snapshot still
    prints, that part with status "down").
    """
    if as_json and not once:
        raise fail("--json prints one snapshot: add --once", ExitCode.USAGE)
    if not once and not sys.stdout.isatty():
        raise fail("the live view needs a terminal; for scripts use --once --json", ExitCode.USAGE)
    topics, groups = topic or [], group_pattern or []

    async def main() -> dict[str, Any] | None:
        async with _sources(bootstrap_servers, registry_url, topics, groups, timeout) as top:
            if once:
                return await _once(top, interval)
            await _live(top, interval)
            return None

    doc = run(main, telemetry=False)
    if doc is None:
        return
    if as_json:
        emit_json(doc)
    else:
        out.print(render(doc))
    if any(doc[part]["status"] == "down" for part in ("kafka", "audit", "registry")):
        raise typer.Exit(ExitCode.UNAVAILABLE)
