"""``make demo``'s replay part (scripts/demo_flow.sh) against the test stack, as a user runs it.

The script drives the real CLI and scripts/demo_consumer.py in subprocesses; we check
its exit code and that its output shows the snapshot, the reset and the redrive, with
counts that agree with each other.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path

from streaming.config import DatabaseSettings, KafkaSettings
from streaming.replay import SnapshotNotFoundError, SnapshotStore
from streaming.transport.base import AdminTransport
from streaming.transport.kafka import KafkaTransport
from tests.integration.children import run_to_end

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 150  # what demo_flow.sh produces
TIMEOUT_S = 150


async def run_flow(env: dict[str, str]) -> tuple[int, str, str]:
    return await run_to_end(["bash", str(ROOT / "scripts" / "demo_flow.sh")], env, ROOT, TIMEOUT_S)


def one(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not in the demo output:\n{text}"
    return found


async def test_demo_flow_shows_a_snapshot_a_reset_and_a_redrive(
    kafka_settings: KafkaSettings,
    kafka_transport: KafkaTransport,
    kafka_admin: AdminTransport,
    registry_url: str,
    database_settings: DatabaseSettings,
) -> None:
    assert database_settings.url is not None
    run_id = f"t{uuid.uuid4().hex[:8]}"
    topic, group = f"demo.orders.{run_id}", f"demo-billing-{run_id}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "REGISTRY_URL": registry_url,
        "DATABASE_URL": database_settings.url.get_secret_value(),
        "DEMO_RUN_ID": run_id,
        "COLUMNS": "250",  # rich wraps at 80 columns when not on a terminal
    }
    try:
        code, out, err = await run_flow(env)
        both = out + err
        assert code == 0, both

        headings = [line[4:] for line in err.splitlines() if line.startswith("--- ")]
        assert [h.split(":")[0] for h in headings] == [
            "topics",
            "produce",
            "consume",
            "snapshot",
            "reset",
            "redrive",
            "result",
        ], headings

        # The buggy consumer dead-lettered some events and handled the rest.
        first = one(r"handled (\d+), dead-lettered (\d+)", out)
        handled, dead = int(first[1]), int(first[2])
        assert dead > 0
        assert handled + dead == EVENTS

        # Snapshot saved and listed.
        one(rf"saved snapshot before-fix of {group}: 3 partitions", err)
        one(r"before-fix", out)

        # Reset: one dry run, then two applied resets (to earliest, back to the snapshot).
        one(r"dry run: nothing changed", err)
        assert err.count("\napplied\n") == 2, err
        one(rf"{group}: --to-earliest", err)  # a table's title: stderr when piped
        one(rf"{group}: --from-snapshot before-fix", err)

        # Redrive: the DLQ holds exactly the dead letters; all of them were moved back.
        one(rf"{dead} record\(s\) in {re.escape(topic)}\.{group}\.dlq", err)
        one(rf"would redrive {dead} to {re.escape(topic)},", err)
        redriven = int(one(rf"redrove (\d+) to {re.escape(topic)},", err)[1])
        assert redriven == dead

        # The fixed consumer got exactly the redriven records and failed none.
        last = re.findall(r"handled (\d+), dead-lettered (\d+)", out)[-1]
        assert (int(last[0]), int(last[1])) == (redriven, 0), out
    finally:
        names = [t for t in await kafka_admin.list_topics() if t.startswith(topic)]
        await kafka_admin.delete_topics(names)
        with contextlib.suppress(SnapshotNotFoundError):  # the flow failed before it
            await SnapshotStore(kafka_transport).delete_snapshot(group, "before-fix")
