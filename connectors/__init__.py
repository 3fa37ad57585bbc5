"""Connectors that move data between Kafka and other systems (audit sink, outbox relay)."""
