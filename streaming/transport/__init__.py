"""Transport boundary: protocols and record values; implementations in submodules."""

from streaming.transport.base import (
    AdminTransport,
    ClusterInfo,
    ConsumerTransport,
    GroupInfo,
    Headers,
    IsolationLevel,
    OutgoingRecord,
    ProducerTransport,
    Record,
    RecordMetadata,
    TopicPartition,
    TopicSpec,
    TransportFactory,
)

__all__ = [
    "AdminTransport",
    "ClusterInfo",
    "ConsumerTransport",
    "GroupInfo",
    "Headers",
    "IsolationLevel",
    "OutgoingRecord",
    "ProducerTransport",
    "Record",
    "RecordMetadata",
    "TopicPartition",
    "TopicSpec",
    "TransportFactory",
]
