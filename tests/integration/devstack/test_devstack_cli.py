"""The stack as users drive it: dev status/env/up and health, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streaming.testing import StackEndpoints

ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "400", **(env or {})},
    )


def test_health_reports_every_component_healthy(streaming_stack: StackEndpoints) -> None:
    result = cli("health")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    assert report["kafka"]["broker_count"] >= 1
    assert report["kafka"]["metadata_round_trip_ms"] >= 0
    assert report["postgres"]["healthy"] is True
    assert "pool_status" in report["postgres"]


def test_health_exits_nonzero_when_postgres_is_unreachable(
    streaming_stack: StackEndpoints,
) -> None:
    result = cli(
        "health",
        "--no-registry",
        env={"DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/none", "DB_CONNECT_TIMEOUT_S": "2"},
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["postgres"]["healthy"] is False
    assert (
        "cannot reach PostgreSQL at postgresql://u:***@127.0.0.1:1/none"
        in report["postgres"]["error"]
    )
    assert report["kafka"]["healthy"] is True


def test_devstack_status_and_env_describe_the_running_stack(
    streaming_stack: StackEndpoints,
) -> None:
    if not (ROOT / ".streaming" / "devstack.json").exists():
        pytest.fail("this suite expects the devstack (unset KAFKA_BOOTSTRAP_SERVERS/DATABASE_URL)")
    status = cli("dev", "status", "--json")
    assert status.returncode == 0, status.stderr
    rows = {row["service"]: row for row in json.loads(status.stdout)}
    assert rows["kafka"]["alive"] and rows["postgres"]["alive"]
    env = cli("dev", "env")
    assert f"export KAFKA_BOOTSTRAP_SERVERS={streaming_stack.bootstrap_servers}" in env.stdout
    assert "export DATABASE_URL=" in env.stdout


def test_second_dev_up_reuses_the_running_stack(streaming_stack: StackEndpoints) -> None:
    if not (ROOT / ".streaming" / "devstack.json").exists():
        pytest.fail("this suite expects the devstack (unset KAFKA_BOOTSTRAP_SERVERS/DATABASE_URL)")
    before = json.loads(cli("dev", "status", "--json").stdout)
    started = time.perf_counter()
    result = cli("dev", "up", "--json")
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["KAFKA_BOOTSTRAP_SERVERS"] == streaming_stack.bootstrap_servers
    after = json.loads(cli("dev", "status", "--json").stdout)
    assert [r["pids"] for r in after] == [r["pids"] for r in before]
    assert elapsed < 30
