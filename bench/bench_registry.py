"""Benchmark: ``GET /schemas/ids/{id}`` requests per second against our registry.

Not a test. Starts a registry subprocess on a fresh ``_schemas`` topic (needs
``KAFKA_BOOTSTRAP_SERVERS``) unless ``--url`` points at a running one, registers a few
schemas, then drives concurrent keep-alive clients for a fixed time.

    .venv/bin/python bench/bench_registry.py --seconds 5 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def delete_topic(topic: str) -> None:
    from streaming.config import KafkaSettings
    from streaming.transport.kafka import KafkaTransport

    admin = KafkaTransport(KafkaSettings()).admin()
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.stop()


def start_server() -> tuple[str, subprocess.Popen[bytes], str]:
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        sys.exit("set KAFKA_BOOTSTRAP_SERVERS (or pass --url of a running registry)")
    port = free_port()
    topic = f"_schemas-bench-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streaming",
            "registry",
            "serve",
            "--port",
            str(port),
            "--topic",
            topic,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return url, proc, topic
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # poll
    proc.terminate()
    sys.exit("registry did not become ready within 60s")


async def drive(url: str, ids: list[int], seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

        async def worker(offset: int) -> None:
            nonlocal errors
            n = offset
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                response = await client.get(f"/schemas/ids/{ids[n % len(ids)]}")
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200
                n += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="benchmark a running registry instead of starting one")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--schemas", type=int, default=20)
    args = parser.parse_args()
    proc = None
    topic = None
    url = args.url
    if url is None:
        url, proc, topic = start_server()
    try:
        ids = []
        for n in range(args.schemas):
            schema = {
                "type": "record",
                "name": f"Bench{n}",
                "fields": [{"name": "v", "type": "long"}],
            }
            r = httpx.post(
                f"{url}/subjects/bench-{n}/versions",
                json={"schema": json.dumps(schema)},
                timeout=30,
            )
            r.raise_for_status()
            ids.append(r.json()["id"])
        result = asyncio.run(drive(url, ids, args.seconds, args.concurrency))
        result["concurrency"] = args.concurrency
        sys.stdout.write(json.dumps(result) + "\n")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        if topic is not None:
            asyncio.run(delete_topic(topic))


if __name__ == "__main__":
    main()
