"""Testing support shipped for users: polling with a deadline, in-memory clients, a real stack.

The pytest plugin (:mod:`streaming.testing.plugin`) is registered through the
``pytest11`` entry point; its fixtures (in-memory transport, registry, producer and
consumer; real Kafka, PostgreSQL and registry) start nothing until a test asks for them.
:func:`eventually` is how a test waits: poll a condition against a deadline, never sleep.
"""

from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.testing.stack import StackEndpoints, ensure_stack
from streaming.testing.waiting import eventually, eventually_sync
from streaming.transport.memory import InMemoryTransport

__all__ = [
    "InMemorySchemaRegistryClient",
    "InMemoryTransport",
    "StackEndpoints",
    "ensure_stack",
    "eventually",
    "eventually_sync",
]
