"""``streaming produce``: JSON lines from stdin (or ``--fake N``) sent as typed Avro.

The checking and windowed sending are :mod:`streaming.clients.bulk`'s; this module
parses the options and prints the outcome.
"""

from __future__ import annotations

import random
import sys
from typing import Annotated, Any

import typer
from rich.progress import Progress

from streaming.cli._common import (
    BootstrapOpt,
    ExitCode,
    JsonOpt,
    RegistryOpt,
    emit_json,
    err,
    fail,
    kafka_settings,
    kafka_transport,
    registry_client,
    run,
)
from streaming.clients.bulk import (
    DEFAULT_WINDOW_MB,
    BadInputError,
    Sent,
    numbered,
    parse_lines,
    send_checked,
)
from streaming.clients.producer import EventProducer
from streaming.clients.topics import topic_exists
from streaming.errors import ConfigError
from streaming.events import EVENT_TYPES, Event
from streaming.events.fake import fake_events


def _event_type(name: str) -> type[Event]:
    found = EVENT_TYPES.by_event_type(name) or EVENT_TYPES.get(name)
    if found is None:
        known = ", ".join(sorted(c.type_name() for c in EVENT_TYPES.values()))
        raise fail(f"unknown event type {name!r}; use one of: {known}", ExitCode.USAGE)
    return found


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
    settings = kafka_settings(bootstrap_servers)
    if fake is not None:
        label, items = "--fake event", numbered(fake_events(cls, fake, rng=random.Random(seed)))
    else:
        label, items = "stdin line", parse_lines(cls, sys.stdin)

    async def work() -> Sent:
        if not await topic_exists(kafka_transport(settings), topic):
            # before anything is encoded or registered: one line, at once
            raise fail(
                f"topic {topic!r} does not exist; create it first "
                f"(streaming topics ensure --topic {topic})"
            )
        registry = registry_client(registry_url)
        try:
            async with EventProducer(kafka_transport(settings), registry) as producer:
                with Progress(console=err, transient=True, disable=as_json) as progress:
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

    done = run(work)
    if as_json:
        doc: dict[str, Any] = {"topic": topic, "sent": done.sent, "records": done.records}
        if done.error is not None:
            doc.update(error=done.explain(label), first_unsent=done.first_unsent)
        emit_json(doc)
    if done.error is None:
        if not as_json:
            err.print(f"[green]sent[/green] {done.sent} {cls.type_name()} event(s) to {topic}")
        return
    bad_input = isinstance(done.error, BadInputError | ConfigError)
    raise fail(done.explain(label), ExitCode.USAGE if bad_input else ExitCode.FAILED)


__all__ = ["produce"]
