"""The seed's "automatic failover" (two real PostgreSQL servers, the first stopped) and
its slow-query detection (``DB_SLOW_QUERY_MS``).

``DB_HOST=a,b`` (here a multi-host ``DATABASE_URL``) is tried in order with a circuit
breaker per host: with the first server down the manager keeps working through the
second, and the first host's breaker opens so later calls skip it without waiting.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pydantic import SecretStr
from sqlalchemy import text
from structlog.testing import capture_logs

from streaming.config import DatabaseSettings
from streaming.db import BreakerState, DatabaseConnectionManager, TransactionManager
from streaming.devstack.postgres import (
    LocalPostgres,
    start_embedded_postgres,
    stop_embedded_postgres,
)


@pytest.fixture
def two_servers() -> Iterator[tuple[LocalPostgres, LocalPostgres]]:
    # Not tmp_path: other pytest sessions of the same user prune old pytest-of-* dirs.
    root = Path(tempfile.mkdtemp(prefix="streaming-failover-"))
    started: list[LocalPostgres] = []
    try:
        for name in ("primary", "standby"):
            started.append(start_embedded_postgres(root / name, lambda _msg: None))
        yield started[0], started[1]
    finally:
        for server in started:
            stop_embedded_postgres(server.data_dir)
        shutil.rmtree(root, ignore_errors=True)


def host_of(url: str) -> str:
    return url.split("@", 1)[1].split("/", 1)[0]


async def test_manager_fails_over_to_the_second_host_and_opens_the_first_breaker(
    two_servers: tuple[LocalPostgres, LocalPostgres],
) -> None:
    primary, standby = two_servers
    url = f"postgresql://postgres@{host_of(primary.url)},{host_of(standby.url)}/tradesense"
    settings = DatabaseSettings(
        url=SecretStr(url), connect_timeout_s=2, breaker_failure_threshold=2, breaker_cooldown_s=60
    )
    db = DatabaseConnectionManager(settings)
    try:
        await db.initialize()
        assert await db.execute_scalar("SELECT inet_server_port()") == settings.hosts[0][1]

        stop_embedded_postgres(primary.data_dir)

        for _ in range(settings.breaker_failure_threshold):  # each call still succeeds
            port = await db.execute_scalar("SELECT inet_server_port()")
            assert port == settings.hosts[1][1]
        first, second = db.hosts
        assert first.breaker.state is BreakerState.OPEN
        assert second.breaker.state is BreakerState.CLOSED

        started = time.perf_counter()
        async with TransactionManager(db).transaction() as session:
            port = (await session.execute(text("SELECT inet_server_port()"))).scalar()
        assert port == settings.hosts[1][1]
        assert time.perf_counter() - started < 1.0, "an open breaker must skip the dead host"

        health = await db.get_health_status()
        assert health["healthy"] is True
        assert health["url"].endswith(f":{settings.hosts[1][1]}/tradesense")
        assert [h["circuit"] for h in health["hosts"]] == ["open", "closed"]
    finally:
        await db.close()


async def test_slow_queries_are_logged_and_counted(database_settings: DatabaseSettings) -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    settings = database_settings.model_copy(update={"slow_query_ms": 150.0})
    db = DatabaseConnectionManager(settings, meter=meter)
    configured = structlog.is_configured()
    try:
        with capture_logs() as logs:
            await db.execute_scalar("SELECT 1")
            await db.execute_scalar("SELECT pg_sleep(0.3)")
        slow = [e for e in logs if e["event"] == "slow query"]
        assert len(slow) == 1
        assert slow[0]["log_level"] == "warning"
        assert "pg_sleep" in slow[0]["statement"]
        assert slow[0]["duration_ms"] >= 300
        assert slow_query_count(reader) == 1
    finally:
        if not configured:  # capture_logs leaves structlog "configured" with defaults
            structlog.reset_defaults()
        await db.close()


def slow_query_count(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    assert data is not None
    return sum(
        int(getattr(point, "value", 0))
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "db.client.slow_queries"
        for point in metric.data.data_points
    )
