"""Validated settings take effect: the bus type picks the bus, the seed's audit switch
turns the sink's PII encryption on."""

from __future__ import annotations

import pytest

from connectors.audit_sink.config import AuditSinkSettings
from streaming.clients.bus import InMemoryEventBus, KafkaEventBus, create_event_bus
from streaming.config import LoggingSettings, load_settings
from streaming.errors import ConfigError
from streaming.serde import InMemorySchemaRegistryClient


async def test_messaging_event_bus_type_selects_the_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESSAGING_EVENT_BUS_TYPE", "in_memory")
    assert isinstance(create_event_bus(load_settings()), InMemoryEventBus)
    monkeypatch.setenv("MESSAGING_EVENT_BUS_TYPE", "kafka")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    bus = create_event_bus(load_settings(), registry=InMemorySchemaRegistryClient())
    assert isinstance(bus, KafkaEventBus)


def test_audit_encryption_follows_the_seed_switch() -> None:
    assert AuditSinkSettings().encrypt_pii(LoggingSettings(audit_encryption_enabled=True))
    assert not AuditSinkSettings().encrypt_pii(LoggingSettings(audit_encryption_enabled=False))
    assert AuditSinkSettings(pii_enabled=True).encrypt_pii(
        LoggingSettings(audit_encryption_enabled=False)
    )


def test_the_sink_cannot_switch_off_what_the_seed_switch_requires() -> None:
    with pytest.raises(ConfigError, match="AUDIT_PII_ENABLED"):
        AuditSinkSettings(pii_enabled=False).encrypt_pii(LoggingSettings())


def test_the_default_reads_log_audit_encryption_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_AUDIT_ENCRYPTION_ENABLED", "false")
    assert not AuditSinkSettings().encrypt_pii()
    monkeypatch.setenv("LOG_AUDIT_ENCRYPTION_ENABLED", "true")
    assert AuditSinkSettings().encrypt_pii()
