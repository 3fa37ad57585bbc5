"""Fault-suite fixtures: one three-broker cluster (with its registry) per session.

``make test`` runs the short version; ``make faults`` sets ``FAULTS_FULL=1`` for every
fault and larger sizes. Sizes are environment variables (see :class:`Sizes`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from streaming.devstack import DevStack
from streaming.testing import StackEndpoints
from streaming.transport import TopicSpec
from tests.faults.cluster import Cluster

FULL = os.environ.get("FAULTS_FULL") == "1"


def faults(short: list[str], full: list[str]) -> list[str]:
    """The parameters to run: all of ``full`` under ``make faults``, else ``short``."""
    return full if FULL else short


def _int(name: str, short: int, full: int) -> int:
    return int(os.environ.get(name, full if FULL else short))


@dataclass(frozen=True)
class Sizes:
    """Workload sizes; each can be overridden by the environment variable named."""

    produce_s: int = _int("FAULTS_PRODUCE_S", 12, 30)  # production around a broker fault
    group_events: int = _int("FAULTS_GROUP_EVENTS", 6000, 20000)  # per group-member fault
    pause_s: int = _int("FAULTS_PAUSE_S", 30, 30)  # SIGSTOP of a broker
    registrations: int = _int("FAULTS_REGISTRATIONS", 120, 400)  # per registry fault
    fuzz_examples: int = _int("FAULTS_FUZZ_EXAMPLES", 1000, 5000)  # deserializer inputs
    consumer_fuzz_examples: int = _int("FAULTS_CONSUMER_FUZZ_EXAMPLES", 20, 100)  # batches
    api_examples: int = _int("FAULTS_API_EXAMPLES", 15, 100)  # schemathesis, per operation


SIZES = Sizes()


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, streaming_stack: StackEndpoints
) -> Iterator[Cluster]:
    """``streaming dev up --brokers 3`` (with a registry) in a state dir of its own."""
    stack = DevStack(tmp_path_factory.mktemp("faults") / "stack")
    hidden = {
        k: os.environ.pop(k) for k in ("KAFKA_BOOTSTRAP_SERVERS", "REGISTRY_URL") if k in os.environ
    }
    database = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = streaming_stack.database_url  # the session's, not a new one
    try:
        state = stack.up(brokers=3, registry=True)
    finally:
        os.environ.update(hidden)
        if database is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = database
    cluster = Cluster(stack, state)
    try:
        yield cluster
    finally:
        cluster.close()
        stack.down()


@pytest.fixture
def healthy(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with all three brokers in sync before the test and healed after it."""
    cluster.heal()
    try:
        yield cluster
    finally:
        cluster.heal()


@pytest_asyncio.fixture
async def fault_topic(healthy: Cluster) -> AsyncIterator[str]:
    """A fresh six-partition topic, RF=3, ``min.insync.replicas=2``."""
    name = f"faults-{uuid.uuid4().hex[:10]}"
    admin = healthy.transport().admin()
    await admin.start()
    try:
        await admin.create_topics([TopicSpec(name, 6, 3, {"min.insync.replicas": "2"})])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.stop()


def subprocess_env(cluster: Cluster) -> dict[str, str]:
    """Environment for members and registries we start (they import this worktree)."""
    return {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[2]),
        "LOG_LEVEL": "WARNING",
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "REGISTRY_URL": cluster.registry_url,
    }


@pytest.fixture
def member_env(cluster: Cluster) -> dict[str, str]:
    return subprocess_env(cluster)
