"""tradesense-streaming: the Kafka event backbone of a trading platform.

The package root re-exports the small public surface; implementation lives in modules.
"""

from streaming.audit.logger import AuditLogger
from streaming.clients.bus import (
    DeadLetter,
    EventBus,
    EventBusHealth,
    EventBusMetrics,
    EventHandler,
    InMemoryEventBus,
    KafkaEventBus,
    create_event_bus,
)
from streaming.clients.consumer import BatchFailure, ConsumerOptions, EventConsumer, Message
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy
from streaming.config import Environment, Settings, get_settings, load_settings, reload_settings
from streaming.context import AuditContext, ExecutionContext, audit_context, execution_context
from streaming.db import CircuitBreaker, Database, DatabaseConnectionManager, TransactionManager
from streaming.decorators import (
    set_default_audit_logger,
    with_audit_context,
    with_execution_context,
    with_performance_monitoring,
    with_retry,
)
from streaming.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    CircuitOpenError,
    CommitFencedError,
    ConfigError,
    DatabaseError,
    DatabaseUnavailableError,
    DevStackError,
    GroupNotEmptyError,
    PartialSendError,
    PermissionDenied,
    SecurityError,
    SerializationError,
    StreamingError,
    TopicError,
    TransactionError,
    TransportError,
)
from streaming.events import (
    AuditEvent,
    AuditEventType,
    Event,
    EventMetadata,
    Money,
    OrderCancelled,
    OrderFilled,
    OrderPlaced,
    PositionChanged,
    UserRegistered,
)
from streaming.logging import configure_logging, get_logger
from streaming.replay import CompactedTable, DlqRedriver, OffsetManager, RangeReplayer, StateStore
from streaming.security import (
    Action,
    JWTManager,
    ResourceType,
    RoleBasedAccessControl,
    SecureHasher,
    require_permission,
)
from streaming.serde import (
    AvroDeserializer,
    AvroSerializer,
    DeserializationError,
    InMemorySchemaRegistryClient,
    SchemaRegistryClient,
    SerializationContext,
)

__version__ = "0.1.0"

__all__ = [
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
]
__all__ += [  # the seed's front door: decorators and the event bus (issue 13, seedctx)
    "DeadLetter",
    "EventBusHealth",
    "EventBusMetrics",
    "EventHandler",
    "set_default_audit_logger",
    "with_performance_monitoring",
    "with_retry",
]
