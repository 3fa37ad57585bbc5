"""Traces and metrics in real backends: `streaming dev up --observability` (Jaeger built
from its Go module, Debian's Prometheus), driven from the outside.

One event fails in a handler, goes to a retry topic, then the DLQ, is redriven with the
CLI and handled; Jaeger's HTTP API must then hold it as ONE trace with the parent/child
and links the messaging semantic conventions ask for. The stack under test uses the
session's Kafka and PostgreSQL and starts its own registry, Jaeger and Prometheus in a
folder of its own, so the session's stack is left as it is.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from streaming.clients.consumer import EventConsumer
from streaming.clients.retry import RetryPolicy
from streaming.config import OtelSettings, RegistrySettings
from streaming.devstack.observability import ensure_jaeger
from streaming.events import OrderPlaced
from streaming.serde.client import SchemaRegistryClient
from streaming.telemetry import configure_telemetry
from streaming.testing import StackEndpoints, eventually
from streaming.testing.plugin import TopicFactory
from streaming.transport.kafka import KafkaTransport

# OTLP span kinds as the v3 API spells them (OTLP JSON enums are numbers).
PRODUCER, CONSUMER = 4, 5
STATUS_ERROR = 2


@dataclass(frozen=True)
class ObservedStack:
    env: dict[str, str]  # what `dev env` exports, over our own environment
    status: dict[str, dict[str, Any]]  # `dev status --json` by service
    status_text: str

    @property
    def jaeger(self) -> str:
        return str(self.status["jaeger"]["address"])

    @property
    def prometheus(self) -> str:
        return str(self.status["prometheus"]["address"])


def _cli(
    *args: str, cwd: Path, env: dict[str, str], timeout_s: float = 180
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "streaming", *args],
        cwd=cwd,
        env={**env, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, f"streaming {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


async def _produce(env: dict[str, str], topic: str, count: int, *, service: str) -> None:
    """``streaming produce --fake`` as the process ``service``."""
    argv = ("produce", "--topic", topic, "--type", "OrderPlaced", "--fake", str(count))
    await asyncio.to_thread(_cli, *argv, cwd=Path.cwd(), env={**env, "OTEL_SERVICE_NAME": service})


@pytest.fixture(scope="module")
def observed(
    streaming_stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ObservedStack]:
    ensure_jaeger()  # built once into the user cache ('make install' does it ahead)
    cwd = tmp_path_factory.mktemp("observed-stack")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REGISTRY_"))}
    base |= {
        "KAFKA_BOOTSTRAP_SERVERS": streaming_stack.bootstrap_servers,
        "DATABASE_URL": streaming_stack.database_url,
        # a registry of its own (wired to Jaeger), on a store topic of its own
        "REGISTRY_TOPIC": f"_schemas-obs-{uuid.uuid4().hex[:8]}",
    }
    try:
        _cli("dev", "up", "--observability", cwd=cwd, env=base)
        status = json.loads(_cli("dev", "status", "--json", cwd=cwd, env=base).stdout)
        text = _cli("dev", "status", cwd=cwd, env=base).stdout
        exported = _cli("dev", "env", "--show-secrets", cwd=cwd, env=base).stdout
        env = dict(base)
        for line in exported.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value
        yield ObservedStack(env, {row["service"]: row for row in status}, text)
    finally:
        subprocess.run(
            [sys.executable, "-m", "streaming", "dev", "down"],
            cwd=cwd,
            env=base,
            capture_output=True,
            timeout=120,
            check=False,
        )


def test_dev_up_observability_wires_the_stack_to_jaeger_and_prometheus(
    observed: ObservedStack,
) -> None:
    status = observed.status
    assert {"jaeger", "prometheus", "registry"} <= set(status)
    assert all(status[s]["alive"] for s in ("jaeger", "prometheus", "registry"))
    otlp = status["jaeger"]["endpoints"]["otlp_http"]
    for url in (observed.jaeger, observed.prometheus, otlp):
        assert url in observed.status_text
    # every process `dev env` configures sends over OTLP to Jaeger (the OTel SDK variables)
    assert observed.env["OTEL_EXPORTER_OTLP_ENDPOINT"] == otlp
    assert observed.env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert observed.env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert httpx.get(f"{observed.jaeger}/api/services", timeout=5).status_code == 200


async def test_prometheus_scrapes_the_registry_and_metrics_sent_over_otlp(
    observed: ObservedStack, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(1, prefix="obs-metrics")
    await _produce(observed.env, topic, 3, service="obs-metrics-producer")
    async with httpx.AsyncClient(base_url=observed.prometheus, timeout=5) as client:

        async def query(expr: str) -> list[dict[str, Any]]:
            reply = (await client.get("/api/v1/query", params={"query": expr})).json()
            assert reply["status"] == "success", reply
            return list(reply["data"]["result"])

        up = await eventually(
            lambda: query("up == 1"),
            until=lambda rows: (
                {r["metric"].get("service") for r in rows} >= {"registry"}
                and any(r["metric"]["job"] == "otel-collector" for r in rows)
            ),
            timeout_s=60,
            what="the registry's /metrics and the collector scraped",
            interval_s=0.5,
        )
        assert up
        sent = await eventually(
            lambda: query(
                f'messaging_client_sent_messages_total{{messaging_destination_name="{topic}"}}'
            ),
            until=bool,
            timeout_s=60,
            what="the produce command's OTLP metrics in Prometheus",
            interval_s=0.5,
        )
        assert [float(r["value"][1]) for r in sent] == [3.0]
        assert sent[0]["metric"]["job"] == "obs-metrics-producer"


class HandlerDown(Exception):
    """The handler's dependency is down: every delivery fails until it is back."""


