"""``streaming topics ensure``: create main, retry/DLQ topics and the topics the product's
own commands need (planning and creation are :mod:`streaming.clients.topics`')."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from streaming.cli._common import (
    BootstrapOpt,
    ExitCode,
    JsonOpt,
    emit_json,
    err,
    fail,
    group,
    kafka_settings,
    kafka_transport,
    out,
    run,
)
from streaming.clients.retry import RetryPolicy
from streaming.clients.topics import TopicDefaults, ensure_topics, plan_topics

app = group("Create main, retry/DLQ and internal topics.")


@app.command("ensure")
def topics_ensure(
    topic: Annotated[
        list[str] | None, typer.Option("--topic", "-t", help="Main topic (repeatable).")
    ] = None,
    group_: Annotated[
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
        bool,
        typer.Option(
            help="Also every topic the product's own commands need: the compacted "
            "_streaming.* topics and the audit events topic."
        ),
    ] = True,
    bootstrap_servers: BootstrapOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create missing main, retry, DLQ (and internal) topics; existing ones are kept."""
    if not topic and not internal:
        raise fail("nothing to create: give --topic, or leave --internal on", ExitCode.USAGE)
    settings = kafka_settings(bootstrap_servers)
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
        topic or (), groups=group_ or (), policy=policy, defaults=defaults, internal=internal
    )

    async def work() -> Any:
        admin = kafka_transport(settings).admin()
        await admin.start()
        try:
            return await ensure_topics(admin, specs)
        finally:
            await admin.stop()

    result = run(work)
    if as_json:
        emit_json(
            {
                "created": list(result.created),
                "existing": list(result.existing),
                "mismatched": {k: list(v) for k, v in result.mismatched.items()},
            }
        )
    else:
        for name in result.created:
            out.print(f"[green]created[/green] {name}")
        for name in result.existing:
            out.print(f"[dim]exists[/dim]  {name}")
        for name, (want, have) in result.mismatched.items():
            err.print(f"[yellow]warning:[/yellow] {name} has {have} partitions, wanted {want}")
    if result.mismatched:
        raise typer.Exit(ExitCode.FAILED)


__all__ = ["app"]
