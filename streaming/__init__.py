"""tradesense-streaming: the Kafka event backbone of a trading platform.

The package root re-exports the small public surface; implementation lives in modules.
"""

from streaming.config import Environment, Settings, load_settings
from streaming.context import (
    AuditContext,
    ExecutionContext,
    audit_context,
    execution_context,
    with_audit_context,
    with_execution_context,
)
from streaming.db import CircuitBreaker, Database, TransactionManager
from streaming.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    CircuitOpenError,
    ConfigError,
    DatabaseError,
    DatabaseUnavailableError,
    DevStackError,
    PermissionDenied,
    SecurityError,
    SerializationError,
    StreamingError,
    TopicError,
    TransactionError,
    TransportError,
)
from streaming.logging import configure_logging, get_logger

__version__ = "0.1.0"

__all__ = [
    "AuditContext",
    "AuthenticationError",
    "BrokerUnavailableError",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigError",
    "Database",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DevStackError",
    "Environment",
    "ExecutionContext",
    "PermissionDenied",
    "SecurityError",
    "SerializationError",
    "Settings",
    "StreamingError",
    "TopicError",
    "TransactionError",
    "TransactionManager",
    "TransportError",
    "__version__",
    "audit_context",
    "configure_logging",
    "execution_context",
    "get_logger",
    "load_settings",
    "with_audit_context",
    "with_execution_context",
]
