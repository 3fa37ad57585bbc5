"""``streaming dlq list|show|redrive``: a consumer group's dead-letter topic.

``list`` and ``show`` only read (no group, nothing committed); ``redrive`` moves records
back with :class:`streaming.replay.DlqRedriver`, audited like every operator action.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import typer

from streaming.audit.logger import DEFAULT_AUDIT_TOPIC
from streaming.cli._common import (
    AuditOpt,
    AuditTopicOpt,
    BootstrapOpt,
    JsonOpt,
    RateOpt,
    RegistryOpt,
    emit_json,
    err,
    fail,
    group,
    iso_ms,
    kafka_settings,
    kafka_transport,
    out,
    print_table,
    progress_bar,
    registry_client,
    run,
)
from streaming.cli.consume import describe
from streaming.clients.reader import read_topic
from streaming.clients.retry import dlq_topic, parse_failure_headers
from streaming.config import KafkaSettings
from streaming.core.headers import H_EXCEPTION_STACK
from streaming.events import EventDeserializer
from streaming.replay import DlqRedriver, RedriveFilter
from streaming.replay.audit import audit_hook
from streaming.replay.bounds import parse_spans
from streaming.replay.plan import parse_datetime, to_epoch_ms
from streaming.transport.base import Record

app = group("Dead-letter topics: inspect and redrive.")

TopicOpt = Annotated[str, typer.Option("--topic", "-t", help="The source (main) topic.")]
GroupOpt = Annotated[str, typer.Option("--group", "-g", help="The consumer group.")]


async def _dlq_records(settings: KafkaSettings, topic: str, group: str) -> list[Record]:
    found: list[Record] = []

    async def keep(record: Record) -> None:
        found.append(record)

    await read_topic(
        kafka_transport(settings),
        dlq_topic(topic, group),
        from_beginning=True,
        max_records=None,
        idle_timeout_s=10.0,
        on_record=keep,
        to_end=True,
    )
    return found


@app.command("list")
def dlq_list(
    topic: TopicOpt,
    group: GroupOpt,
    bootstrap_servers: BootstrapOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts by exception type with the oldest and newest failure time."""
    settings = kafka_settings(bootstrap_servers)
    records = run(lambda: _dlq_records(settings, topic, group))
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
            k: {**v, "oldest": iso_ms(v["oldest_ms"]), "newest": iso_ms(v["newest_ms"])}
            for k, v in sorted(summary.items())
        },
    }
    if as_json:
        emit_json(doc)
        return
    print_table(
        ("exception type", "count", "oldest", "newest"),
        (
            (kind, str(row["count"]), row["oldest"], row["newest"])
            for kind, row in doc["by_exception_type"].items()
        ),
        title=doc["dlq_topic"],
    )
    err.print(f"{len(records)} record(s) in {doc['dlq_topic']}")


@app.command("show")
def dlq_show(
    topic: TopicOpt,
    group: GroupOpt,
    partition: Annotated[int | None, typer.Option(help="DLQ partition of the record.")] = None,
    offset: Annotated[
        int | None, typer.Option(help="DLQ offset (default: the oldest record).")
    ] = None,
    bootstrap_servers: BootstrapOpt = None,
    registry_url: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One DLQ record in full: diagnostic headers, stack, raw bytes, decoded value if any."""
    settings = kafka_settings(bootstrap_servers)

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
        registry = registry_client(registry_url)
        try:
            doc = await describe(record, EventDeserializer(registry))
        finally:
            await registry.aclose()
        doc["raw_value_base64"] = (
            base64.b64encode(record.value).decode() if record.value is not None else None
        )
        return doc

    doc = run(work)
    if doc is None:
        raise fail(
            f"no matching record in {dlq_topic(topic, group)} (check --partition/--offset "
            "with 'dlq list')"
        )
    if as_json:
        emit_json(doc)
        return
    headers = dict(doc["headers"])
    stack = headers.pop(H_EXCEPTION_STACK, "")
    out.print(f"[bold]{doc['topic']}[{doc['partition']}]@{doc['offset']}[/bold]")
    out.print_json(json.dumps(headers))
    out.print(stack or "(no stack)", highlight=False)
    out.print_json(json.dumps({"value": doc.get("value"), "error": doc.get("error")}))


@app.command("redrive")
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
        int, typer.Option(min=0, help="Park records already redriven this often.")
    ] = 3,
    rate: RateOpt = None,
    execute: Annotated[
        bool,
        typer.Option("--execute/--dry-run", help="Move records, or only count them (default)."),
    ] = False,
    audit: AuditOpt = "auto",
    audit_topic: AuditTopicOpt = DEFAULT_AUDIT_TOPIC,
    as_json: JsonOpt = False,
) -> None:
    """Move DLQ records back; repeats are no-ops, repeat offenders go to <topic>.<group>.parking."""
    transport = kafka_transport()
    flt = RedriveFilter(
        exception_types=tuple(exception_type or ()),
        since_ms=to_epoch_ms(parse_datetime(since)) if since else None,
        until_ms=to_epoch_ms(parse_datetime(until)) if until else None,
        offsets=parse_spans(offsets, "--offsets") if offsets else None,
    )

    async def go() -> dict[str, Any]:
        async with audit_hook(
            audit, audit_topic, transport, active=execute, notice=err.print
        ) as hook:
            redriver = DlqRedriver(transport, topic, group, max_redrives=max_redrives, audit=hook)
            with progress_bar("redriving" if execute else "scanning", not as_json) as on_progress:
                result = await redriver.redrive(
                    flt, destination=to, dry_run=not execute, rate=rate, on_progress=on_progress
                )
        return result.to_dict()

    result = run(go)
    if as_json:
        emit_json(result)
        return
    verb = "redrove" if execute else "would redrive"
    err.print(
        f"{verb} {result['redriven']} to {result['destination']}, parked {result['parked']} in "
        f"{result['parking']}; {result['already_moved']} already moved, "
        f"{result['filtered_out']} filtered out" + ("" if execute else " (dry run: add --execute)")
    )


__all__ = ["app"]
