"""What the commands that show personal data share: the ``--audit`` option, recording
the access before anything is shown, and a revealer that holds the KEK."""

from __future__ import annotations

from typing import Annotated

import typer

from streaming.cli._common import err, kafka_transport
from streaming.config import KafkaSettings, SecuritySettings, read_settings
from streaming.privacy.keylog import SubjectKeyLog
from streaming.privacy.reveal import FieldRevealer
from streaming.replay.audit import ReplayAuditEvent, audit_hook, current_actor
from streaming.transport.base import TransportFactory

AuditModeOpt = Annotated[
    str,
    typer.Option(
        "--audit",
        help="Where the access is recorded: chain (the audit topic), log, or auto (chain when "
        "REGISTRY_URL is set).",
    ),
]


async def record_access(
    mode: str, topic: str, transport: TransportFactory, subject: str, action: str
) -> None:
    """Record an operator's read of personal data as DATA_ACCESSED (before it is shown)."""
    async with audit_hook(mode, topic, transport, active=True, notice=err.print) as hook:
        await hook(
            ReplayAuditEvent(
                event_type="DATA_ACCESSED",
                action=action,
                actor=current_actor(),
                resource_type="subject" if action == "audit.reveal" else "topic",
                resource_id=subject,
            )
        )


async def decrypting_revealer(
    kafka: KafkaSettings, topic: str, *, audit_mode: str = "auto", audit_topic: str | None = None
) -> FieldRevealer:
    """A revealer holding the KEK (``SECURITY_PII_KEK``) for ``consume --decrypt``; the
    access to ``topic`` is recorded first, in the audit sink's first topic (AUDIT_TOPICS)."""
    if audit_topic is None:
        from connectors.audit_sink.config import AuditSinkSettings

        audit_topic = read_settings(AuditSinkSettings).topic_list[0]
    transport = kafka_transport(kafka)
    keys = SubjectKeyLog.from_settings(transport, read_settings(SecuritySettings), require_kek=True)
    await record_access(audit_mode, audit_topic, transport, topic, "consume.decrypt")
    return FieldRevealer(keys)


__all__ = ["AuditModeOpt", "decrypting_revealer", "record_access"]
