"""What every ``streaming`` command shares: exit codes, the console pair, ``--json``
output, settings errors, running async work, and the one place errors become exit codes.

Commands raise; they do not choose exit codes for library errors. :class:`CommandGroup`
(the click group class of every command group, the root included) maps our errors to
:class:`ExitCode` and one ``error:`` line, so a group behaves the same whether it runs
under ``streaming``, ``python -m connectors.audit_sink`` or a test's ``CliRunner``.
"""

from __future__ import annotations

import asyncio
import enum
import json
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TextIO, TypeVar, cast

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text
from typer import _click  # typer vendors click; its group class takes this Context
from typer.core import TyperGroup

from streaming.config import KafkaSettings, RegistrySettings, read_settings
from streaming.errors import ConfigError, DevStackError, GroupNotEmptyError, StreamingError
from streaming.logging import configure_logging
from streaming.replay.errors import (
    BoundsError,
    ConcurrentRunFencedError,
    IncompatibleRangeError,
    ResetPlanError,
    SnapshotExistsError,
    SnapshotNotFoundError,
)
from streaming.serde.client import SchemaRegistryClient
from streaming.telemetry import command_telemetry
from streaming.transport.base import TransportFactory

T = TypeVar("T")


class ExitCode(enum.IntEnum):
    """The exit codes of every ``streaming`` command."""

    OK = 0
    FAILED = 1  # the operation failed, or what was checked is unhealthy / broken
    USAGE = 2  # invalid usage, input or configuration (the message says how to fix it)
    UNAVAILABLE = 3  # the local stack cannot start, or Kafka/PostgreSQL/registry unreachable
    REFUSED = 4  # refused because of the cluster's state (active group, fenced run, schemas)
    INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT); the message says how to resume


PIPE_WIDTH = 100_000
"""Console width when the stream is not a terminal: scripts get whole lines, never wrapped."""


def _console(*, stderr: bool) -> Console:
    """Never wrapped at the terminal width: JSON, ids, hints and result lines are copied
    and parsed. Piped or redirected, the console is as wide as any line (rich would use 80)."""
    console = Console(stderr=stderr, soft_wrap=True, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, soft_wrap=True, highlight=False, width=PIPE_WIDTH)
    return console


out = _console(stderr=False)
err = _console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
BootstrapOpt = Annotated[
    str | None, typer.Option(help="Kafka host:port list (default KAFKA_BOOTSTRAP_SERVERS).")
]
RegistryOpt = Annotated[str | None, typer.Option(help="Registry URL (default REGISTRY_URL).")]


