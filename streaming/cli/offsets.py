"""``streaming offsets snapshot|list|delete|reset``: consumer-group offsets
(:class:`streaming.replay.OffsetManager` plans and applies; this module prints)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer

from streaming.audit.logger import DEFAULT_AUDIT_TOPIC
from streaming.cli._common import (
    AuditOpt,
    AuditTopicOpt,
    JsonOpt,
    emit_json,
    err,
    group,
    iso_ms,
    kafka_transport,
    print_table,
    run,
)
from streaming.replay import (
    OffsetManager,
    ResetPlan,
    ResetPlanError,
    ResetStrategy,
    SnapshotStore,
    parse_topic_selector,
)
from streaming.replay.audit import audit_hook

app = group("Consumer-group offsets: snapshots and resets.")


@app.command("snapshot")
def offsets_snapshot(
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Snapshot name, e.g. pre-deploy.")],
    topic: Annotated[list[str] | None, typer.Option(help="Only these topics.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing snapshot of that name.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store the group's committed offsets (with log ends and timestamps); an existing
    name is refused unless --force."""
    transport = kafka_transport()
    snap = run(lambda: OffsetManager(transport).snapshot(group, name, topics=topic, force=force))
    if as_json:
        emit_json(snap.to_dict())
        return
    err.print(f"saved snapshot [bold]{name}[/bold] of {group}: {len(snap.partitions)} partitions")


@app.command("list")
def offsets_list(
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only this group.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored snapshots."""
    transport = kafka_transport()
    snaps = run(lambda: SnapshotStore(transport).list_snapshots(group))
    if as_json:
        emit_json([s.to_dict() for s in snaps])
        return
    print_table(
        ("group", "name", "created", "by", "partitions", "lag at snapshot"),
        (
            (
                s.group,
                s.name,
                iso_ms(s.created_at_ms),
                s.created_by,
                str(len(s.partitions)),
                str(sum(p.lag for p in s.partitions)),
            )
            for s in snaps
        ),
    )


@app.command("delete")
def offsets_delete(
    group: Annotated[str, typer.Option("--group", "-g")],
    name: Annotated[str, typer.Option("--name", "-n")],
) -> None:
    """Delete a snapshot (a tombstone in the compacted snapshots topic)."""
    transport = kafka_transport()
    run(lambda: SnapshotStore(transport).delete_snapshot(group, name))
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


def _print_plan(plan: ResetPlan) -> None:
    print_table(
        ("topic", "partition", "current", "target", "re-read", "lag after", "note"),
        (
            (
                p.tp.topic,
                str(p.tp.partition),
                "-" if p.current is None else str(p.current),
                str(p.target),
                "-" if p.re_read is None else str(p.re_read),
                str(p.lag_after),
                p.note,
            )
            for p in plan.partitions
        ),
        title=f"{plan.group}: {plan.strategy}",
    )


@app.command("reset")
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
    transport = kafka_transport()

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
        async with audit_hook(
            audit, audit_topic, transport, active=execute, notice=err.print
        ) as hook:
            manager = OffsetManager(transport, audit=hook)
            plan = await manager.plan(group, await build(manager), topics=selectors or None)
            return await manager.execute(plan) if execute else plan

    plan = run(go)
    if export:
        sys.stdout.write(plan.to_csv())
    elif as_json:
        emit_json({**plan.to_dict(), "executed": execute})
    else:
        _print_plan(plan)
        err.print("applied" if execute else "dry run: nothing changed (add --execute to apply)")


__all__ = ["app"]
