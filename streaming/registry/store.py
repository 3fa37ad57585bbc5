"""Where registry state lives: the store protocol and an in-memory store.

A store owns a :class:`RegistryState` and appends ``_schemas`` records. Writes go through
:meth:`SchemaStore.write` with a *planner*: an async function that looks at the current
state and returns the records to append plus the answer for the caller (async because a
compatibility check runs on a worker thread; it must not change anything itself). The store runs
the planner only when its state is known to be complete, so a decision such as "the next
id is 42" is never made on a stale view (see :mod:`streaming.registry.kafka_store`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from streaming.registry.records import StoreRecord, encode
from streaming.registry.state import RegistryState

T = TypeVar("T")

Planner = Callable[[RegistryState], Awaitable[tuple[Sequence[StoreRecord], T]]]


class SchemaStore(Protocol):
    """Durable, ordered storage of registry records plus the state they fold into."""

    @property
    def state(self) -> RegistryState: ...

    @property
    def ready(self) -> bool:
        """True once the state reflects everything stored before :meth:`start`."""
        ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until ready; raise :class:`~streaming.registry.errors.NotReady` on timeout."""
        ...

    async def write(self, planner: Planner[T]) -> T:
        """Run ``planner`` on a complete state, append its records, return its answer."""
        ...


class InMemorySchemaStore:
    """A store that keeps the encoded records in a list: for unit tests and embedding.

    Records are encoded and decoded exactly as on Kafka, so :meth:`replay` rebuilds the
    state the way a restarted Kafka-backed registry would.
    """

    def __init__(self) -> None:
        self._state = RegistryState()
        self._lock = asyncio.Lock()
        self.log: list[tuple[bytes, bytes | None]] = []

    @property
    def state(self) -> RegistryState:
        return self._state

    @property
    def ready(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def wait_ready(self, timeout_s: float) -> None:
        return None

    async def write(self, planner: Planner[T]) -> T:
        async with self._lock:
            records, result = await planner(self._state)
            for record in records:
                key, value = encode(record)
                self.log.append((key, value))
                self._state.apply_raw(key, value)
            return result

    def replay(self) -> RegistryState:
        """A fresh state folded from the stored records (what a restart would see)."""
        fresh = RegistryState()
        for key, value in self.log:
            fresh.apply_raw(key, value)
        return fresh


__all__ = ["InMemorySchemaStore", "Planner", "SchemaStore"]
