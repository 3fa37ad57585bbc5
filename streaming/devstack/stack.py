"""``DevStack``: bring the local services up, record what was started, and stop exactly that."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from streaming.config import KafkaSettings, parse_bootstrap_servers
from streaming.devstack.procs import (
    Progress,
    docker_available,
    free_port,
    pid_alive,
    port_open,
    spawn,
    tail,
    terminate,
    wait_until,
)
from streaming.errors import DevStackError, StreamingError

Kind = Literal["external", "local", "docker"]
T = TypeVar("T")
STATE_FILE = "devstack.json"
# In start order (``down`` stops them in reverse).
_SERVICES = ("kafka", "postgres", "jaeger", "registry", "prometheus")


@dataclass
class Service:
    """One running service as ``dev status`` shows it."""

    name: str
    kind: Kind
    address: str
    pids: list[int] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    container_id: str | None = None
    data_dir: str | None = None
    # Named URLs beside ``address`` (e.g. Jaeger's OTLP endpoints, a /metrics target).
    endpoints: dict[str, str] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        if self.kind == "local":
            return bool(self.pids) and all(pid_alive(p) for p in self.pids)
        host, _, port = self.address.rpartition(":")
        if "//" in self.address:  # URL: http://host:port or postgresql://...@host:port/db
            host_port = self.address.split("@")[-1].split("//")[-1].split("/")[0]
            host, _, port = host_port.rpartition(":")
        return bool(port.isdigit()) and port_open(host or "127.0.0.1", int(port))


@dataclass
class StackState:
    kafka: Service | None = None
    postgres: Service | None = None
    registry: Service | None = None
    jaeger: Service | None = None
    prometheus: Service | None = None
    brokers: int = 1

    def services(self) -> list[Service]:
        return [s for s in (getattr(self, n) for n in _SERVICES) if s is not None]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.kafka:
            out["KAFKA_BOOTSTRAP_SERVERS"] = self.kafka.address
        if self.postgres:
            out["DATABASE_URL"] = self.postgres.address
        if self.registry:
            out["REGISTRY_URL"] = self.registry.address
        if self.jaeger:
            from streaming.devstack.observability import otel_env

            out.update(otel_env(self.jaeger.endpoints["otlp_http"]))
        return out


def _quiet(_: str) -> None:
    return None


class DevStack:
    """Start, inspect and stop the local stack recorded under ``state_dir``."""

    def __init__(self, state_dir: Path | str = ".streaming") -> None:
        self.state_dir = Path(state_dir).resolve()
        self.state_path = self.state_dir / STATE_FILE

    # -- state ------------------------------------------------------------------------
    def load(self) -> StackState | None:
        try:
            raw = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DevStackError(
                f"cannot read {self.state_path}: {exc}; delete it and run 'streaming dev up'"
            ) from exc
        state = StackState(brokers=raw.get("brokers", 1))
        for name in _SERVICES:
            if raw.get(name):
                setattr(state, name, Service(**raw[name]))
        return state

    def _save(self, state: StackState) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {"brokers": state.brokers}
        for name in _SERVICES:
            svc = getattr(state, name)
            payload[name] = asdict(svc) if svc else None
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        tmp.replace(self.state_path)

    # -- lifecycle --------------------------------------------------------------------
    def up(
        self,
        *,
        brokers: int = 1,
        registry: bool = True,
        observability: bool = False,
        progress: Progress = _quiet,
    ) -> StackState:
        """Bring every service up, reusing those already running; idempotent. With
        ``observability``, Jaeger and Prometheus too, and the registry sends to them."""
        if brokers < 1:
            raise DevStackError("--brokers must be at least 1")
        state = self.load() or StackState(brokers=brokers)
        if state.kafka and state.kafka.alive and state.brokers != brokers:
            raise DevStackError(
                f"the running stack has {state.brokers} broker(s); run 'streaming dev down' "
                f"first to start one with {brokers}"
            )
        state.brokers = brokers
        if not (state.kafka and state.kafka.alive):
            state.kafka = self._start_kafka(brokers, progress)
            self._save(state)
        else:
            progress(f"Kafka already running at {state.kafka.address}")
        wait_for_kafka(state.kafka.address, brokers if state.kafka.kind != "external" else 1)
        ensure_command_topics(state.kafka.address, progress)
        if not (state.postgres and state.postgres.alive):
            state.postgres = self._start_postgres(progress)
            self._save(state)
        else:
            progress("PostgreSQL already running")
        if observability:
            self._up_jaeger(state, progress)
        if registry and registry_available():
            if not (state.registry and state.registry.alive):
                state.registry = self._start_registry(state, progress)
                self._save(state)
            else:
                progress(f"schema registry already running at {state.registry.address}")
        if observability:
            self._up_prometheus(state, progress)
        self._save(state)
        return state

    def down(self, progress: Progress = _quiet) -> list[str]:
        """Stop what ``up`` started (never external services); return what was stopped."""
        state = self.load()
        if state is None:
            return []
        stopped: list[str] = []
        for svc in reversed(state.services()):
            if svc.kind == "external":
                continue
            progress(f"stopping {svc.name}")
            if svc.kind == "docker" and svc.container_id:
                subprocess.run(
                    ["docker", "rm", "-f", svc.container_id], capture_output=True, check=False
                )
            elif svc.name == "postgres" and svc.data_dir:
                from streaming.devstack.postgres import stop_embedded_postgres

                stop_embedded_postgres(svc.data_dir)
                terminate(*svc.pids)
            else:
                terminate(*svc.pids)
            stopped.append(svc.name)
        self.state_path.unlink(missing_ok=True)
        return stopped

    def restart_broker(self, node_id: int) -> int:
        """Start node ``node_id`` (1-based) of the local Kafka cluster again after it died;
        the new pid replaces the old one so ``down`` still stops it. Returns the pid."""
        state = self.load()
        if state is None or state.kafka is None or state.kafka.kind != "local":
            raise DevStackError("only a local Kafka started by 'streaming dev up' can be restarted")
        if not 1 <= node_id <= len(state.kafka.pids):
            raise DevStackError(f"no broker {node_id}: the stack has {len(state.kafka.pids)}")
        old = state.kafka.pids[node_id - 1]
        if pid_alive(old):
            raise DevStackError(f"broker {node_id} (pid {old}) is still running")
        from streaming.devstack.kafka import restart_local_node

        pid = restart_local_node(self.state_dir, node_id)
        state.kafka.pids[node_id - 1] = pid
        self._save(state)
        address = state.kafka.address.split(",")[node_id - 1]
        host, _, port = address.rpartition(":")
        wait_until(
            lambda: port_open(host, int(port)) or not pid_alive(pid),
            timeout_s=90,
            what=f"Kafka node {node_id} on {address}",
        )
        if not pid_alive(pid):
            raise DevStackError(
                f"Kafka node {node_id} exited on restart; last log lines:\n"
                + tail(Path(state.kafka.logs[node_id - 1]))
            )
        return pid

    def status(self) -> list[dict[str, Any]]:
        state = self.load()
        if state is None:
            return []
        return [
            {
                "service": s.name,
                "kind": s.kind,
                "address": _redact(s.address),
                "pids": s.pids,
                "alive": s.alive,
                "logs": s.logs,
                "endpoints": s.endpoints,
            }
            for s in state.services()
        ]

    # -- services ---------------------------------------------------------------------
    def _start_kafka(self, brokers: int, progress: Progress) -> Service:
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if external:
            try:
                servers = parse_bootstrap_servers(external)
            except ValueError as exc:
                raise DevStackError(f"KAFKA_BOOTSTRAP_SERVERS {exc}") from exc
            progress(f"using Kafka from KAFKA_BOOTSTRAP_SERVERS={external}")
            return Service("kafka", "external", ",".join(servers))
        if brokers == 1 and docker_available():
            from streaming.devstack.kafka import start_docker_kafka

            bootstrap, container = start_docker_kafka(progress)
            return Service("kafka", "docker", bootstrap, container_id=container)
        from streaming.devstack.kafka import start_local_kafka

        bootstrap, nodes = start_local_kafka(self.state_dir, brokers, progress)
        return Service(
            "kafka",
            "local",
            bootstrap,
            pids=[n.pid for n in nodes],
            logs=[n.log_path for n in nodes],
            data_dir=str(self.state_dir / "kafka"),
        )

    def _start_postgres(self, progress: Progress) -> Service:
        external = os.environ.get("DATABASE_URL")
        if external:
            progress("using PostgreSQL from DATABASE_URL")
            return Service("postgres", "external", external)
        if docker_available():
            from streaming.devstack.postgres import start_docker_postgres

            url, container = start_docker_postgres(progress)
            return Service("postgres", "docker", url, container_id=container)
        from streaming.devstack.postgres import start_embedded_postgres

        pg = start_embedded_postgres(self.state_dir, progress)
        return Service(
            "postgres",
            "local",
            pg.url,
            pids=[pg.pid] if pg.pid else [],
            logs=[pg.log_path],
            data_dir=pg.data_dir,
        )

    def _up_jaeger(self, state: StackState, progress: Progress) -> None:
        if state.jaeger and state.jaeger.alive:
            progress(f"Jaeger already running at {state.jaeger.address}")
            return
        from streaming.devstack.observability import start_jaeger

        pid, log_path, endpoints = start_jaeger(self.state_dir, progress)
        state.jaeger = Service(
            "jaeger", "local", endpoints["ui"], [pid], [log_path], endpoints=endpoints
        )
        self._save(state)
        if state.registry and state.registry.alive and state.registry.kind == "local":
            progress(
                "the running registry was started without --observability and sends nothing; "
                "'streaming dev down' then 'dev up --observability' wires it too"
            )

    def _up_prometheus(self, state: StackState, progress: Progress) -> None:
        from streaming.devstack.observability import start_prometheus, write_scrape_targets

        targets = {
            s.name: s.endpoints["metrics"]
            for s in state.services()
            if s.name != "jaeger" and "metrics" in s.endpoints
        }
        write_scrape_targets(self.state_dir / "prometheus" / "targets", targets)
        if state.prometheus and state.prometheus.alive:
            progress(f"Prometheus already running at {state.prometheus.address}")
            return
        collector = state.jaeger.endpoints["metrics"] if state.jaeger else None
        pid, log_path, url = start_prometheus(self.state_dir, collector, progress)
        state.prometheus = Service("prometheus", "local", url, [pid], [log_path])
        self._save(state)

    def _start_registry(self, state: StackState, progress: Progress) -> Service:
        external = os.environ.get("REGISTRY_URL")
        if external:
            progress(f"using schema registry from REGISTRY_URL={external}")
            return Service("registry", "external", external.rstrip("/"))
        assert state.kafka is not None
        port = free_port()
        log_path = self.state_dir / "registry" / "registry.log"
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": state.kafka.address}
        endpoints: dict[str, str] = {}
        if state.jaeger and state.jaeger.alive:  # traces and metrics out, /metrics served
            from streaming.devstack.observability import otel_env

            metrics_port = free_port()
            endpoints["metrics"] = f"http://127.0.0.1:{metrics_port}/metrics"
            env.update(
                otel_env(state.jaeger.endpoints["otlp_http"]),
                OTEL_SERVICE_NAME="streaming-registry",
                OTEL_METRICS_EXPORTER="none",  # scraped from /metrics, not pushed twice
                OTEL_PROMETHEUS_PORT=str(metrics_port),
                OTEL_PROMETHEUS_HOST="127.0.0.1",
            )
        progress(f"starting the schema registry on 127.0.0.1:{port}")
        pid = spawn(
            [
                sys.executable,
                "-m",
                "streaming",
                "registry",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            log_path=log_path,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: _registry_ready(url) or not pid_alive(pid),
            timeout_s=60,
            what=f"the schema registry on {url}",
        )
        if not pid_alive(pid):
            raise DevStackError(f"the schema registry exited; last log lines:\n{tail(log_path)}")
        return Service(
            "registry", "local", url, pids=[pid], logs=[str(log_path)], endpoints=endpoints
        )


def registry_available() -> bool:
    """True once the registry service package is installed alongside us."""
    import importlib.util

    try:
        return importlib.util.find_spec("streaming.registry.server") is not None
    except ModuleNotFoundError:
        return False


def _registry_ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/subjects", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_kafka(bootstrap: str, brokers: int = 1, timeout_s: float = 90.0) -> None:
    """Poll cluster metadata until ``brokers`` brokers are registered."""
    from streaming.transport.kafka import KafkaTransport

    async def probe() -> int:
        admin = KafkaTransport(
            KafkaSettings(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        ).admin()
        await admin.start()
        try:
            return len((await admin.describe_cluster()).brokers)
        finally:
            await admin.stop()

    deadline = time.monotonic() + timeout_s
    last: str = ""
    while time.monotonic() < deadline:
        try:
            if _run_sync(probe) >= brokers:
                return
        except StreamingError as exc:
            last = str(exc)
        time.sleep(0.3)  # poll
    raise DevStackError(
        f"Kafka at {bootstrap} did not report {brokers} broker(s) within {timeout_s:.0f}s"
        + (f": {last}" if last else "")
    )


def ensure_command_topics(bootstrap: str, progress: Progress = _quiet) -> None:
    """Create every topic the product's own commands need (``COMMAND_TOPICS``: the
    compacted internals and the audit events topic), so a fresh stack takes ``replay``,
    ``offsets reset --execute`` and ``dlq redrive --execute`` with ``--audit auto`` at once."""
    from streaming.clients.topics import TopicDefaults, ensure_topics, plan_topics
    from streaming.transport.kafka import KafkaTransport

    settings = KafkaSettings(bootstrap_servers=bootstrap)

    async def create() -> tuple[str, ...]:
        admin = KafkaTransport(settings).admin()
        await admin.start()
        try:
            specs = plan_topics((), defaults=TopicDefaults.from_settings(settings), internal=True)
            return (await ensure_topics(admin, specs)).created
        finally:
            await admin.stop()

    created = _run_sync(create)
    progress(f"created topics {', '.join(created)}" if created else "topics already present")


def _run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when a loop already runs here
    (a sync pytest fixture set up from inside an async one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _redact(address: str) -> str:
    if "://" in address and "@" in address:
        scheme, rest = address.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}{':***' if ':' in creds else ''}@{host}"
    return address


__all__ = [
    "STATE_FILE",
    "DevStack",
    "Service",
    "StackState",
    "ensure_command_topics",
    "registry_available",
    "wait_for_kafka",
]
