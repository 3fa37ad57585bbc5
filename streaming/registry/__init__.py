"""Our Confluent-compatible schema registry service (Avro), stored in a ``_schemas`` topic.

Layers, top to bottom: :mod:`.wire` (one send per response) -> :mod:`.fast` (cached hot
answers) -> :mod:`.app` (HTTP, Starlette) -> :mod:`.service` (Confluent
semantics) -> :mod:`.store` / :mod:`.kafka_store` (records, fencing) -> :mod:`.state`
(pure fold of ``_schemas`` records). :mod:`.server` runs it; :mod:`.cli` is
``streaming registry``.
"""

from streaming.registry.app import Authenticator, Authorizer, create_app
from streaming.registry.audit import (
    AuditGate,
    AuditRecord,
    RegistryAuditHook,
    chain_hook,
    log_registry_change,
)
from streaming.registry.errors import RegistryError
from streaming.registry.kafka_store import KafkaSchemaStore
from streaming.registry.model import CompatibilityLevel, Mode, Reference, SchemaVersion
from streaming.registry.server import RegistryServer, ServerSettings, start_registry_in_background
from streaming.registry.service import RegistryService
from streaming.registry.state import RegistryState
from streaming.registry.store import InMemorySchemaStore, SchemaStore

__all__ = [
    "AuditGate",
    "AuditRecord",
    "Authenticator",
    "Authorizer",
    "CompatibilityLevel",
    "InMemorySchemaStore",
    "KafkaSchemaStore",
    "Mode",
    "Reference",
    "RegistryAuditHook",
    "RegistryError",
    "RegistryServer",
    "RegistryService",
    "RegistryState",
    "SchemaStore",
    "SchemaVersion",
    "ServerSettings",
    "chain_hook",
    "create_app",
    "log_registry_change",
    "start_registry_in_background",
]
