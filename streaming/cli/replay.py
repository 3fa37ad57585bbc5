"""``streaming replay``: copy a range of a topic into another topic, keeping keys,
headers and order (:class:`streaming.replay.RangeReplayer`); resumable by replay id."""

from __future__ import annotations

import shlex
from typing import Annotated, Any

import typer
from rich.markup import escape

from streaming.audit.logger import DEFAULT_AUDIT_TOPIC
from streaming.cli._common import (
    AuditOpt,
    AuditTopicOpt,
    ExitCode,
    JsonOpt,
    RateOpt,
    emit_json,
    err,
    group,
    kafka_transport,
    progress_bar,
    registry_client,
    run,
)
from streaming.replay import RangeReplayer, SnapshotStore
from streaming.replay.audit import audit_hook
from streaming.replay.bounds import Bound, check_order, parse_bound
from streaming.replay.errors import BoundsError
from streaming.replay.range import derive_replay_id

app = group("Replay a range of a topic into another topic.", no_args_is_help=False)


def resume_command(source: str, target: str, replay_id: str, rate: float | None) -> str:
    """The command line that resumes this replay (the range is stored with its progress)."""
    words = ["streaming", "replay", "--topic", source, "--to", target, "--replay-id", replay_id]
    if rate is not None:
        words += ["--rate", f"{rate:g}"]
    return shlex.join(words)


@app.callback(invoke_without_command=True)
def replay(
    source: Annotated[str, typer.Option("--topic", "-t", help="Topic to replay.")],
    target: Annotated[str, typer.Option("--to", help="Target topic.")],
    start: Annotated[
        str | None,
        typer.Option("--from", help="earliest | OFFSET | P:OFFSET[,P:OFFSET...] | ISO time."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--until", help="latest | OFFSET | P:OFFSET[,P:OFFSET...] | ISO time (exclusive)."
        ),
    ] = None,
    from_snapshot: Annotated[
        str | None, typer.Option(help="Start at GROUP:SNAPSHOT's offsets.")
    ] = None,
    replay_id: Annotated[
        str | None,
        typer.Option(
            help="Default: derived from --topic, --to and the range, so running the same "
            "replay again resumes it or does nothing. A new id replays again on purpose."
        ),
    ] = None,
    rate: RateOpt = None,
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
    """Copy a range of --topic into --to with keys, headers and order, adding x-replay-id.

    The same replay run again writes nothing (its id is derived from source, target and
    range); Ctrl-C prints the command that resumes it.
    """
    if start is not None and from_snapshot is not None:
        raise BoundsError(f"--from {start} and --from-snapshot {from_snapshot}: give one start")
    group_name = None
    if from_snapshot is not None:
        group_name = from_snapshot.partition(":")[::2]
        if not all(group_name):
            raise BoundsError(f"--from-snapshot {from_snapshot!r}: expected GROUP:SNAPSHOT")
    first = parse_bound(start, Bound.earliest(), "--from")
    last = parse_bound(end, Bound.latest(), "--until")
    check_order(first, last, start_option="--from", end_option="--until")
    transport = kafka_transport()
    started: list[str] = []

    async def go() -> dict[str, Any]:
        from streaming.replay.range import create_like

        nonlocal first
        if group_name is not None:
            snap = await SnapshotStore(transport).get_snapshot(*group_name)
            first = Bound.at_offsets(
                {tp.partition: o for tp, o in snap.offsets.items() if tp.topic == source}
            )
            check_order(first, last, start_option="--from-snapshot", end_option="--until")
        if create_target:
            await create_like(transport, source, target)
        registry = reader = None
        if reader_subject is not None:
            registry = registry_client()
            reader = (await registry.get_latest_version(reader_subject)).schema
        try:
            async with audit_hook(
                audit, audit_topic, transport, active=True, notice=err.print
            ) as hook:
                replayer = RangeReplayer(transport, registry=registry, audit=hook)
                rid = replay_id or derive_replay_id(source, target, first, last)
                started.append(rid)
                err.print(f"replay id {escape(rid)}")
                with progress_bar("replaying", not as_json) as on_progress:
                    result = await replayer.replay(
                        source,
                        target=target,
                        start=first,
                        end=last,
                        replay_id=rid,
                        rate=rate,
                        reader_schema=reader,
                        on_progress=on_progress,
                    )
        finally:
            if registry is not None:
                await registry.aclose()
        return result.to_dict()

    try:
        result = run(go)
    except KeyboardInterrupt:
        if not started:
            raise
        command = resume_command(source, target, started[0], rate)
        err.print(f"interrupted; resume with: {escape(command)}")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    if as_json:
        emit_json(result)
    elif result["already_done"]:
        err.print(
            f"replay {result['replay_id']} of this source, target and range already finished "
            f"({result['written']} records): nothing to do; pass a new --replay-id to replay "
            "it again on purpose"
        )
    else:
        err.print(f"replayed {result['written']} records {result['source']} -> {result['target']}")


__all__ = ["app"]
