"""Transactional outbox: write events with business data, relay them to Kafka."""

from connectors.outbox_relay.outbox import OutboxWriter, migrate_outbox
from connectors.outbox_relay.relay import OutboxRelay, RelayStats

__all__ = ["OutboxRelay", "OutboxWriter", "RelayStats", "migrate_outbox"]
