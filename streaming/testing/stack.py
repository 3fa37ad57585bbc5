"""Find or start the services a test session needs."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streaming.devstack import DevStack


@dataclass(frozen=True)
class StackEndpoints:
    """Where the session's Kafka, PostgreSQL and registry are, and how to stop them."""

    bootstrap_servers: str
    database_url: str
    registry_url: str | None
    stop: Callable[[], None]


def _noop() -> None:
    return None


def ensure_stack(state_dir: Path | str | None = None, *, registry: bool = True) -> StackEndpoints:
    """Use ``KAFKA_BOOTSTRAP_SERVERS``/``DATABASE_URL`` when both are set, else the devstack.

    A stack this call started is stopped by ``stop()``; one that was already running
    (``streaming dev up``) is reused and left alone. The canonical variables are exported
    so subprocesses (the CLI under test) find the same services.
    """
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    if bootstrap and database:
        return StackEndpoints(bootstrap, database, os.environ.get("REGISTRY_URL"), _noop)
    stack = DevStack(state_dir or os.environ.get("STREAMING_STATE_DIR", ".streaming"))
    already = stack.load()
    was_running = already is not None and all(s.alive for s in already.services())
    state = stack.up(registry=registry)
    env = state.env()
    os.environ.update(env)

    def stop() -> None:
        stack.down()

    keep = was_running or os.environ.get("STREAMING_KEEP_STACK") == "1"
    return StackEndpoints(
        env["KAFKA_BOOTSTRAP_SERVERS"],
        env["DATABASE_URL"],
        env.get("REGISTRY_URL"),
        _noop if keep else stop,
    )
