"""Running the registry: uvicorn around the app, in-process and in the background.

``async with RegistryServer(ServerSettings(port=0), kafka=KafkaSettings(...)) as server:``
starts the ``_schemas`` store and serves on ``server.url`` (port 0 picks a free port),
which is what tests and the devstack use; the CLI's ``serve`` runs the same object in
the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Literal

import httpx
import structlog
import uvicorn
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streaming.config import KafkaSettings, RegistrySettings
from streaming.core.lifecycle import AsyncService, cancel_and_wait
from streaming.core.topics import AUDIT_EVENTS_TOPIC, SCHEMAS_TOPIC
from streaming.errors import ConfigError
from streaming.registry.app import BODY_TIMEOUT_S, MAX_BODY_BYTES, create_app
from streaming.registry.audit import (
    AuditGate,
    AuditRecord,
    RegistryAuditHook,
    audit_event,
    chain_hook,
    log_registry_change,
)
from streaming.registry.auth import RegistryAuth
from streaming.registry.errors import NotReady
from streaming.registry.kafka_store import KafkaSchemaStore
from streaming.registry.service import RegistryService
from streaming.registry.store import SchemaStore
from streaming.registry.work import DEFAULT_TIMEOUT_S, DEFAULT_WORKERS, SchemaWorker
from streaming.security.errors import RevocationsUnavailableError
from streaming.transport.base import TransportFactory
from streaming.transport.kafka import KafkaTransport

log = structlog.get_logger(__name__)


class ServerSettings(BaseSettings):
    """How one registry instance serves (env prefix ``REGISTRY_SERVER_``)."""

    model_config = SettingsConfigDict(
        env_prefix="REGISTRY_SERVER_", frozen=True, extra="forbid", case_sensitive=False
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, lt=65536)
    topic: str = SCHEMAS_TOPIC
    transactional_id: str | None = None
    replication_factor: int | None = Field(default=None, gt=0)
    """Replicas of the store topic; unset: KAFKA_DEFAULT_REPLICATION_FACTOR, else min(3, brokers)."""
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, gt=0)
    body_timeout_s: float = Field(default=BODY_TIMEOUT_S, gt=0)
    """A request body not complete after this is answered 408 and its connection closed."""
    ready_wait_s: float = Field(default=10.0, ge=0)
    startup_timeout_s: float = Field(default=60.0, gt=0)
    schema_timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)
    """Limit for parsing + checking one schema (a 422/42201 beyond it)."""
    schema_workers: int = Field(default=DEFAULT_WORKERS, gt=0)
    http: Literal["auto", "h11", "httptools", "onesend"] = "auto"
    """uvicorn's HTTP protocol: ``auto`` is ``onesend`` (httptools, one write per
    response, see :mod:`streaming.registry.wire`) when httptools is installed, else h11."""
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    """The event loop ``streaming registry serve`` runs on; ``auto`` is uvloop when installed."""
    audit: Literal["auto", "chain", "log"] = "auto"
    """Where changes are audited: ``chain`` publishes AuditEvents to ``audit_topic`` (which
    must exist; changes are refused until it does), ``log`` only logs, ``auto`` is
    ``chain`` when the Kafka-backed store's cluster has ``audit_topic``, else ``log``."""
    audit_topic: str = AUDIT_EVENTS_TOPIC


