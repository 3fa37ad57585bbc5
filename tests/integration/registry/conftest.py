"""Registry servers on a real broker, each test with its own ``_schemas`` topic."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from streaming.config import KafkaSettings
from streaming.devstack.procs import free_port, pid_alive, spawn, tail, terminate
from streaming.registry.server import RegistryServer, ServerSettings
from streaming.testing import eventually_sync
from streaming.transport.kafka import KafkaTransport

ServerFactory = Callable[..., Awaitable[RegistryServer]]


@pytest.fixture
def schemas_topic() -> str:
    return f"_schemas-test-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture
async def start_registry(
    kafka_settings: KafkaSettings, schemas_topic: str
) -> AsyncIterator[ServerFactory]:
    """``await start_registry()`` -> a caught-up server on this test's topic (stopped after)."""
    started: list[RegistryServer] = []

    async def start(**overrides: object) -> RegistryServer:
        overrides.setdefault("audit", "log")  # test_audit_chain covers the chain
        settings = ServerSettings(port=0, topic=schemas_topic, **overrides)  # type: ignore[arg-type]
        server = RegistryServer(settings, kafka=kafka_settings)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()
    await _delete_topic(kafka_settings, schemas_topic)


async def _delete_topic(kafka_settings: KafkaSettings, topic: str) -> None:
    admin = KafkaTransport(kafka_settings).admin()
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.stop()


@dataclass(frozen=True)
class RegistryProcess:
    """A registry served by ``streaming registry serve`` in its own process."""

    pid: int
    url: str
    log_path: Path

    def alive(self) -> bool:
        return pid_alive(self.pid)


def _answers_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def spawn_registry(
    bootstrap_servers: str,
    topic: str,
    log_path: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
) -> RegistryProcess:
    """Start ``python -m streaming registry serve`` and wait until ``/ready`` says 200."""
    port = free_port()
    argv = [sys.executable, "-m", "streaming", "registry", "serve", "--port", str(port)]
    pid = spawn(
        [*argv, "--topic", topic, "--bootstrap-servers", bootstrap_servers, *args],
        log_path=log_path,
        env={**os.environ, "REGISTRY_SERVER_AUDIT": "log", **(env or {})},
    )
    proc = RegistryProcess(pid, f"http://127.0.0.1:{port}", log_path)
    try:
        eventually_sync(
            lambda: _answers_ready(proc.url) or not proc.alive(),
            timeout_s=90,
            what=f"the registry on {proc.url}",
        )
    except BaseException:
        terminate(pid)
        raise
    if not proc.alive():
        raise AssertionError(f"registry exited:\n{tail(log_path, 40)}")
    return proc


@contextmanager
def registry_process(
    bootstrap_servers: str, topic: str, log_path: Path, *args: str
) -> Iterator[RegistryProcess]:
    """:func:`spawn_registry` for the block, stopped (SIGTERM, then SIGKILL) after it."""
    proc = spawn_registry(bootstrap_servers, topic, log_path, *args)
    try:
        yield proc
    finally:
        terminate(proc.pid)


@pytest_asyncio.fixture
async def served_registry(
    kafka_settings: KafkaSettings, schemas_topic: str, tmp_path: Path
) -> AsyncIterator[RegistryProcess]:
    """A registry in its own process on this test's topic (so a stalled loop shows)."""
    with registry_process(
        kafka_settings.bootstrap_servers, schemas_topic, tmp_path / "registry.log"
    ) as proc:
        yield proc
    await _delete_topic(kafka_settings, schemas_topic)
