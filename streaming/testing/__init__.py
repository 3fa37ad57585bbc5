"""Testing support shipped for users: in-memory Kafka and registry, real-stack fixtures.

The pytest plugin (:mod:`streaming.testing.plugin`) is registered through the
``pytest11`` entry point; its fixtures start nothing until a test asks for them.
"""

from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.testing.stack import StackEndpoints, ensure_stack
from streaming.transport.memory import InMemoryTransport

__all__ = ["InMemorySchemaRegistryClient", "InMemoryTransport", "StackEndpoints", "ensure_stack"]