class _BackgroundServer(uvicorn.Server):
    """uvicorn without signal handling: the embedding process owns its signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RegistryServer(AsyncService):
    """One registry instance: store + app + HTTP server, as an async context manager."""

    def __init__(
        self,
        settings: ServerSettings | None = None,
        *,
        kafka: KafkaSettings | None = None,
        transport: TransportFactory | None = None,
        store: SchemaStore | None = None,
        audit: RegistryAuditHook | None = None,
        auth: RegistryAuth | None = None,
        handle_signals: bool = False,
    ) -> None:
        self.settings = settings or ServerSettings()
        if store is None:
            if transport is None:
                transport = KafkaTransport(kafka or KafkaSettings())
            store = KafkaSchemaStore(
                transport,
                topic=self.settings.topic,
                transactional_id=self.settings.transactional_id,
                replication_factor=self.settings.replication_factor,
            )
        self.store = store
        self._transport = transport
        self._audit = _ChainAudit(self, transport) if audit is None else None
        worker = SchemaWorker(
            timeout_s=self.settings.schema_timeout_s, workers=self.settings.schema_workers
        )
        gate = (
            AuditGate(audit or log_registry_change)
            if self._audit is None
            else AuditGate(self._audit.publish, warm_up=self._audit.start)
        )
        self.service = RegistryService(store, audit=gate, worker=worker)
        self.revocations = auth.revocations if auth is not None else None
        self.app = create_app(
            self.service,
            authenticator=auth.authenticate if auth is not None else None,
            authorizer=auth.authorize if auth is not None else None,
            max_body_bytes=self.settings.max_body_bytes,
            body_timeout_s=self.settings.body_timeout_s,
            ready_wait_s=self.settings.ready_wait_s,
            also_ready=self.revocations.log.is_current if self.revocations else None,
        )
        self._handle_signals = handle_signals
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._settler: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("RegistryServer is not started: call start() or use 'async with'")
        return f"http://{self.settings.host}:{self._port}"

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.host, self.settings.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                [
                    f"cannot listen on {self.settings.host}:{self.settings.port} ({exc}); "
                    "pick another --port (0 = any free port) or stop what holds it"
                ],
                title="schema registry cannot start",
            ) from exc
        sock.set_inheritable(True)
        return sock

    async def start(self, *, wait_ready: bool = True) -> None:
        """Start reading ``_schemas`` (and the revocation list) and serving; optionally
        wait until both are caught up."""
        await self.store.start()
        if self.revocations is not None:
            try:
                await self.revocations.start()
            except BaseException:
                await self.store.stop()
                raise
        sock = self._bind()
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            http=_http_protocol(self.settings.http),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        server_type = uvicorn.Server if self._handle_signals else _BackgroundServer
        self._server = server_type(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="registry-http")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.startup_timeout_s
        while not self._server.started:
            if self._task.done() or loop.time() > deadline:
                await self.stop()
                raise ConfigError(
                    [f"HTTP server did not start within {self.settings.startup_timeout_s}s"],
                    title="schema registry cannot start",
                )
            await asyncio.sleep(0.01)  # poll
        log.info("registry.serving", url=self.url, topic=self.settings.topic)
        if wait_ready:
            try:
                await self.store.wait_ready(self.settings.startup_timeout_s)
                if self.revocations is not None:
                    await self.revocations.wait_current(self.settings.startup_timeout_s)
            except (NotReady, RevocationsUnavailableError):
                await self.stop()
                raise
            await self.service.audit.settle()
        else:
            self._settler = asyncio.create_task(self._settle_audit(), name="registry-audit")

    async def _settle_audit(self) -> None:
        """Start the audit publisher once the store is caught up (failures are retried
        by the next change, which is refused until then)."""
        with contextlib.suppress(NotReady):
            await self.store.wait_ready(self.settings.startup_timeout_s)
            await self.service.audit.settle()

    async def wait_closed(self) -> None:
        """Block until the HTTP server exits (signal or :meth:`stop`)."""
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        await cancel_and_wait(self._settler)
        self._settler = None
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._server = None
        if self._audit is not None:
            await self._audit.stop()
        if self.revocations is not None:
            await self.revocations.stop()
        await self.store.stop()


class _ChainAudit:
    """The server's audit publisher: an AuditLogger on the registry's own cluster.

    Its EventProducer resolves the AuditEvent schema id through this registry's service
    in-process (an unauthenticated internal app, no socket), so the ids are the ones
    every consumer of this registry sees and no credentials are needed.
    """

    def __init__(self, server: RegistryServer, transport: TransportFactory | None) -> None:
        self._server = server
        self._transport = transport
        self._hook: RegistryAuditHook = log_registry_change
        self._close: list[Callable[[], Awaitable[None]]] = []

    async def publish(self, record: AuditRecord) -> None:
        await self._hook(record)

    async def _audit_topic_exists(self, transport: TransportFactory, topic: str) -> bool:
        admin = transport.admin()
        await admin.start()
        try:
            return topic in await admin.list_topics()
        finally:
            await admin.stop()

    async def start(self) -> None:
        from streaming.audit.logger import AuditLogger
        from streaming.clients.producer import EventProducer
        from streaming.serde.avro import AvroSerializer
        from streaming.serde.client import SchemaRegistryClient
        from streaming.serde.context import SerializationContext

        settings, transport = self._server.settings, self._transport
        topic = settings.audit_topic
        if settings.audit == "log" or transport is None:
            return
        if not await self._audit_topic_exists(transport, topic):
            if settings.audit == "auto":
                log.warning(
                    "registry.audit_log_only",
                    reason=f"audit topic {topic!r} does not exist",
                    fix=f"streaming topics ensure -t {topic}, then restart the registry",
                )
                return
            raise ConfigError(
                [
                    f"REGISTRY_SERVER_AUDIT=chain but audit topic {topic!r} does not exist: "
                    f"create it (streaming topics ensure -t {topic})"
                ]
            )
        internal = create_app(self._server.service)
        client = SchemaRegistryClient(
            RegistrySettings(url="http://registry.internal"),
            transport=httpx.ASGITransport(app=internal),
        )
        serializer = AvroSerializer(client)
        producer = EventProducer(transport, client, serializer=serializer)
        try:
            await producer.start()
            logger = AuditLogger(producer=producer, topic=topic, source="schema-registry")
            # resolve (auto-register) the contract now: a change made during that is held
            probe = audit_event(AuditRecord("warm_up", None, None, None, None), source="")
            await serializer.serialize(probe, SerializationContext(topic))
        except BaseException:
            await producer.stop()
            await client.aclose()
            raise
        self._close = [producer.stop, client.aclose]
        self._hook = chain_hook(logger)
        log.info("registry.audit_chain", topic=topic)

    async def stop(self) -> None:
        for close in self._close:
            with contextlib.suppress(Exception):
                await close()
        self._close = []
        self._hook = log_registry_change


def _http_protocol(choice: str) -> Any:
    """uvicorn's ``http`` argument for a ``ServerSettings.http`` choice."""
    if choice in ("auto", "onesend"):
        try:
            from streaming.registry.wire import OneSendHttpToolsProtocol
        except ImportError:  # httptools missing
            if choice == "onesend":
                raise ConfigError(
                    ["REGISTRY_SERVER_HTTP=onesend needs httptools: pip install httptools"],
                    title="schema registry cannot start",
                ) from None
            return "h11"
        return OneSendHttpToolsProtocol
    return choice


def loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop to serve on: uvloop (installed with the package) unless told
    ``asyncio``; ``None`` means asyncio's default."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                ["REGISTRY_SERVER_LOOP=uvloop but uvloop is not installed: pip install uvloop"],
                title="schema registry cannot start",
            ) from None
        return None
    return uvloop.new_event_loop


def serve_blocking(main: Coroutine[Any, Any, None], settings: ServerSettings) -> None:
    """Run ``main`` (which serves the registry) to completion on the configured loop.

    Objects alive after startup (modules, the folded state) are frozen out of the
    cyclic GC's reach, so a full collection under load walks only request garbage.
    """
    with asyncio.Runner(loop_factory=loop_factory(settings.loop)) as runner:
        gc.freeze()
        runner.run(main)


async def start_registry_in_background(
    settings: ServerSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    transport: TransportFactory | None = None,
    audit: RegistryAuditHook | None = None,
) -> RegistryServer:
    """Start a caught-up registry in this event loop; use ``.url`` and ``await .stop()``."""
    server = RegistryServer(
        settings or ServerSettings(port=0), kafka=kafka, transport=transport, audit=audit
    )
    await server.start()
    return server


__all__ = [
    "RegistryServer",
    "ServerSettings",
    "loop_factory",
    "serve_blocking",
    "start_registry_in_background",
]
