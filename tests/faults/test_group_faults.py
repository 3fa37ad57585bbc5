"""A member of a consumer group dies, freezes, or comes back as a zombie.

Two ``EventConsumer`` processes share a six-partition topic. The group is at-least-once:
nothing acknowledged may be lost and duplicates are reported, and its committed offsets
must never move backwards (no operator reset happens here). The zombie sequence is the
one of issue 12: SIGSTOP member A past its session timeout, B takes over, commits to the
end and stops, then SIGCONT A. A must not commit what it computed before it lost its
partitions.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster
from tests.faults.conftest import SIZES, faults
from tests.faults.ledger import OffsetMonitor, Tally, end_offsets
from tests.faults.report import FaultResult, record, record_failure
from tests.faults.workloads import Member, delivered, produce_all, wait_for

SESSION_TIMEOUT_S = 6  # consumer_proc.py's session_timeout_ms
# A member drains partitions one poll batch at a time (5 ms of work per event), so the
# time to commit to the end grows with the workload; generous on two busy cores.
DRAIN_S = 60 + SIZES.group_events * 0.012
NAMES = {
    "member-kill": "group member SIGKILL mid-stream",
    "member-pause": f"group member SIGSTOP {SESSION_TIMEOUT_S + 4}s (past the session timeout)",
    "zombie": "zombie member: SIGSTOP A, B commits to the end and stops, SIGCONT A",
}


async def _wait_members(cluster: Cluster, group: str, count: int, what: str) -> None:
    admin = cluster.transport().admin()
    await admin.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (await admin.describe_group(group)).members != count:
            assert loop.time() < deadline, f"timed out after 60s waiting for {what}"
            await asyncio.sleep(0.1)  # poll
    finally:
        await admin.stop()


@pytest.mark.parametrize("fault", faults(["zombie"], ["member-kill", "member-pause", "zombie"]))
async def test_group_member_fault_loses_nothing_and_never_rewinds_offsets(
    fault: str, healthy: Cluster, fault_topic: str, member_env: dict[str, str], tmp_path: Path
) -> None:
    cluster = healthy
    group = f"faults-{fault}-{uuid.uuid4().hex[:6]}"
    work_s = 0.005  # a batch takes long enough for a signal to land inside it
    a = Member(member_env, fault_topic, group, tmp_path / "a.txt", work_s)
    b = Member(member_env, fault_topic, group, tmp_path / "b.txt", work_s)
    monitor = OffsetMonitor(cluster.bootstrap, group, fault_topic)
    try:
        with monitor:
            await _wait_members(cluster, group, 2, "both members to join")
            acknowledged = await produce_all(
                cluster.bootstrap, cluster.registry_url, fault_topic, SIZES.group_events
            )
            ends = await asyncio.to_thread(end_offsets, cluster.bootstrap, fault_topic)
            await wait_for(
                lambda: len(a.handled()) >= 100 and len(delivered(a, b)) >= len(acknowledged) // 6,
                timeout_s=60,
                what="A mid-stream",
            )
            fault_at = time.monotonic()
            if fault == "member-kill":
                a.signal(signal.SIGKILL)
                await asyncio.to_thread(monitor.wait_committed, ends, DRAIN_S, "B alone")
            elif fault == "member-pause":
                a.signal(signal.SIGSTOP)
                until = time.monotonic() + SESSION_TIMEOUT_S + 4
                await wait_for(lambda: time.monotonic() >= until, timeout_s=30, what="the pause")
                a.signal(signal.SIGCONT)
                await asyncio.to_thread(monitor.wait_committed, ends, DRAIN_S, "A back, B on")
            else:
                a.signal(signal.SIGSTOP)
                # B alone commits to the end: it took A's partitions over.
                await asyncio.to_thread(monitor.wait_committed, ends, DRAIN_S, "B alone")
                # B stops and leaves: the group is empty when A wakes up, so a commit
                # without a valid generation would be accepted (the dangerous case).
                assert b.stop() == 0, "SIGTERM must stop member B cleanly"
                a.signal(signal.SIGCONT)
                # A finds out it lost its generation and rejoins; give it time to act on that.
                await _wait_members(cluster, group, 1, "A back in the group")
                await asyncio.to_thread(monitor.wait_committed, ends, DRAIN_S, "A woken alone")
            recovery = monitor.recovery_s(fault_at, ends)
            await wait_for(
                lambda: set(delivered(a, b)) >= acknowledged,
                timeout_s=120,
                what="every event handled",
            )
            for m in (a, b):
                if m.proc.poll() is None:
                    assert m.stop() == 0, "SIGTERM must stop a member cleanly"
    except AssertionError as exc:
        record_failure(NAMES[fault], "at-least-once", exc)
        raise
    finally:
        a.close()
        b.close()
    tally = Tally(acknowledged, delivered(a, b))
    result = record(
        FaultResult(
            fault=NAMES[fault],
            acknowledged=len(acknowledged),
            delivered=len(set(tally.delivered)),
            lost=len(tally.lost),
            duplicated=tally.duplicated,
            offsets_moved_back=len(monitor.backsteps),
            recovery_s=recovery,
            promise="at-least-once",
            notes=monitor.describe_backsteps()[:300],
        )
    )
    assert not tally.lost, f"{len(tally.lost)} acknowledged events were never handled"
    assert not result.offsets_moved_back, (
        f"committed offsets moved back: {monitor.describe_backsteps()}"
    )
