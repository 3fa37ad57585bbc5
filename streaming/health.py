"""One health document for Kafka, PostgreSQL and the schema registry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from streaming.config import Settings
from streaming.db import Database
from streaming.errors import StreamingError
from streaming.transport.kafka import KafkaTransport


async def kafka_health(settings: Settings, timeout_s: float = 10.0) -> dict[str, Any]:
    started = time.perf_counter()
    admin = KafkaTransport(settings.kafka).admin()
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            try:
                meta_started = time.perf_counter()
                cluster = await admin.describe_cluster()
                round_trip = (time.perf_counter() - meta_started) * 1000
            finally:
                await admin.stop()
    except (StreamingError, TimeoutError) as exc:
        return {
            "healthy": False,
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "error": str(exc) or f"no answer within {timeout_s:.0f}s",
        }
    return {
        "healthy": len(cluster.brokers) > 0,
        "bootstrap_servers": settings.kafka.bootstrap_servers,
        "cluster_id": cluster.cluster_id,
        "broker_count": len(cluster.brokers),
        "controller_id": cluster.controller_id,
        "metadata_round_trip_ms": round(round_trip, 2),
        "response_time_ms": round((time.perf_counter() - started) * 1000, 2),
    }


async def postgres_health(settings: Settings) -> dict[str, Any]:
    db = Database(settings.database)
    try:
        return await db.get_health_status()
    finally:
        await db.close()


async def registry_health(settings: Settings) -> dict[str, Any]:
    started = time.perf_counter()
    url = settings.registry.url
    try:
        async with httpx.AsyncClient(timeout=settings.registry.timeout_s) as client:
            response = await client.get(f"{url}/subjects")
    except httpx.HTTPError as exc:
        return {"healthy": False, "url": url, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "healthy": response.status_code == 200,
        "url": url,
        "status_code": response.status_code,
        "response_time_ms": round((time.perf_counter() - started) * 1000, 2),
    }


async def check_health(settings: Settings, *, registry: bool = True) -> dict[str, Any]:
    """Every component's status; ``healthy`` only when all of them are."""
    checks: dict[str, Any] = {}
    kafka, postgres = await asyncio.gather(kafka_health(settings), postgres_health(settings))
    checks["kafka"] = kafka
    checks["postgres"] = postgres
    if registry:
        checks["registry"] = await registry_health(settings)
    return {"healthy": all(c["healthy"] for c in checks.values()), **checks}


__all__ = ["check_health", "kafka_health", "postgres_health", "registry_health"]
