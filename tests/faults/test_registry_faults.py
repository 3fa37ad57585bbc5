"""The schema registry under fire: an instance dies mid-registration, or the broker
leading ``_schemas`` does.

Every registration must eventually succeed (through a surviving instance), no id may be
given to two different schemas, and every acknowledged id must read back afterwards.
Registry instances are real ``streaming registry serve`` subprocesses; requests are
plain httpx.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.faults.cluster import Cluster
from tests.faults.conftest import SIZES, faults
from tests.faults.report import FaultResult, record
from tests.faults.workloads import RegistryProcess as Instance
from tests.faults.workloads import wait_for

CONTENT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
RECOVERY_BOUND_S = float(os.environ.get("FAULTS_REGISTRY_RECOVERY_S", "45"))
NAMES = {
    "instance-kill": "registry instance SIGKILL during concurrent registrations (2 instances)",
    "schemas-leader-kill": "broker SIGKILL: leader of _schemas, during registrations",
}


def _schema(i: int, tag: str) -> str:
    fields = [{"name": "id", "type": "string"}, {"name": f"f{i}", "type": "int"}]
    return json.dumps({"type": "record", "name": f"R{tag}{i}", "fields": fields})


@dataclass
class Registrations:
    """Concurrent registrations of distinct schemas, failing over between instances."""

    urls: list[str]
    count: int
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    ids: dict[int, int] = field(default_factory=dict)  # schema number -> id
    attempts: list[tuple[float, float, bool]] = field(default_factory=list)
    failovers: int = 0

    async def run(self, deadline_s: float, concurrency: int = 8) -> None:
        """Register all; whatever is not acknowledged ``deadline_s`` after the start is not."""
        gate = asyncio.Semaphore(concurrency)
        give_up = time.monotonic() + deadline_s
        async with httpx.AsyncClient(timeout=10) as http:
            await asyncio.gather(*(self._one(http, gate, i, give_up) for i in range(self.count)))

    async def _one(
        self, http: httpx.AsyncClient, gate: asyncio.Semaphore, i: int, give_up: float
    ) -> None:
        body = {"schema": _schema(i, self.tag)}
        subject = f"faults-{self.tag}-{i}-value"
        turn = i % len(self.urls)
        async with gate:
            while True:
                url = self.urls[turn % len(self.urls)]
                started = time.monotonic()
                try:
                    response = await http.post(
                        f"{url}/subjects/{subject}/versions", json=body, headers=CONTENT
                    )
                    ok = response.status_code == 200
                    assert ok or response.status_code >= 500, (
                        f"{subject}: {response.status_code} {response.text}"
                    )
                except httpx.HTTPError:
                    ok = False
                self.attempts.append((started, time.monotonic(), ok))
                if ok:
                    self.ids[i] = int(response.json()["id"])
                    return
                if time.monotonic() > give_up:
                    return  # counted as never acknowledged
                turn += 1  # fail over to the other instance
                self.failovers += 1
                await asyncio.sleep(0.2)  # backoff before the next attempt

    def recovery_s(self, fault_at: float) -> float | None:
        done = [end for started, end, ok in self.attempts if ok and started >= fault_at]
        return min(done) - fault_at if done else None

    async def read_back(self, url: str) -> int:
        """How many acknowledged ids the registry at ``url`` returns with their schema."""
        found = 0
        async with httpx.AsyncClient(timeout=10) as http:
            for i, schema_id in self.ids.items():
                response = await http.get(f"{url}/schemas/ids/{schema_id}")
                if response.status_code == 200:
                    name = json.loads(response.json()["schema"])["name"]
                    found += name == f"R{self.tag}{i}"
        return found


@pytest.mark.parametrize(
    "fault", faults(["instance-kill"], ["instance-kill", "schemas-leader-kill"])
)
async def test_registry_fault_assigns_no_id_twice_and_loses_no_registration(
    fault: str, healthy: Cluster, member_env: dict[str, str], tmp_path: Path
) -> None:
    cluster = healthy
    env = member_env  # the store topic's replication is the product default: min(3, brokers)
    instances: list[Instance] = []
    try:
        if fault == "instance-kill":
            topic = f"_schemas-faults-{uuid.uuid4().hex[:8]}"
            instances = [Instance(env, topic, tmp_path / f"registry-{n}.log") for n in (1, 2)]
            for instance in instances:
                await instance.wait_ready(60)
            work = Registrations([i.url for i in instances], SIZES.registrations)
            survivor = instances[1].url
        else:
            work = Registrations([cluster.registry_url], SIZES.registrations)
            survivor = cluster.registry_url
        running = asyncio.create_task(work.run(RECOVERY_BOUND_S))
        await wait_for(
            lambda: len(work.ids) >= SIZES.registrations // 4 or running.done(),
            timeout_s=60,
            what="a quarter of the registrations",
        )
        fault_at = time.monotonic()
        notes = ""
        if fault == "instance-kill":
            instances[0].proc.send_signal(signal.SIGKILL)
        else:
            victim = await asyncio.to_thread(cluster.leader_of, "_schemas", 0)
            replicas = await asyncio.to_thread(cluster.replicas_of, "_schemas", 0)
            notes = f"_schemas replicas {replicas}, killed broker {victim}; "
            await asyncio.to_thread(cluster.kill, victim)
            # A registry started now must come up too: two of three brokers are up.
            late = Instance(env, "_schemas", tmp_path / "registry-late.log")
            instances.append(late)
        try:
            await running
            if fault == "schemas-leader-kill":
                await instances[-1].wait_ready(RECOVERY_BOUND_S)
        except AssertionError as exc:
            notes += f"FAILED: {str(exc).splitlines()[0][:300]}; "
        finally:
            recovery = work.recovery_s(fault_at)
            if fault == "schemas-leader-kill":
                await asyncio.to_thread(cluster.heal)
        readable = await work.read_back(survivor)
    finally:
        for instance in instances:
            instance.close()
    assigned = list(work.ids.values())
    twice = len(assigned) - len(set(assigned))
    result = record(
        FaultResult(
            fault=NAMES[fault],
            acknowledged=len(work.ids),
            delivered=readable,
            lost=len(work.ids) - readable,
            duplicated=twice,
            offsets_moved_back=None,
            recovery_s=recovery,
            promise="exactly-once",
            notes=notes + f"{work.failovers} failed attempts retried; duplicated = ids given twice",
        )
    )
    assert "FAILED" not in notes, notes
    missing = SIZES.registrations - len(work.ids)
    assert not missing, f"{missing} registrations never succeeded within {RECOVERY_BOUND_S}s"
    assert result.duplicated == 0, "an id was assigned to two different schemas"
    assert result.lost == 0, f"{result.lost} acknowledged schemas do not read back"
