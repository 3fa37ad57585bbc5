"""``streaming offsets|replay|dlq|table``: operator commands over :mod:`streaming.replay`.

Mount with ``app.add_typer(offsets_app, name="offsets")``, ``replay_app`` as ``replay``,
``dlq_app`` as ``dlq`` and ``table_app`` as ``table``. Logs go to stderr so ``--json``
and ``--export`` output on stdout stays parseable.

Exit codes: 0 done (including a no-op); 1 the operation failed; 2 bad input or
configuration; 4 refused because of the cluster's state (active group, incompatible
schemas, another run of the same replay or DLQ took over).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar, cast

import structlog
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from streaming.audit import DEFAULT_AUDIT_TOPIC, AuditLogger
from streaming.config import KafkaSettings, RegistrySettings
from streaming.errors import ConfigError, GroupNotEmptyError, StreamingError
from streaming.logging import configure_logging
from streaming.producer import EventProducer
from streaming.replay import (
    Bound,
    CompactedTable,
    ConcurrentRunFencedError,
    DlqRedriver,
    IncompatibleRangeError,
    OffsetManager,
    RangeReplayer,
    RedriveFilter,
    ResetPlan,
    ResetPlanError,
    ResetStrategy,
    SnapshotNotFoundError,
    SnapshotStore,
    parse_topic_selector,
)
from streaming.replay.audit import AuditHook, chain_hook, log_audit
from streaming.replay.plan import parse_datetime, to_epoch_ms
from streaming.serde.client import SchemaRegistryClient
from streaming.telemetry import command_telemetry
from streaming.transport.kafka import KafkaTransport

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 4
T = TypeVar("T")

offsets_app = typer.Typer(
    help="Consumer-group offsets: snapshots and resets.", no_args_is_help=True
)
replay_app = typer.Typer(help="Replay a range of a topic into another topic.")
dlq_app = typer.Typer(help="Dead-letter queues: redrive.", no_args_is_help=True)
table_app = typer.Typer(help="Compacted topics as tables.", no_args_is_help=True)

out = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
AuditOpt = Annotated[
    str,
    typer.Option(
        "--audit",
        help="Record the action in the audit chain ('chain': needs REGISTRY_URL and the audit "
        "topic), only in the log ('log'), or 'auto' (chain when REGISTRY_URL is set).",
    ),
]
AuditTopicOpt = Annotated[str, typer.Option(help="Topic the audit sink reads.")]


def _transport() -> KafkaTransport:
    try:
        return KafkaTransport(KafkaSettings())
    except ValidationError as exc:
        raise ConfigError(
            [f"KAFKA_{e['loc'][0]}: {e['msg']}".upper() for e in exc.errors()]
        ) from exc


@asynccontextmanager
async def _audit_hook(
    mode: str, topic: str, transport: KafkaTransport, *, active: bool
) -> AsyncIterator[AuditHook]:
    """The hook an action reports to. With ``chain`` the audit topic must exist before
    anything moves, so an action is never done without its audit record."""
    if mode not in ("auto", "chain", "log"):
        raise ConfigError([f"--audit {mode!r}: expected auto, chain or log"])
    if not active:  # dry runs change nothing and are not audited
        yield log_audit
        return
    registry = RegistrySettings()
    configured = "url" in registry.model_fields_set  # from the environment or a .env file
    if mode == "log" or (mode == "auto" and not configured):
        if mode == "auto":
            err.print(
                "audit: REGISTRY_URL is not set, so this action is only logged; set it to "
                "record the action in the audit chain",
                highlight=False,
            )
        yield log_audit
        return
    admin = transport.admin()
    await admin.start()
    try:
        exists = topic in await admin.list_topics()
    finally:
        await admin.stop()
    if not exists:
        raise ConfigError(
            [
                f"audit topic {topic!r} does not exist: create it "
                f"(streaming topics ensure -t {topic}) or pass --audit log"
            ]
        )
    client = SchemaRegistryClient(registry)
    try:
        async with EventProducer(transport, client) as producer:
            yield chain_hook(AuditLogger(producer, topic=topic, source="streaming-cli"))
    finally:
        await client.aclose()


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one async operation, mapping our errors to exit codes and fix-it messages."""
    try:
        with command_telemetry():
            return asyncio.run(make())
    except (ConfigError, ResetPlanError, SnapshotNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from exc
    except (GroupNotEmptyError, IncompatibleRangeError, ConcurrentRunFencedError) as exc:
        err.print(f"[red]refused:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_REFUSED) from exc
    except StreamingError as exc:
        err.print(f"[red]failed:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from exc


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar with ETA on stderr; yields the ``on_progress`` callback."""
    if not enabled:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


class _Stderr:
    """Whatever ``sys.stderr`` is at write time (test runners swap it per invocation)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _edge() -> None:
    """Logs go to stderr so ``--json``/``--export`` output on stdout stays parseable."""
    if not structlog.is_configured():
        configure_logging(stream=cast(TextIO, _Stderr()))


@offsets_app.callback()
def _offsets_group() -> None:
    """Consumer-group offsets: snapshots and resets."""
    _edge()


@dlq_app.callback()
def _dlq_group() -> None:
    """Dead-letter queues: redrive."""
    _edge()


@table_app.callback()
def _table_group() -> None:
    """Compacted topics as tables."""
    _edge()


def _emit(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


# --------------------------------------------------------------------------- offsets


@offsets_app.command("snapshot")
def offsets_snapshot(
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Snapshot name, e.g. pre-deploy.")],
    topic: Annotated[list[str] | None, typer.Option(help="Only these topics.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store the group's committed offsets (with log ends and timestamps)."""
    transport = _transport()
    snap = _run(lambda: OffsetManager(transport).snapshot(group, name, topics=topic))
    if as_json:
        _emit(snap.to_dict())
        return
    err.print(f"saved snapshot [bold]{name}[/bold] of {group}: {len(snap.partitions)} partitions")


@offsets_app.command("list")
def offsets_list(
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only this group.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored snapshots."""
    transport = _transport()
    snaps = _run(lambda: SnapshotStore(transport).list_snapshots(group))
    if as_json:
        _emit([s.to_dict() for s in snaps])
        return
    table = Table("group", "name", "created (ms)", "by", "partitions", "lag at snapshot")
    for s in snaps:
        lag = sum(p.lag for p in s.partitions)
        table.add_row(
            s.group, s.name, str(s.created_at_ms), s.created_by, str(len(s.partitions)), str(lag)
        )
    out.print(table)


@offsets_app.command("delete")
def offsets_delete(
    group: Annotated[str, typer.Option("--group", "-g")],
    name: Annotated[str, typer.Option("--name", "-n")],
) -> None:
    """Delete a snapshot (a tombstone in the compacted snapshots topic)."""
    transport = _transport()
    _run(lambda: SnapshotStore(transport).delete_snapshot(group, name))
    err.print(f"deleted snapshot {name} of {group}")


def _strategy(
    group: str,
    to_datetime: str | None,
    by_duration: str | None,
    shift_by: int | None,
    to_offset: int | None,
    to_earliest: bool,
    to_latest: bool,
    from_snapshot: str | None,
    from_file: Path | None,
) -> Callable[[OffsetManager], Awaitable[ResetStrategy]]:
    chosen = [
        to_datetime is not None,
        by_duration is not None,
        shift_by is not None,
        to_offset is not None,
        to_earliest,
        to_latest,
        from_snapshot is not None,
        from_file is not None,
    ]
    if sum(chosen) != 1:
        raise ResetPlanError(
            "give exactly one of --to-datetime, --by-duration, --shift-by, --to-offset, "
            "--to-earliest, --to-latest, --from-snapshot, --from-file"
        )

    text = None
    if from_file is not None:
        try:
            text = from_file.read_text()
        except OSError as exc:
            raise ResetPlanError(f"cannot read --from-file {from_file}: {exc}") from exc

    async def build(manager: OffsetManager) -> ResetStrategy:
        if to_datetime is not None:
            return ResetStrategy.to_datetime(to_datetime)
        if by_duration is not None:
            return ResetStrategy.by_duration(by_duration)
        if shift_by is not None:
            return ResetStrategy.shift_by(shift_by)
        if to_offset is not None:
            return ResetStrategy.to_offset(to_offset)
        if to_earliest:
            return ResetStrategy.to_earliest()
        if to_latest:
            return ResetStrategy.to_latest()
        if from_snapshot is not None:
            snap = await manager.store.get_snapshot(group, from_snapshot)
            return ResetStrategy.from_snapshot(from_snapshot, snap.offsets)
        return ResetStrategy.from_csv(text or "", group=group, source=str(from_file))

    return build


def _plan_table(plan: ResetPlan) -> Table:
    table = Table(
        "topic",
        "partition",
        "current",
        "target",
        "re-read",
        "lag after",
        "note",
        title=f"{plan.group}: {plan.strategy}",
    )
    for p in plan.partitions:
        table.add_row(
            p.tp.topic,
            str(p.tp.partition),
            "-" if p.current is None else str(p.current),
            str(p.target),
            "-" if p.re_read is None else str(p.re_read),
            str(p.lag_after),
            p.note,
        )
    return table


@offsets_app.command("reset")
def offsets_reset(
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group.")],
    topic: Annotated[
        list[str] | None, typer.Option(help="TOPIC or TOPIC:P,P (repeatable).")
    ] = None,
    to_datetime: Annotated[str | None, typer.Option(help="ISO-8601; no zone means UTC.")] = None,
    by_duration: Annotated[str | None, typer.Option(help="ISO-8601 duration, e.g. PT1H.")] = None,
    shift_by: Annotated[int | None, typer.Option(help="Move by N (negative: back).")] = None,
    to_offset: Annotated[int | None, typer.Option()] = None,
    to_earliest: Annotated[bool, typer.Option("--to-earliest")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest")] = False,
    from_snapshot: Annotated[str | None, typer.Option(help="Snapshot name.")] = None,
    from_file: Annotated[Path | None, typer.Option(help="CSV topic,partition,offset.")] = None,
    execute: Annotated[
        bool, typer.Option("--execute/--dry-run", help="Apply, or only show the plan (default).")
    ] = False,
    export: Annotated[
        bool, typer.Option("--export", help="Print the plan as kafka-consumer-groups CSV.")
    ] = False,
    audit: AuditOpt = "auto",
    audit_topic: AuditTopicOpt = DEFAULT_AUDIT_TOPIC,
    as_json: JsonOpt = False,
) -> None:
    """Plan (default) or apply an offset reset; refused while the group has members."""
    transport = _transport()

    async def go() -> ResetPlan:
        selectors = dict(parse_topic_selector(t) for t in topic or [])
        build = _strategy(
            group,
            to_datetime,
            by_duration,
            shift_by,
            to_offset,
            to_earliest,
            to_latest,
            from_snapshot,
            from_file,
        )
        async with _audit_hook(audit, audit_topic, transport, active=execute) as hook:
            manager = OffsetManager(transport, audit=hook)
            plan = await manager.plan(group, await build(manager), topics=selectors or None)
            return await manager.execute(plan) if execute else plan

    plan = _run(go)
    if export:
        sys.stdout.write(plan.to_csv())
    elif as_json:
        _emit({**plan.to_dict(), "executed": execute})
    else:
        out.print(_plan_table(plan))
        err.print("applied" if execute else "dry run: nothing changed (add --execute to apply)")


# --------------------------------------------------------------------------- replay


def _bound(text: str | None, default: Bound) -> Bound:
    """``earliest``/``latest``, an offset, or an ISO-8601 time."""
    if text is None:
        return default
    if text in ("earliest", "latest"):
        return Bound.earliest() if text == "earliest" else Bound.latest()
    if text.isdigit():
        return Bound.at_offset(int(text))
    return Bound.at_time(to_epoch_ms(parse_datetime(text)))


@replay_app.callback(invoke_without_command=True)
def replay(
    source: Annotated[str, typer.Option("--topic", "-t", help="Topic to replay.")],
    target: Annotated[str, typer.Option("--to", help="Target topic.")],
    start: Annotated[
        str | None, typer.Option("--from", help="earliest | OFFSET | ISO time.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--until", help="latest | OFFSET | ISO time (exclusive).")
    ] = None,
    from_snapshot: Annotated[
        str | None, typer.Option(help="Start at GROUP:SNAPSHOT's offsets.")
    ] = None,
    replay_id: Annotated[
        str | None, typer.Option(help="Resume this replay (printed by every run).")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Max records per second.")] = None,
    create_target: Annotated[
        bool, typer.Option(help="Create --to like --topic if missing.")
    ] = False,
    reader_subject: Annotated[
        str | None,
        typer.Option(
            help="Check the latest schema of this subject reads every writer id in range (needs REGISTRY_URL)."
        ),
    ] = None,
    audit: AuditOpt = "auto",
    audit_topic: AuditTopicOpt = DEFAULT_AUDIT_TOPIC,
    as_json: JsonOpt = False,
) -> None:
    """Copy a range of --topic into --to with keys, headers and order, adding x-replay-id."""
    _edge()
    transport = _transport()

    async def go() -> dict[str, Any]:
        from streaming.replay.range import create_like

        first = _bound(start, Bound.earliest())
        if from_snapshot is not None:
            group, _, name = from_snapshot.partition(":")
            snap = await SnapshotStore(transport).get_snapshot(group, name)
            first = Bound.at_offsets(
                {tp.partition: o for tp, o in snap.offsets.items() if tp.topic == source}
            )
        if create_target:
            await create_like(transport, source, target)
        registry = reader = None
        if reader_subject is not None:
            registry = SchemaRegistryClient(RegistrySettings())
            reader = (await registry.get_latest_version(reader_subject)).schema
        try:
            async with _audit_hook(audit, audit_topic, transport, active=True) as hook:
                replayer = RangeReplayer(transport, registry=registry, audit=hook)
                rid = replay_id or uuid.uuid4().hex
                err.print(f"replay id {rid} (resume with --replay-id {rid})")
                with _progress("replaying", not as_json) as on_progress:
                    result = await replayer.replay(
                        source,
                        target=target,
                        start=first,
                        end=_bound(end, Bound.latest()),
                        replay_id=rid,
                        rate=rate,
                        reader_schema=reader,
                        on_progress=on_progress,
                    )
        finally:
            if registry is not None:
                await registry.aclose()
        return result.to_dict()

    result = _run(go)
    if as_json:
        _emit(result)
    elif result["already_done"]:
        err.print(f"replay {result['replay_id']} had already finished: nothing to do")
    else:
        err.print(f"replayed {result['written']} records {result['source']} -> {result['target']}")


# --------------------------------------------------------------------------- dlq


def _parse_offsets(values: list[str]) -> dict[int, tuple[int, int]] | None:
    """``P:START-END`` (END exclusive) per partition."""
    if not values:
        return None
    out: dict[int, tuple[int, int]] = {}
    for value in values:
        part, _, span = value.partition(":")
        lo, _, hi = span.partition("-")
        if not (part.isdigit() and lo.isdigit() and hi.isdigit()):
            raise ValueError(f"--offsets {value!r}: expected PARTITION:START-END, e.g. 0:100-200")
        out[int(part)] = (int(lo), int(hi))
    return out


@dlq_app.command("redrive")
def dlq_redrive(
    topic: Annotated[str, typer.Option("--topic", "-t", help="The source topic.")],
    group: Annotated[str, typer.Option("--group", "-g", help="The consumer group whose DLQ.")],
    to: Annotated[str | None, typer.Option("--to", help="Destination (default: --topic).")] = None,
    exception_type: Annotated[
        list[str] | None,
        typer.Option(help="Only these x-exception-type values (class name or full)."),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Failed at or after (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Failed before (ISO-8601).")] = None,
    offsets: Annotated[
        list[str] | None, typer.Option(help="P:START-END of the DLQ (repeatable).")
    ] = None,
    max_redrives: Annotated[
        int, typer.Option(help="Park records already redriven this often.")
    ] = 3,
    rate: Annotated[float | None, typer.Option(help="Max records per second.")] = None,
    execute: Annotated[
        bool,
        typer.Option("--execute/--dry-run", help="Move records, or only count them (default)."),
    ] = False,
    audit: AuditOpt = "auto",
    audit_topic: AuditTopicOpt = DEFAULT_AUDIT_TOPIC,
    as_json: JsonOpt = False,
) -> None:
    """Move DLQ records back; repeats are no-ops, repeat offenders go to <topic>.<group>.parking."""
    _edge()  # the root CLI mounts this command without the dlq group's callback
    transport = _transport()

    async def go() -> dict[str, Any]:
        flt = RedriveFilter(
            exception_types=tuple(exception_type or ()),
            since_ms=to_epoch_ms(parse_datetime(since)) if since else None,
            until_ms=to_epoch_ms(parse_datetime(until)) if until else None,
            offsets=_parse_offsets(offsets or []),
        )
        async with _audit_hook(audit, audit_topic, transport, active=execute) as hook:
            redriver = DlqRedriver(transport, topic, group, max_redrives=max_redrives, audit=hook)
            with _progress("redriving" if execute else "scanning", not as_json) as on_progress:
                result = await redriver.redrive(
                    flt, destination=to, dry_run=not execute, rate=rate, on_progress=on_progress
                )
        return result.to_dict()

    result = _run(go)
    if as_json:
        _emit(result)
        return
    verb = "redrove" if execute else "would redrive"
    err.print(
        f"{verb} {result['redriven']} to {result['destination']}, parked {result['parked']} in "
        f"{result['parking']}; {result['already_moved']} already moved, "
        f"{result['filtered_out']} filtered out" + ("" if execute else " (dry run: add --execute)")
    )


# --------------------------------------------------------------------------- table


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


@table_app.command("dump")
def table_dump(
    topic: Annotated[str, typer.Option("--topic", "-t", help="A compacted topic.")],
    as_json: JsonOpt = False,
) -> None:
    """Print the latest value of every key (tombstoned keys are absent)."""
    transport = _transport()

    async def go() -> dict[bytes, bytes]:
        async with CompactedTable(transport, topic) as table:
            return table.snapshot()

    rows = _run(go)
    if as_json:
        _emit({_text(k): _text(v) for k, v in sorted(rows.items())})
        return
    table = Table("key", "value", title=f"{topic} ({len(rows)} keys)")
    for k, v in sorted(rows.items()):
        table.add_row(_text(k), _text(v))
    out.print(table)


__all__ = ["dlq_app", "offsets_app", "replay_app", "table_app"]
