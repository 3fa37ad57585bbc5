"""CLI for the typed clients: ``topics ensure``, ``produce``, ``consume``, ``dlq list|show``.

Mount with :func:`register` (``register(app)`` adds the ``produce``/``consume`` commands
and the ``topics``/``dlq`` groups). Exit codes: 0 done, 1 the operation failed (Kafka or
registry error, missing record), 2 invalid settings or input.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import random
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from streaming.bulk_send import (
    DEFAULT_WINDOW_MB,
    BadInputError,
    Sent,
    numbered,
    parse_lines,
    send_checked,
)
from streaming.config import KafkaSettings, RegistrySettings
from streaming.errors import ConfigError, StreamingError
from streaming.events import EVENT_TYPES, Event, EventDeserializer
from streaming.fake_events import fake_events
from streaming.logging import configure_logging
from streaming.producer import EventProducer
from streaming.retry import RetryPolicy, dlq_topic, parse_failure_headers
from streaming.serde.client import SchemaRegistryClient
from streaming.serde.context import SerializationContext
from streaming.telemetry import command_telemetry, global_instruments, metric_attributes
from streaming.topics import TopicDefaults, ensure_topics, plan_topics
from streaming.transport.base import IsolationLevel, Record, TopicPartition, TransportFactory

EXIT_FAILED = 1
EXIT_USAGE = 2
T = TypeVar("T")

topics_app = typer.Typer(help="Create main, retry/DLQ and internal topics.", no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect a consumer group's dead-letter topic.", no_args_is_help=True)
app = typer.Typer(help="Typed producer and consumer tools.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")

_out = Console(soft_wrap=True)
_err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
BootstrapOpt = Annotated[
    str | None, typer.Option(help="Kafka host:port list (default KAFKA_BOOTSTRAP_SERVERS).")
]
RegistryOpt = Annotated[str | None, typer.Option(help="Registry URL (default REGISTRY_URL).")]


class Isolation(enum.StrEnum):
    """``--isolation-level`` choices (the transport's :data:`IsolationLevel`)."""

    READ_COMMITTED = "read_committed"
    READ_UNCOMMITTED = "read_uncommitted"


def _fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    _err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _run(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` (logs to stderr, stdout stays data) and turn our errors into one
    line and an exit code."""
    configure_logging()
    try:
        with command_telemetry():  # metrics to OTEL_*; flushed before the command exits
            return asyncio.run(_call(work))
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_USAGE) from exc
    except StreamingError as exc:
        raise _fail(str(exc)) from exc


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


def _kafka(bootstrap: str | None) -> KafkaSettings:
    try:
        return KafkaSettings(bootstrap_servers=bootstrap) if bootstrap else KafkaSettings()
    except ValidationError as exc:
        raise _fail(f"KAFKA_BOOTSTRAP_SERVERS: {exc.errors()[0]['msg']}", EXIT_USAGE) from exc


def _registry(url: str | None) -> SchemaRegistryClient:
    try:
        settings = RegistrySettings(url=url) if url else RegistrySettings()
    except ValidationError as exc:
        raise _fail(f"REGISTRY_URL: {exc.errors()[0]['msg']}", EXIT_USAGE) from exc
    return SchemaRegistryClient(settings)


def _transport(settings: KafkaSettings) -> TransportFactory:
    from streaming.transport.kafka import KafkaTransport

    return KafkaTransport(settings)


def _event_type(name: str) -> type[Event]:
    found = EVENT_TYPES.by_event_type(name) or EVENT_TYPES.get(name)
    if found is None:
        known = ", ".join(sorted(c.type_name() for c in EVENT_TYPES.values()))
        raise _fail(f"unknown event type {name!r}; use one of: {known}", EXIT_USAGE)
    return found


# --------------------------------------------------------------------------- topics


@topics_app.command("ensure")
def topics_ensure(
    topic: Annotated[list[str], typer.Option("--topic", "-t", help="Main topic (repeatable).")],
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="Consumer group needing retry/DLQ topics."),
    ] = None,
    partitions: Annotated[
        int | None, typer.Option(help="Default KAFKA_DEFAULT_PARTITIONS.")
    ] = None,
    replication_factor: Annotated[
        int | None, typer.Option(help="Default KAFKA_DEFAULT_REPLICATION_FACTOR.")
    ] = None,
    min_insync_replicas: Annotated[
        int | None, typer.Option(help="Default KAFKA_MIN_INSYNC_REPLICAS.")
    ] = None,
    retention_ms: Annotated[int | None, typer.Option(help="Main topics (default 7 days).")] = None,
    retry_retention_ms: Annotated[int | None, typer.Option(help="Retry topics.")] = None,
    dlq_retention_ms: Annotated[int | None, typer.Option(help="DLQ (default 30 days).")] = None,
    attempts: Annotated[int, typer.Option(help="Deliveries incl. the first (retry levels+1).")] = 3,
    internal: Annotated[
        bool, typer.Option(help="Also the compacted _streaming.* internal topics.")
    ] = True,
    bootstrap_servers: BootstrapOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create missing main, retry, DLQ (and internal) topics; existing ones are kept."""
    settings = _kafka(bootstrap_servers)
    overrides = {
        k: v
        for k, v in {
            "partitions": partitions,
            "replication_factor": replication_factor,
            "min_insync_replicas": min_insync_replicas,
            "retention_ms": retention_ms,
            "retry_retention_ms": retry_retention_ms,
            "dlq_retention_ms": dlq_retention_ms,
        }.items()
        if v is not None
    }
    defaults = TopicDefaults.from_settings(settings, **overrides)
    policy = RetryPolicy(attempts=attempts, delays_s=(1.0,))
    specs = plan_topics(
        topic, groups=group or (), policy=policy, defaults=defaults, internal=internal
    )

    async def work() -> Any:
        admin = _transport(settings).admin()
        await admin.start()
        try:
            return await ensure_topics(admin, specs)
        finally:
            await admin.stop()

    result = _run(work)
    if as_json:
        _out.print_json(
            json.dumps(
                {
                    "created": list(result.created),
                    "existing": list(result.existing),
                    "mismatched": {k: list(v) for k, v in result.mismatched.items()},
                }
            )
        )
    else:
        for name in result.created:
            _out.print(f"[green]created[/green] {name}")
        for name in result.existing:
            _out.print(f"[dim]exists[/dim]  {name}")
        for name, (want, have) in result.mismatched.items():
            _err.print(f"[yellow]warning:[/yellow] {name} has {have} partitions, wanted {want}")
    if result.mismatched:
        raise typer.Exit(EXIT_FAILED)


# --------------------------------------------------------------------------- produce


@app.command("produce")
def produce(
    topic: Annotated[str, typer.Option("--topic", "-t", help="Destination topic.")],
    type_name: Annotated[str, typer.Option("--type", help="Event type, e.g. OrderPlaced.")],
    fake: Annotated[
        int | None, typer.Option(min=0, help="Send N synthetic events instead of reading stdin.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for --fake.")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Events per pipelined batch.")] = 500,
    window_mb: Annotated[
        int,
        typer.Option(
            min=1,
            help="Check up to this many MiB of encoded events before sending any of them; "
            "longer input is checked and sent window by window.",
        ),
    ] = DEFAULT_WINDOW_MB,
    bootstrap_servers: BootstrapOpt = None,
    registry_url: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send JSON lines of the model from stdin (or --fake N events) as typed Avro.

    Every event is validated and sized before it is sent: input that fits one window is
    sent only if all of it is valid; a bad line in a longer stream stops it, and the error
    says how many were sent and the first unsent line.
    """
    cls = _event_type(type_name)
    settings = _kafka(bootstrap_servers)
    if fake is not None:
        label, items = "--fake event", numbered(fake_events(cls, fake, rng=random.Random(seed)))
    else:
        label, items = "stdin line", parse_lines(cls, sys.stdin)

    async def work() -> Sent:
        registry = _registry(registry_url)
        try:
            async with EventProducer(_transport(settings), registry) as producer:
                with Progress(console=_err, transient=True, disable=as_json) as progress:
                    task = progress.add_task(f"producing to {topic}", total=fake)
                    return await send_checked(
                        producer,
                        topic,
                        items,
                        batch=batch,
                        window_bytes=window_mb * 1024 * 1024,
                        on_sent=lambda n: progress.advance(task, n),
                        keep_records=as_json,
                    )
        finally:
            await registry.aclose()

    done = _run(work)
    if as_json:
        doc: dict[str, Any] = {"topic": topic, "sent": done.sent, "records": done.records}
        if done.error is not None:
            doc.update(error=done.explain(label), first_unsent=done.first_unsent)
        _out.print_json(json.dumps(doc))
    if done.error is None:
        if not as_json:
            _err.print(f"[green]sent[/green] {done.sent} {cls.type_name()} event(s) to {topic}")
        return
    bad_input = isinstance(done.error, BadInputError | ConfigError)
    raise _fail(done.explain(label), EXIT_USAGE if bad_input else EXIT_FAILED)


# --------------------------------------------------------------------------- reading


async def _read(
    transport: TransportFactory,
    topic: str,
    *,
    from_beginning: bool,
    max_records: int | None,
    idle_timeout_s: float | None,
    on_record: Callable[[Record], Awaitable[None]],
    to_end: bool = False,
    isolation_level: IsolationLevel = "read_committed",
) -> int:
    """Read ``topic`` without a group (nothing committed); returns how many were read."""
    consumed = global_instruments().consumed
    consumer = transport.consumer(group_id=None, isolation_level=isolation_level)
    await consumer.start()
    try:
        parts = sorted(await consumer.partitions_for(topic))
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        ends = await consumer.end_offsets(tps) if to_end else {}
        count = 0
        loop = asyncio.get_running_loop()
        last = loop.time()
        while max_records is None or count < max_records:
            if to_end:
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps):
                    break
            batch = await consumer.poll(timeout_ms=500)
            if not batch:
                if idle_timeout_s is not None and loop.time() - last > idle_timeout_s:
                    break
                continue
            last = loop.time()
            for records in batch.values():
                for record in records:
                    if max_records is not None and count >= max_records:
                        break
                    await on_record(record)
                    consumed.add(1, metric_attributes(topic, operation="poll"))
                    count += 1
        return count
    finally:
        await consumer.stop()


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


async def _describe(record: Record, decoder: EventDeserializer) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": _text(record.key),
        "headers": [[k, _text(v)] for k, v in record.headers],
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
    doc["event_type"] = event.type_name()
    doc["value"] = event.model_dump(mode="json")
    return doc


def _print_text(doc: dict[str, Any]) -> None:
    """One record for people: a title line, then headers and the value, or for a record
    that does not decode, the decode error and the raw value as base64."""
    title = doc.get("event_type") or ("UNDECODABLE" if "error" in doc else "")
    _out.print(
        f"[bold]{doc['topic']}[{doc['partition']}]@{doc['offset']}[/bold] {title} "
        f"key={escape(str(doc['key']))}",
        highlight=False,
    )
    body = ("headers", "value") if "error" not in doc else ("headers", "error", "raw_value_base64")
    _out.print_json(json.dumps({k: doc[k] for k in body}))


@app.command("consume")
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
) -> None:
    """Print decoded records with their headers (JSON lines with --json); commits nothing."""
    settings = _kafka(bootstrap_servers)

    async def work() -> int:
        registry = _registry(registry_url)
        decoder = EventDeserializer(registry)

        async def show(record: Record) -> None:
            doc = await _describe(record, decoder)
            if as_json:
                sys.stdout.write(json.dumps(doc) + "\n")
                sys.stdout.flush()
            else:
                _print_text(doc)

        try:
            return await _read(
                _transport(settings),
                topic,
                from_beginning=from_beginning,
                max_records=max_records,
                idle_timeout_s=idle_timeout_s,
                on_record=show,
                isolation_level=isolation_level.value,
            )
        finally:
            await registry.aclose()

    count = _run(work)
    if not as_json:
        _err.print(f"{count} record(s)")


# --------------------------------------------------------------------------- dlq


def _ms_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


async def _dlq_records(settings: KafkaSettings, topic: str, group: str) -> list[Record]:
    found: list[Record] = []

    async def keep(record: Record) -> None:
        found.append(record)

    await _read(
        _transport(settings),
        dlq_topic(topic, group),
        from_beginning=True,
        max_records=None,
        idle_timeout_s=10.0,
        on_record=keep,
        to_end=True,
    )
    return found


@dlq_app.command("list")
def dlq_list(
    topic: Annotated[str, typer.Option("--topic", "-t", help="The source (main) topic.")],
    group: Annotated[str, typer.Option("--group", "-g", help="The consumer group.")],
    bootstrap_servers: BootstrapOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts by exception type with the oldest and newest failure time."""
    settings = _kafka(bootstrap_servers)
    records = _run(lambda: _dlq_records(settings, topic, group))
    summary: dict[str, dict[str, Any]] = {}
    for record in records:
        info = parse_failure_headers(record.headers)
        kind = info.exception_type if info else "<no diagnostic headers>"
        failed = info.failed_at_ms if info else record.timestamp_ms
        row = summary.setdefault(kind, {"count": 0, "oldest_ms": failed, "newest_ms": failed})
        row["count"] += 1
        row["oldest_ms"] = min(row["oldest_ms"], failed)
        row["newest_ms"] = max(row["newest_ms"], failed)
    doc: dict[str, Any] = {
        "dlq_topic": dlq_topic(topic, group),
        "total": len(records),
        "by_exception_type": {
            k: {**v, "oldest": _ms_iso(v["oldest_ms"]), "newest": _ms_iso(v["newest_ms"])}
            for k, v in sorted(summary.items())
        },
    }
    if as_json:
        _out.print_json(json.dumps(doc))
        return
    from rich.table import Table

    table = Table("exception type", "count", "oldest", "newest", title=doc["dlq_topic"])
    for kind, row in doc["by_exception_type"].items():
        table.add_row(kind, str(row["count"]), row["oldest"], row["newest"])
    _out.print(table)
    _err.print(f"{len(records)} record(s) in {doc['dlq_topic']}")


@dlq_app.command("show")
def dlq_show(
    topic: Annotated[str, typer.Option("--topic", "-t", help="The source (main) topic.")],
    group: Annotated[str, typer.Option("--group", "-g", help="The consumer group.")],
    partition: Annotated[int | None, typer.Option(help="DLQ partition of the record.")] = None,
    offset: Annotated[
        int | None, typer.Option(help="DLQ offset (default: the oldest record).")
    ] = None,
    bootstrap_servers: BootstrapOpt = None,
    registry_url: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One DLQ record in full: diagnostic headers, stack, raw bytes, decoded value if any."""
    settings = _kafka(bootstrap_servers)

    async def work() -> dict[str, Any] | None:
        records = await _dlq_records(settings, topic, group)
        chosen = [
            r
            for r in records
            if (partition is None or r.partition == partition)
            and (offset is None or r.offset == offset)
        ]
        if not chosen:
            return None
        record = min(chosen, key=lambda r: (r.timestamp_ms, r.partition, r.offset))
        registry = _registry(registry_url)
        try:
            doc = await _describe(record, EventDeserializer(registry))
        finally:
            await registry.aclose()
        doc["raw_value_base64"] = (
            base64.b64encode(record.value).decode() if record.value is not None else None
        )
        return doc

    doc = _run(work)
    if doc is None:
        raise _fail(
            f"no matching record in {dlq_topic(topic, group)} (check --partition/--offset "
            "with 'dlq list')"
        )
    if as_json:
        _out.print_json(json.dumps(doc))
        return
    headers = dict(doc["headers"])
    stack = headers.pop("x-exception-stack", "")
    _out.print(f"[bold]{doc['topic']}[{doc['partition']}]@{doc['offset']}[/bold]")
    _out.print_json(json.dumps(headers))
    _out.print(stack or "(no stack)", highlight=False)
    _out.print_json(json.dumps({"value": doc.get("value"), "error": doc.get("error")}))


def register(root: typer.Typer) -> None:
    """Mount ``produce``, ``consume``, ``topics`` and ``dlq`` on the ``streaming`` app."""
    root.command("produce")(produce)
    root.command("consume")(consume)
    root.add_typer(topics_app, name="topics")
    root.add_typer(dlq_app, name="dlq")


__all__ = ["app", "dlq_app", "register", "topics_app"]
