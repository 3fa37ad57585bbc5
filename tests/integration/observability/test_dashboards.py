"""The shipped dashboard against a real Prometheus scraping real services' metrics.

Clients (produce, consume, a retry, a dead letter, lag) and the audit sink run against
the real broker and PostgreSQL with a Prometheus ``/metrics`` endpoint; Prometheus (from
Debian's package) scrapes it with ``deploy/prometheus/prometheus.yml``'s own file-SD job;
then every query of every panel in ``deploy/grafana/dashboards`` must return series.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from connectors.audit_sink.runtime import running_sink
from streaming.clients.consumer import EventConsumer
from streaming.clients.producer import EventProducer
from streaming.clients.retry import RetryPolicy
from streaming.config import OtelSettings
from streaming.db import Database
from streaming.events import OrderPlaced, OrderSide, OrderType
from streaming.serde.memory import InMemorySchemaRegistryClient
from streaming.telemetry import Telemetry, configure_telemetry
from streaming.testing import eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.kafka import KafkaTransport
from tests.integration.audit.conftest import (  # noqa: F401 - fixtures used below
    AuditSetup,
    audit_event,
    audit_setup,
    count_rows,
    drop_schema,
    produce,
)

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
JOB = "tradesense-streaming"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: install Debian's 'prometheus' package (make install does)"
    return path


def test_shipped_prometheus_config_is_valid() -> None:
    done = subprocess.run(
        [_binary("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    settings = OtelSettings(
        service_name="dashboard-test", prometheus_port=0, prometheus_host="127.0.0.1"
    )
    t = configure_telemetry(settings, set_global=False)
    try:
        yield t
    finally:
        t.shutdown()


@pytest_asyncio.fixture
async def prometheus(tmp_path: Path, telemetry: Telemetry) -> AsyncIterator[str]:
    """Prometheus with the shipped config, its file-SD target list pointing at us."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    (tmp_path / "targets").mkdir()
    target = {"targets": [f"127.0.0.1:{telemetry.metrics_port}"], "labels": {"env": "test"}}
    (tmp_path / "targets" / "test.json").write_text(json.dumps([target]))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - a server for the test's lifetime
        [
            _binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:

            async def ready() -> bool:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    return (await client.get(f"{url}/-/ready", timeout=1)).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(ready, timeout_s=60, what="prometheus to be ready", interval_s=0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


def _panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target, with Grafana's variables filled in."""
    found: list[tuple[str, str]] = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$job", ".+").replace("$__rate_interval", "15s")
                found.append((panel["title"], expr))
    return found


class Transient(Exception):
    """Retryable."""


async def test_every_dashboard_query_returns_series_from_real_services(
    prometheus: str,
    telemetry: Telemetry,
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
    database: Database,
    audit_setup: AuditSetup,  # noqa: F811
    drop_schema: None,  # noqa: F811
) -> None:
    registry = InMemorySchemaRegistryClient()
    topic = await topic_factory(2, prefix="dash")
    orders = [
        OrderPlaced(
            order_id=uuid.uuid4(),
            account_id=f"acct-{i}",
            symbol="AAPL",
            side=OrderSide.BUY,
            order_type=OrderType.MARKET,
            quantity=Decimal(1),
        )
        for i in range(20)
    ]
    async with EventProducer(kafka_transport, registry, instruments=telemetry.instruments) as p:
        await p.send_many(topic, orders)
    consumer = EventConsumer(
        kafka_transport,
        registry,
        topics=[topic],
        group_id=f"dash-{uuid.uuid4().hex[:6]}",
        instruments=telemetry.instruments,
        retry_policy=RetryPolicy(attempts=2, delays_s=(0.2,), jitter=0),
        poll_timeout_ms=200,
        lag_interval_s=0.2,
    )
    handled: set[uuid.UUID] = set()

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        if event.order_id == orders[0].order_id and event.order_id not in handled:
            handled.add(event.order_id)
            raise Transient("first delivery fails: a retry")
        if event.order_id == orders[1].order_id:
            raise TypeError("always: a dead letter")
        handled.add(event.order_id)

    audit = audit_setup.settings
    await produce(kafka_transport, registry, audit_setup.topic, [audit_event(i) for i in range(30)])
    async with running_sink(
        transport=kafka_transport,
        database=database,
        registry=registry,
        settings=audit,
        meter=telemetry.meter_provider.get_meter("audit-sink"),
    ) as sink:
        sink_task = asyncio.create_task(sink.run())
        consumer_task = asyncio.create_task(consumer.run())
        try:
            queries = _panel_queries()
            assert len(queries) >= 10
            async with httpx.AsyncClient(base_url=prometheus) as client:

                async def panels_without_data() -> list[str]:
                    empty = []
                    for title, expr in queries:
                        reply = (await client.get("/api/v1/query", params={"query": expr})).json()
                        assert reply["status"] == "success", (title, expr, reply)
                        if not reply["data"]["result"]:
                            empty.append(title)
                    return sorted(set(empty))

                await eventually(
                    panels_without_data,
                    until=lambda empty: not empty,
                    timeout_s=90,
                    what="data in every panel",
                    interval_s=0.5,
                )
            assert len(handled) == 19 and await count_rows(database, audit.db_schema) == 30
        finally:
            consumer.request_stop()
            sink.stop()
            await asyncio.gather(consumer_task, sink_task)
