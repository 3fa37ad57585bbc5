"""``streaming replay``: copy a range of a topic into another topic, keeping keys,
headers and order (:class:`streaming.replay.RangeReplayer`); resumable by replay id."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from streaming.audit.logger import DEFAULT_AUDIT_TOPIC
from streaming.cli._common import (
    AuditOpt,
    AuditTopicOpt,
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
from streaming.replay import Bound, RangeReplayer, SnapshotStore
from streaming.replay.audit import audit_hook
from streaming.replay.plan import parse_datetime, to_epoch_ms

app = group("Replay a range of a topic into another topic.", no_args_is_help=False)


def _bound(text: str | None, default: Bound) -> Bound:
    """``earliest``/``latest``, an offset, or an ISO-8601 time."""
    if text is None:
        return default
    if text in ("earliest", "latest"):
        return Bound.earliest() if text == "earliest" else Bound.latest()
    if text.isdigit():
        return Bound.at_offset(int(text))
    return Bound.at_time(to_epoch_ms(parse_datetime(text)))


@app.callback(invoke_without_command=True)
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
    """Copy a range of --topic into --to with keys, headers and order, adding x-replay-id."""
    transport = kafka_transport()

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
            registry = registry_client()
            reader = (await registry.get_latest_version(reader_subject)).schema
        try:
            async with audit_hook(
                audit, audit_topic, transport, active=True, notice=err.print
            ) as hook:
                replayer = RangeReplayer(transport, registry=registry, audit=hook)
                rid = replay_id or uuid.uuid4().hex
                err.print(f"replay id {rid} (resume with --replay-id {rid})")
                with progress_bar("replaying", not as_json) as on_progress:
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

    result = run(go)
    if as_json:
        emit_json(result)
    elif result["already_done"]:
        err.print(f"replay {result['replay_id']} had already finished: nothing to do")
    else:
        err.print(f"replayed {result['written']} records {result['source']} -> {result['target']}")


__all__ = ["app"]
