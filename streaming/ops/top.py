"""What ``streaming top`` looks at, and the one document it shows live or prints as JSON.

:meth:`Top.refresh` looks at every source at once, each under its own deadline and each
optional: an unset or unreachable source is a part of the document that says so, never a
crash. Rates need two looks, so :meth:`Top.refresh` compares with the previous one
(``streaming top --once`` looks twice, one interval apart).

The document (``streaming top --once --json``); every part carries ``status`` ("ok",
"unset": not configured, "down": configured but not answering) and ``error`` (null or why)::

    {"taken_at": "2026-12-02T09:00:00.000+00:00",      # ISO 8601, UTC
     "interval_s": 1.0,                # seconds since the previous look; null on the first
     "kafka": {"status", "error", "bootstrap_servers",
       "topics": [{"topic", "partitions", "end_offset", "produce_rate"}],
       "groups": [{"group", "state", "members", "rebalances", "lag", "consume_rate",
         "topics": [{"topic", "lag", "consume_rate",
           "partitions": [{"partition", "committed", "end", "lag"}],
           "retry": [{"topic", "depth"}],
           "dlq": {"topic", "depth"} | null}]}]},
     "audit": {"status", "error",
       "chains": [{"chain_id", "topic", "partition", "seq", "kafka_offset", "recorded_at"}],
       "checkpoint": {"checkpoint_id", "created_at", "age_s"} | null,
       "last_verify": {"result", "checkpoint_id", "verified_at", "age_s"} | null},
     "registry": {"status", "error", "url", "ready", "requests_total", "request_rate",
       "response_time_ms"}}

Rates are per second (records produced or committed, registry API requests) and null
without an earlier look. ``lag`` counts from the log start on a partition the group never
committed; a retry topic's ``depth`` is the group's lag on it (the group's consumer reads
its own retry topics), a DLQ's ``depth`` the records it holds (nothing consumes a DLQ; a
redrive copies a range). ``rebalances`` counts those seen since ``top`` started
(:class:`~streaming.ops.model.RebalanceWatch`). ``last_verify`` is the last *passing*
full ``streaming audit verify`` (its ``verify_state`` row); a failed verify records
nothing, and ``top`` holds no MAC key, so the row is shown as stored, not re-checked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol

import httpx

from streaming.core.topics import is_internal_topic, parking_topic
from streaming.errors import StreamingError, TopicError
from streaming.ops.model import KafkaSample, RebalanceWatch, failure_topics, kafka_view, rate
from streaming.transport.base import (
    AdminTransport,
    ConsumerTransport,
    TopicPartition,
    TransportFactory,
)

DEFAULT_TIMEOUT_S = 5.0


class AuditSource(Protocol):
    """The audit chain's state (``connectors.audit_sink.status`` reads PostgreSQL)."""

    async def status(self) -> dict[str, Any]:
        """``chains``, ``checkpoint`` and ``last_verify`` as in the module docstring."""
        ...


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(fnmatchcase(name, p) for p in patterns)


def _unset(why: str) -> dict[str, Any]:
    return {"status": "unset", "error": why}


def _down(exc: BaseException, timeout_s: float) -> dict[str, Any]:
    message = str(exc) if not isinstance(exc, TimeoutError) else ""
    return {"status": "down", "error": message or f"no answer within {timeout_s:g}s"}


