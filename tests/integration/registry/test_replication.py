"""On three brokers, internal topics are replicated and the registry outlives one broker.

One three-broker stack (``DevStack``, like ``streaming dev up --brokers 3``, with its
registry) is shared by the module, in test order: first the topic layout is checked with
an independent client (confluent-kafka's admin), then the broker leading ``_schemas`` is
SIGKILLed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from streaming.devstack import DevStack, StackState
from streaming.devstack.procs import pid_alive
from streaming.testing import StackEndpoints, eventually
from tests.integration.registry.conftest import registry_process

ENSURE = [sys.executable, "-m", "streaming", "topics", "ensure", "--topic", "orders"]
REGISTER_BOUND_S = 60.0  # a registration while the `_schemas` leader fails over


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, streaming_stack: StackEndpoints
) -> Iterator[StackState]:
    with pytest.MonkeyPatch.context() as env:
        env.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
        env.delenv("REGISTRY_URL", raising=False)
        env.setenv("DATABASE_URL", streaming_stack.database_url)  # reuse the session's
        stack = DevStack(tmp_path_factory.mktemp("three-brokers"))
        try:
            state = stack.up(brokers=3, registry=True)
            yield state
        finally:
            stack.down()


def bootstrap(state: StackState) -> str:
    assert state.kafka is not None
    return state.kafka.address


def admin(state: StackState) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap(state)})


def layout(state: StackState, topics: list[str]) -> dict[str, tuple[set[int], str]]:
    """topic -> (replica counts over its partitions, min.insync.replicas), as Kafka says."""
    client = admin(state)
    metadata = client.list_topics(timeout=30)
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in topics]
    configs = {
        resource.name: future.result(timeout=30)
        for resource, future in client.describe_configs(resources).items()
    }
    return {
        name: (
            {len(p.replicas) for p in metadata.topics[name].partitions.values()},
            configs[name]["min.insync.replicas"].value,
        )
        for name in topics
    }


def test_internal_retry_and_dlq_topics_get_three_replicas_and_min_isr_two(
    cluster: StackState,
) -> None:
    ensured = subprocess.run(
        [*ENSURE, "--group", "risk", "--attempts", "2", "--json"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap(cluster)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ensured.returncode == 0, ensured.stderr
    created = set(json.loads(ensured.stdout)["created"])
    ours = {"orders", "orders.risk.retry.1", "orders.risk.dlq"}
    # `dev up` already made the topics the product's commands need; ensure made the rest
    internal = {"_streaming.offset-snapshots", "_streaming.audit-checkpoints", "audit.events"}
    assert ours <= created <= ours | internal
    expected = ours | internal | {"_schemas"}
    found = layout(cluster, sorted(expected))
    assert found == {name: ({3}, "2") for name in expected}


def test_the_flag_and_the_setting_choose_another_replication_factor(
    cluster: StackState, tmp_path: Path
) -> None:
    with registry_process(
        bootstrap(cluster), "_schemas-two", tmp_path / "r.log", "--replication-factor", "2"
    ):
        pass
    ensured = subprocess.run(
        [*ENSURE[:-1], "payments", "--no-internal"],
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap(cluster),
            "KAFKA_DEFAULT_REPLICATION_FACTOR": "2",
            "KAFKA_MIN_INSYNC_REPLICAS": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ensured.returncode == 0, ensured.stderr
    assert layout(cluster, ["_schemas-two", "payments"]) == {
        "_schemas-two": ({2}, "2"),
        "payments": ({2}, "1"),
    }


async def test_registry_reads_and_registers_with_the_schemas_leader_killed(
    cluster: StackState, tmp_path: Path
) -> None:
    assert cluster.registry is not None and cluster.kafka is not None
    url = cluster.registry.address
    schema = {"type": "record", "name": "Before", "fields": [{"name": "a", "type": "string"}]}
    async with httpx.AsyncClient(base_url=url, timeout=REGISTER_BOUND_S * 2) as client:
        first = await client.post(
            "/subjects/before-value/versions", json={"schema": json.dumps(schema)}
        )
        assert first.status_code == 200, first.text

        # the broker leading _schemas, by its port in the stack's bootstrap list
        metadata = admin(cluster).list_topics(timeout=30)
        leader = metadata.topics["_schemas"].partitions[0].leader
        port = metadata.brokers[leader].port
        ports = [int(a.rpartition(":")[2]) for a in cluster.kafka.address.split(",")]
        victim = cluster.kafka.pids[ports.index(port)]
        os.kill(victim, signal.SIGKILL)
        await eventually(
            lambda: not pid_alive(victim), timeout_s=10, what="the killed broker to exit"
        )
        loop = asyncio.get_running_loop()

        read = await client.get("/subjects/before-value/versions/1")
        assert read.status_code == 200, read.text
        assert read.json()["id"] == first.json()["id"]

        schema["name"] = "After"
        started = loop.time()
        second = await client.post(
            "/subjects/after-value/versions", json={"schema": json.dumps(schema)}
        )
        took = loop.time() - started
        assert second.status_code == 200, second.text
        assert second.json()["id"] != first.json()["id"]
        assert took < REGISTER_BOUND_S, f"registration took {took:.1f}s"

    # a registry started now, with one of three brokers gone, starts and sees both
    with registry_process(bootstrap(cluster), "_schemas", tmp_path / "late.log") as late:
        async with httpx.AsyncClient(base_url=late.url, timeout=30) as client:
            subjects = (await client.get("/subjects")).json()
    # (with the audit topic present the registry also holds the AuditEvent schema it
    # publishes its own changes with)
    assert {"after-value", "before-value"} <= set(subjects)
