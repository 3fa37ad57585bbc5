"""Brokers die or freeze while the idempotent producer writes and a group consumes.

The idempotent ``EventProducer`` promises exactly-once into the log: every acknowledged
id is in the topic once (lost 0, duplicated 0). The consumer group alongside is
at-least-once: it must see every acknowledged id, and its committed offsets never step
back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster
from tests.faults.conftest import SIZES, faults
from tests.faults.ledger import OffsetMonitor, Tally, end_offsets, read_log
from tests.faults.report import FaultResult, record, record_failure
from tests.faults.workloads import Member, delivered, produce_until, wait_for

NAMES = {
    "leader-kill": "broker SIGKILL: leader of the partition, during production",
    "controller-kill": "broker SIGKILL: active KRaft controller, during production",
    "broker-pause": f"broker SIGSTOP {SIZES.pause_s}s: a partition leader, during production",
}


async def _hold(seconds: float, *tasks: asyncio.Task[object]) -> None:
    """Keep the fault in place for ``seconds`` while the workload runs on."""

    def over() -> bool:
        for task in tasks:
            if task.done():
                task.result()  # surface the workload's own failure
                raise AssertionError("the workload stopped on its own")
        return time.monotonic() >= until

    until = time.monotonic() + seconds
    await wait_for(over, timeout_s=seconds + 10, what=f"{seconds}s of fault")


@pytest.mark.parametrize(
    "fault", faults(["leader-kill"], ["leader-kill", "controller-kill", "broker-pause"])
)
async def test_idempotent_producer_loses_and_duplicates_nothing(
    fault: str, healthy: Cluster, fault_topic: str, member_env: dict[str, str], tmp_path: Path
) -> None:
    cluster = healthy
    group = f"faults-{fault}-{uuid.uuid4().hex[:6]}"
    member = Member(member_env, fault_topic, group, tmp_path / "handled.txt")
    stop = asyncio.Event()
    monitor = OffsetMonitor(cluster.bootstrap, group, fault_topic)
    try:
        with monitor:
            producing = asyncio.create_task(
                produce_until(cluster.bootstrap, cluster.registry_url, fault_topic, stop, seed=7)
            )
            await wait_for(lambda: len(member.handled()) >= 200, timeout_s=60, what="consuming")
            await _hold(SIZES.produce_s / 4, producing)
            victim = (
                cluster.controller()
                if fault == "controller-kill"
                else await asyncio.to_thread(cluster.leader_of, fault_topic, 0)
            )
            fault_at = time.monotonic()
            if fault == "broker-pause":
                cluster.pause(victim)
                await _hold(SIZES.pause_s, producing)
                cluster.resume(victim)
            else:
                await asyncio.to_thread(cluster.kill, victim)
                await _hold(SIZES.produce_s / 2, producing)
                await asyncio.to_thread(cluster.restart, victim)
            await asyncio.to_thread(cluster.wait_in_sync)
            await _hold(SIZES.produce_s / 4, producing)
            stop.set()
            run = await producing
            member.assert_alive()
            seen = await asyncio.to_thread(read_log, cluster.bootstrap, fault_topic)
            tally = Tally(run.acknowledged, seen)
            await wait_for(
                lambda: set(member.handled()) >= run.acknowledged,
                timeout_s=120,
                what="the group to handle every acknowledged event",
            )
            ends = await asyncio.to_thread(end_offsets, cluster.bootstrap, fault_topic)
            await asyncio.to_thread(monitor.wait_committed, ends, 60)
        assert member.stop() == 0, "SIGTERM must stop the member cleanly"
    except AssertionError as exc:
        record_failure(NAMES[fault], "exactly-once", exc)
        raise
    finally:
        stop.set()
        member.close()
    group_dups = Tally(run.acknowledged, delivered(member)).duplicated
    result = record(
        FaultResult(
            fault=NAMES[fault] + f" (broker {victim})",
            acknowledged=len(run.acknowledged),
            delivered=len(run.acknowledged & set(seen)),
            lost=len(tally.lost),
            duplicated=tally.duplicated,
            offsets_moved_back=len(monitor.backsteps),
            recovery_s=run.recovery_s(fault_at),
            promise="exactly-once",
            notes=(
                f"{run.failed} sends failed"
                + (f" ({run.errors[0]})" if run.errors else "")
                + f"; group redelivered {group_dups} (at-least-once)"
            ),
        )
    )
    assert not tally.lost, f"{len(tally.lost)} acknowledged events are not in the log"
    assert result.duplicated == 0, f"{result.duplicated} events are in the log twice"
    assert not monitor.backsteps, f"committed offsets moved back: {monitor.describe_backsteps()}"
    assert result.recovery_s is not None, "no batch started after the fault was acknowledged"
