"""The package root's public surface is deliberate: pinned, importable, one error root.

``EXPORTED`` is the root's ``__all__`` written out: adding or dropping a public name
means editing this list too, so a change of the public surface is always a visible,
reviewed diff (and a CHANGELOG line).
"""

from __future__ import annotations

import types

import streaming

EXPORTED = [
    "Action",
    "AuditContext",
    "AuditEvent",
    "AuditEventType",
    "AuditLogger",
    "AuthenticationError",
    "AvroDeserializer",
    "AvroSerializer",
    "BatchFailure",
    "BrokerUnavailableError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CommitFencedError",
    "CompactedTable",
    "ConfigError",
    "ConsumerOptions",
    "Database",
    "DatabaseConnectionManager",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DeserializationError",
    "DevStackError",
    "DlqRedriver",
    "Environment",
    "Event",
    "EventBus",
    "EventConsumer",
    "EventMetadata",
    "EventProducer",
    "ExecutionContext",
    "GroupNotEmptyError",
    "InMemoryEventBus",
    "InMemorySchemaRegistryClient",
    "JWTManager",
    "KafkaEventBus",
    "Message",
    "Money",
    "OffsetManager",
    "OrderCancelled",
    "OrderFilled",
    "OrderPlaced",
    "PartialSendError",
    "PermissionDenied",
    "PositionChanged",
    "RangeReplayer",
    "ResourceType",
    "RetryPolicy",
    "RoleBasedAccessControl",
    "SchemaRegistryClient",
    "SecureHasher",
    "SecurityError",
    "SerializationContext",
    "SerializationError",
    "Settings",
    "StateStore",
    "StreamingError",
    "TopicError",
    "TransactionError",
    "TransactionManager",
    "TransportError",
    "UserRegistered",
    "__version__",
    "audit_context",
    "configure_logging",
    "create_event_bus",
    "execution_context",
    "get_logger",
    "get_settings",
    "load_settings",
    "reload_settings",
    "require_permission",
    "with_audit_context",
    "with_execution_context",
    # the seed's front door: decorators and the event bus (issue 13, seedctx)
    "DeadLetter",
    "EventBusHealth",
    "EventBusMetrics",
    "EventHandler",
    "set_default_audit_logger",
    "with_performance_monitoring",
    "with_retry",
]


def test_all_is_exactly_the_pinned_surface() -> None:
    assert sorted(streaming.__all__) == sorted(EXPORTED)
    assert len(EXPORTED) == len(set(EXPORTED))


def test_all_is_unique() -> None:
    assert len(streaming.__all__) == len(set(streaming.__all__))  # order: ruff's RUF022


def test_every_exported_name_resolves() -> None:
    missing = [name for name in streaming.__all__ if not hasattr(streaming, name)]
    assert missing == []


def test_every_public_attribute_is_exported() -> None:
    """Nothing reaches the root by accident: each public non-module name is in ``__all__``."""
    stray = [
        name
        for name, value in vars(streaming).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in streaming.__all__
    ]
    assert stray == []


def test_exported_classes_claim_a_public_module() -> None:
    for name in streaming.__all__:
        obj = getattr(streaming, name)
        module = getattr(obj, "__module__", "streaming")
        if isinstance(module, str) and module.startswith("streaming"):
            assert not any(part.startswith("_") for part in module.split(".")), name


def test_errors_share_one_root() -> None:
    for name in streaming.__all__:
        obj = getattr(streaming, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, streaming.StreamingError), name