def _spans(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The v3 API's OTLP JSON flattened: each span with its service name."""
    spans = []
    for rs in trace["result"]["resourceSpans"]:
        service = next(
            a["value"]["stringValue"]
            for a in rs["resource"]["attributes"]
            if a["key"] == "service.name"
        )
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                attrs = {
                    a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])
                }
                spans.append({**span, "service": service, "attrs": attrs})
    return spans


async def test_a_redriven_event_is_one_trace_from_produce_to_handled_in_jaeger(
    observed: ObservedStack,
    kafka_transport: KafkaTransport,
    topic_factory: TopicFactory,
) -> None:
    topic = await topic_factory(1, prefix="obs-trace")
    group = f"obs-{uuid.uuid4().hex[:8]}"
    retry, dlq = f"{topic}.{group}.retry.1", f"{topic}.{group}.dlq"
    env = observed.env
    telemetry = configure_telemetry(
        OtelSettings(
            service_name="obs-consumer",
            exporter_otlp_endpoint=env["OTEL_EXPORTER_OTLP_ENDPOINT"],
            metrics_enabled=False,
        ),
        set_global=False,
    )
    registry = SchemaRegistryClient(RegistrySettings(url=env["REGISTRY_URL"]))
    consumer = EventConsumer(
        kafka_transport,
        registry,
        topics=[topic],
        group_id=group,
        tracer=telemetry.tracer,
        retry_policy=RetryPolicy(attempts=2, delays_s=(0.2,), jitter=0),
        poll_timeout_ms=200,
    )
    handled: list[str] = []
    down = True

    @consumer.handler(OrderPlaced)
    async def handle(event: OrderPlaced) -> None:
        if down:
            raise HandlerDown("pricing service unreachable")
        handled.append(str(event.order_id))

    def cli(*args: str, service: str) -> str:
        return _cli(*args, cwd=Path.cwd(), env={**env, "OTEL_SERVICE_NAME": service}).stdout

    task = asyncio.create_task(consumer.run())
    try:
        await _produce(env, topic, 1, service="obs-producer")
        await eventually(
            lambda: consumer.stats.dead_lettered,
            until=lambda n: n == 1,
            timeout_s=60,
            what="the event in the DLQ after one retry",
        )
        assert consumer.stats.retried == 1 and not handled
        down = False
        await asyncio.to_thread(
            cli,
            "dlq",
            "redrive",
            "--topic",
            topic,
            "--group",
            group,
            "--execute",
            "--audit",
            "log",
            service="obs-redrive",
        )
        await eventually(lambda: len(handled), until=lambda n: n == 1, timeout_s=60, what="handled")
    finally:
        consumer.request_stop()
        await task
        await registry.aclose()
        telemetry.shutdown()  # flushes the consumer's spans to Jaeger

    names = {
        f"send {topic}",
        f"process {topic}",
        f"send {retry}",
        f"process {retry}",
        f"send {dlq}",
        f"redrive {dlq}",
        f"create {topic}",
    }
    async with httpx.AsyncClient(base_url=observed.jaeger, timeout=5) as client:

        async def traces_with_our_spans() -> dict[str, list[dict[str, Any]]]:
            found: dict[str, list[dict[str, Any]]] = {}
            for service in ("obs-producer", "obs-consumer", "obs-redrive"):
                reply = await client.get(
                    "/api/v3/traces",
                    params={
                        "query.service_name": service,
                        "query.start_time_min": "2000-01-01T00:00:00Z",
                        "query.start_time_max": "2100-01-01T00:00:00Z",
                        "query.num_traces": "100",
                        "query.raw_traces": "true",  # as sent: no clock-skew adjustment
                    },
                )
                if reply.status_code == 404:  # nothing from that service yet
                    continue
                reply.raise_for_status()
                for span in _spans(reply.json()):
                    if span["name"] in names:
                        found.setdefault(span["traceId"], [])
            for trace_id in found:
                reply = await client.get(
                    f"/api/v3/traces/{trace_id}", params={"raw_traces": "true"}
                )
                reply.raise_for_status()
                found[trace_id] = [s for s in _spans(reply.json()) if s["name"] in names]
            return found

        def handled_and_exported(traces: dict[str, list[dict[str, Any]]]) -> bool:
            """Both deliveries to the handler are in (the consumer flushed last)."""
            spans = [s for t in traces.values() for s in t]
            return sum(s["name"] == f"process {topic}" for s in spans) == 2

        traces = await eventually(
            traces_with_our_spans,
            until=handled_and_exported,
            timeout_s=60,
            what="the event's spans in Jaeger",
            interval_s=0.5,
        )
    assert len(traces) == 1, f"the event's spans are spread over {len(traces)} traces"
    [spans] = traces.values()
    assert sorted(s["name"] for s in spans) == sorted([*names, f"process {topic}"])
    by_id = {s["spanId"]: s for s in spans}

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return by_id[span["parentSpanId"]]

    def links(span: dict[str, Any]) -> list[str]:
        return [link["spanId"] for link in span.get("links", [])]

    # walk up from the successful handling to the root: every hop is a parent/child
    [handled_span] = [
        s
        for s in spans
        if s["name"] == f"process {topic}" and s.get("status", {}).get("code") != STATUS_ERROR
    ]
    chain = [handled_span]
    while chain[-1].get("parentSpanId"):
        chain.append(parent(chain[-1]))
    assert [(s["name"], s["kind"], s["service"]) for s in reversed(chain)] == [
        (f"send {topic}", PRODUCER, "obs-producer"),
        (f"process {topic}", CONSUMER, "obs-consumer"),
        (f"send {retry}", PRODUCER, "obs-consumer"),
        (f"process {retry}", CONSUMER, "obs-consumer"),
        (f"send {dlq}", PRODUCER, "obs-consumer"),
        (f"redrive {dlq}", CONSUMER, "obs-redrive"),
        (f"create {topic}", PRODUCER, "obs-redrive"),
        (f"process {topic}", CONSUMER, "obs-consumer"),
    ]
    send, failed, to_retry, retried, to_dlq, redrive, create, handled_ = reversed(chain)
    # a consumer's process span links to the creation context of the record it processes
    assert links(failed) == [send["spanId"]]
    assert links(retried) == [to_retry["spanId"]]
    assert links(redrive) == [to_dlq["spanId"]]
    assert links(handled_) == [create["spanId"]]
    # the retry router's sends link to the context of the record they re-produce
    assert links(to_retry) == [send["spanId"]] and links(to_dlq) == [to_retry["spanId"]]
    assert failed["status"]["code"] == STATUS_ERROR and retried["status"]["code"] == STATUS_ERROR
    assert {s["attrs"]["messaging.operation.type"] for s in (failed, retried, handled_)} == {
        "process"
    }
    assert redrive["attrs"]["messaging.operation.type"] == "process"
    assert create["attrs"]["messaging.operation.type"] == "create"
    assert failed["attrs"]["messaging.consumer.group.name"] == group
    # every hop after the CLI's batch send (which names no single message) names the event
    assert send["attrs"]["messaging.batch.message_count"] == "1"  # int64: a JSON string
    ids = {s["name"]: s["attrs"].get("messaging.message.id") for s in chain[:-1]}
    assert len(set(ids.values())) == 1 and None not in ids.values(), ids