class KafkaLook:
    """Samples offsets and groups through one admin client and one group-less consumer,
    kept open between looks and reopened after a failure."""

    def __init__(
        self, transport: TransportFactory, topics: Sequence[str], groups: Sequence[str]
    ) -> None:
        self._transport = transport
        self._topics = tuple(topics)
        self._groups = tuple(groups)
        self._clients: tuple[AdminTransport, ConsumerTransport] | None = None

    async def _open(self) -> tuple[AdminTransport, ConsumerTransport]:
        if self._clients is None:
            admin = self._transport.admin()
            await admin.start()
            consumer = self._transport.consumer(group_id=None)  # made only once needed
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                await admin.stop()
                raise
            self._clients = (admin, consumer)
        return self._clients

    async def close(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None:
            for client in clients:
                await client.stop()

    async def sample(self) -> KafkaSample:
        try:
            return await self._sample(*await self._open())
        except BaseException:
            await self.close()
            raise

    async def _sample(self, admin: AdminTransport, consumer: ConsumerTransport) -> KafkaSample:
        existing = {t for t in await admin.list_topics() if not is_internal_topic(t)}
        group_ids = [g for g in await admin.list_groups() if _matches(g, self._groups)]
        infos = await asyncio.gather(*(admin.describe_group(g) for g in group_ids))
        offsets = await asyncio.gather(*(admin.group_offsets(g) for g in group_ids))
        committed = {
            g: {tp: o for tp, o in off.items() if tp.topic in existing}
            for g, off in zip(group_ids, offsets, strict=True)
        }
        if self._topics:
            main = {t for t in existing if _matches(t, self._topics)}
        elif self._groups:
            main = {tp.topic for off in committed.values() for tp in off}
        else:
            main = existing
        wanted = set(main)
        for topic in main:
            for group in group_ids:
                retries, dlq = failure_topics(topic, group, frozenset(existing))
                parking = parking_topic(topic, group)
                wanted.update([*retries, *([dlq] if dlq else []), parking])
        wanted &= existing
        committed = {
            g: {tp: o for tp, o in off.items() if tp.topic in wanted}
            for g, off in committed.items()
        }
        if self._topics:  # only the groups that read the chosen topics
            group_ids = [g for g in group_ids if committed[g]]
        tps: list[TopicPartition] = []
        for topic in sorted(wanted):
            try:
                tps += [
                    TopicPartition(topic, p) for p in sorted(await consumer.partitions_for(topic))
                ]
            except TopicError:
                continue  # deleted between the listing and now
        begin = await consumer.beginning_offsets(tps) if tps else {}
        end = await consumer.end_offsets(tps) if tps else {}
        return KafkaSample(
            at_s=time.monotonic(),
            begin=begin,
            end=end,
            committed=committed,
            groups={info.group_id: info for info in infos if info.group_id in group_ids},
            topics=frozenset(tp.topic for tp in end),
        )


class RegistryLook:
    """``/health`` (liveness and the request counter) and ``/ready`` of one registry."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._last: tuple[float, int] | None = None

    async def close(self) -> None:
        await self._client.aclose()

    async def look(self) -> dict[str, Any]:
        started = time.perf_counter()
        health, ready = await asyncio.gather(
            self._client.get(f"{self.url}/health"), self._client.get(f"{self.url}/ready")
        )
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        total = None
        if health.status_code == 200:
            value = health.json().get("requests_total")
            total = value if isinstance(value, int) else None
        now = time.monotonic()
        request_rate = None
        if total is not None and self._last is not None:
            request_rate = rate(total, self._last[1], now - self._last[0])
        self._last = (now, total) if total is not None else None
        healthy = health.status_code == 200
        return {
            "status": "ok" if healthy else "down",
            "error": None if healthy else f"/health answered HTTP {health.status_code}",
            "url": self.url,
            "ready": ready.status_code == 200,
            "requests_total": total,
            "request_rate": request_rate,
            "response_time_ms": elapsed_ms,
        }


class Top:
    """Every source of ``streaming top``; :meth:`refresh` returns one document."""

    def __init__(
        self,
        transport: TransportFactory,
        *,
        bootstrap_servers: str,
        audit: AuditSource | str,
        registry_url: str | None,
        topics: Sequence[str] = (),
        groups: Sequence[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """``audit``: the source, or why there is none; ``registry_url`` None: unset."""
        self._kafka = KafkaLook(transport, topics, groups)
        self._bootstrap = bootstrap_servers
        self._audit = audit
        self._registry = RegistryLook(registry_url, timeout_s) if registry_url else None
        self._timeout_s = timeout_s
        self._previous: KafkaSample | None = None
        self._previous_at: float | None = None
        self._rebalances = RebalanceWatch()

    async def close(self) -> None:
        await self._kafka.close()
        if self._registry is not None:
            await self._registry.close()

    async def _bounded(self, fn: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await fn()
        except (StreamingError, OSError, TimeoutError, httpx.HTTPError) as exc:
            return _down(exc, self._timeout_s)

    async def _kafka_part(self) -> dict[str, Any]:
        sample = await self._kafka.sample()
        self._rebalances.observe(sample.groups.values())
        view = kafka_view(sample, self._previous, self._rebalances.counts)
        self._previous = sample
        return {"status": "ok", "error": None, **view}

    async def _audit_part(self) -> dict[str, Any]:
        if isinstance(self._audit, str):
            return _unset(self._audit)
        return {"status": "ok", "error": None, **await self._audit.status()}

    async def _registry_part(self) -> dict[str, Any]:
        if self._registry is None:
            return _unset("REGISTRY_URL is not set")
        return await self._registry.look()

    async def refresh(self) -> dict[str, Any]:
        """Look at every source once (concurrently) and compare with the previous look."""
        kafka, audit, registry = await asyncio.gather(
            self._bounded(self._kafka_part),
            self._bounded(self._audit_part),
            self._bounded(self._registry_part),
        )
        kafka.setdefault("topics", [])
        kafka.setdefault("groups", [])
        kafka["bootstrap_servers"] = self._bootstrap
        now = time.monotonic()
        interval = None if self._previous_at is None else round(now - self._previous_at, 3)
        self._previous_at = now
        return {
            "taken_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "interval_s": interval,
            "kafka": kafka,
            "audit": audit,
            "registry": registry,
        }


__all__ = ["DEFAULT_TIMEOUT_S", "AuditSource", "KafkaLook", "RegistryLook", "Top"]