def _positive_rate(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise typer.BadParameter(f"must be > 0 records/s, got {value}")
    return value


RateOpt = Annotated[
    float | None, typer.Option(help="Max records per second.", callback=_positive_rate)
]
AuditOpt = Annotated[
    str,
    typer.Option(
        "--audit",
        help="Record the action in the audit chain ('chain': needs REGISTRY_URL and the audit "
        "topic), only in the log ('log'), or 'auto' (chain when REGISTRY_URL is set).",
    ),
]
AuditTopicOpt = Annotated[str, typer.Option(help="Topic the audit sink reads.")]


class CommandFailed(StreamingError):
    """A command's own verdict (not a library error): one line and its exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: ExitCode = ExitCode.FAILED) -> CommandFailed:
    """``raise fail("...", ExitCode.USAGE)`` ends the command with ``message``."""
    return CommandFailed(message, code)


def exit_code(exc: StreamingError) -> ExitCode:
    """The one table from our errors to exit codes."""
    if isinstance(exc, CommandFailed):
        return exc.code
    if isinstance(exc, ConfigError | ResetPlanError | SnapshotNotFoundError | BoundsError):
        return ExitCode.USAGE
    refused = (
        GroupNotEmptyError,
        IncompatibleRangeError,
        ConcurrentRunFencedError,
        SnapshotExistsError,
    )
    if isinstance(exc, refused):
        return ExitCode.REFUSED
    if isinstance(exc, DevStackError):
        return ExitCode.UNAVAILABLE
    return ExitCode.FAILED


class _Stderr:
    """Whatever ``sys.stderr`` is at write time (test runners swap it per invocation)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class CommandGroup(TyperGroup):
    """Every command group: logs to stderr (stdout stays data), our errors to exit codes."""

    def invoke(self, ctx: _click.Context) -> Any:
        if not structlog.is_configured():
            configure_logging(stream=cast(TextIO, _Stderr()))
        try:
            return super().invoke(ctx)
        except StreamingError as exc:
            code = exit_code(exc)
            label = "refused" if code is ExitCode.REFUSED else "error"
            err.print(f"[red]{label}:[/red] {escape(str(exc))}")
            raise typer.Exit(code) from exc


def _group_callback() -> None:
    """Makes a group with one command a group (``table dump``, not ``table``)."""


def group(help_text: str, **options: Any) -> typer.Typer:
    """A command group (or the root) with the shared group class and settings."""
    options.setdefault("no_args_is_help", True)
    if not err.is_terminal:  # typer's usage-error box wraps at 80 columns: plain lines
        options.setdefault("rich_markup_mode", None)
    return typer.Typer(
        help=help_text,
        cls=CommandGroup,
        callback=_group_callback,
        add_completion=False,
        pretty_exceptions_enable=False,
        **options,
    )


def run(make: Callable[[], Coroutine[Any, Any, T]], *, telemetry: bool = True) -> T:
    """Run one async operation; with ``telemetry`` its metrics are flushed before exit."""
    if not telemetry:
        return asyncio.run(make())
    with command_telemetry():  # metrics to OTEL_*; flushed before the command exits
        return asyncio.run(make())


def emit_json(data: Any) -> None:
    """``--json`` output: one JSON document on stdout; indented on a terminal, one compact
    line when piped (rich's highlighting, or indenting, of a large document is slow)."""
    indent = 2 if out.is_terminal else None
    sys.stdout.write(json.dumps(data, indent=indent, default=str) + "\n")


def iso_ms(epoch_ms: int | None) -> str:
    """An epoch-milliseconds time as ISO 8601 UTC, the one way commands print times."""
    if epoch_ms is None:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[str]], *, title: str | None = None
) -> None:
    """Rows for people on a terminal (a rich table); piped or redirected, tab-separated
    lines under a header line (the title goes to stderr): nothing truncated or wrapped, one
    row a line, fast for thousands of rows. Cells are plain text, never markup."""
    if out.is_terminal:
        table = Table(*columns, title=Text(title) if title else None)
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        out.print(table)
        return
    if title:
        err.print(escape(title))
    lines = ["\t".join(columns)]
    lines += ["\t".join(c.replace("\t", " ").replace("\n", " ") for c in row) for row in rows]
    sys.stdout.write("\n".join(lines) + "\n")


def kafka_settings(bootstrap_servers: str | None = None) -> KafkaSettings:
    """KAFKA_* settings (``--bootstrap-servers`` wins); every bad value in one ConfigError."""
    if bootstrap_servers:
        return read_settings(KafkaSettings, bootstrap_servers=bootstrap_servers)
    return read_settings(KafkaSettings)


def registry_settings(url: str | None = None) -> RegistrySettings:
    """REGISTRY_* settings (``--registry-url`` wins); every bad value in one ConfigError."""
    return read_settings(RegistrySettings, url=url) if url else read_settings(RegistrySettings)


def kafka_transport(settings: KafkaSettings | None = None) -> TransportFactory:
    """The Kafka transport for ``settings`` (default: KAFKA_* from the environment)."""
    from streaming.transport.kafka import KafkaTransport

    return KafkaTransport(settings or kafka_settings())


def registry_client(url: str | None = None) -> SchemaRegistryClient:
    """A registry client for ``--registry-url`` (default REGISTRY_URL)."""
    return SchemaRegistryClient(registry_settings(url))


@contextmanager
def unavailable(*kinds: type[Exception], fix: str) -> Iterator[None]:
    """Errors of ``kinds`` mean a service is unreachable: exit 3 with ``fix`` appended."""
    try:
        yield
    except kinds as exc:
        raise fail(f"{exc}; {fix}", ExitCode.UNAVAILABLE) from exc


class RateColumn(ProgressColumn):
    """Records per second of the task so far."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- rec/s" if speed is None else f"{speed:,.0f} rec/s")


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A progress bar (counts, rate, ETA) on stderr when stderr is a terminal; piped or
    redirected, nothing. Yields the ``on_progress(done, total)`` callback (``total`` 0:
    unknown)."""
    if not (enabled and err.is_terminal):
        yield lambda done, total: None
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total if total > 0 else None)

        yield update


__all__ = [
    "AuditOpt",
    "AuditTopicOpt",
    "BootstrapOpt",
    "CommandFailed",
    "CommandGroup",
    "ExitCode",
    "JsonOpt",
    "RateOpt",
    "RegistryOpt",
    "emit_json",
    "err",
    "exit_code",
    "fail",
    "group",
    "iso_ms",
    "kafka_settings",
    "kafka_transport",
    "out",
    "print_table",
    "progress_bar",
    "registry_client",
    "registry_settings",
    "run",
    "unavailable",
]
