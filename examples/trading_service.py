# ruff: noqa: S608  # table and schema names are constants of this file
"""The platform document's ``TradingService`` and authentication flow, run for real.

Everything below is written against the seed's API (``from streaming import *`` is the
document's ``from src.infrastructure import *``) and configured by its environment
variables: ``KAFKA_BOOTSTRAP_SERVERS``, ``REGISTRY_URL``, ``DATABASE_URL`` (or ``DB_*``),
``SECURITY_*``, ``LOG_*``, ``MESSAGING_*``. What happens, printed step by step:

1. login: a wrong password is refused (``LOGIN_FAILED`` audited), the right one gets a
   JWT (``USER_LOGIN`` audited);
2. ``place_order`` for a trader: permission checked, the order row and its outbox row
   written in one database transaction, the ``ORDER_PLACED`` audit event recorded; the
   outbox relay publishes ``OrderPlaced`` and a risk consumer on the event bus handles
   it with the request's correlation id; a user without the permission is refused
   (``PERMISSION_DENIED`` and a failed ``ORDER_PLACED`` audited, nothing written);
3. the audit sink chains every audit event of the run into PostgreSQL and verifies it.

Run it against the dev stack: ``eval "$(streaming dev env)"; python
examples/trading_service.py``. Secrets that are not set (JWT secret, pepper, encryption
key, audit keys) get throw-away values for this run. Each run uses its own topics, audit
schema and consumer group (``--run-id``), so it can run again and again.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sys
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from connectors.audit_sink.config import AuditSinkSettings
from connectors.audit_sink.runtime import run_verify, running_sink
from connectors.outbox_relay import OutboxRelay, OutboxWriter, migrate_outbox
from streaming import *  # noqa: F403 - the seed's "from src.infrastructure import *"
from streaming import (  # the same names, spelled out for the type checker
    Action,
    AuditEventType,
    AuditLogger,
    AuthenticationError,
    AvroSerializer,
    DatabaseConnectionManager,
    ExecutionContext,
    JWTManager,
    OrderPlaced,
    PermissionDenied,
    ResourceType,
    RoleBasedAccessControl,
    SchemaRegistryClient,
    SecureHasher,
    Settings,
    TransactionManager,
    configure_logging,
    create_event_bus,
    execution_context,
    get_settings,
    require_permission,
    set_default_audit_logger,
    with_audit_context,
    with_execution_context,
    with_performance_monitoring,
)
from streaming.events import Money, OrderSide, OrderType
from streaming.security import Policy
from streaming.testing import eventually

ORDERS_TABLE = "example_orders"
OUTBOX_TABLE = "example_outbox"
AUDIT_EVENTS_EXPECTED = 5  # LOGIN_FAILED, USER_LOGIN, ORDER_PLACED, PERMISSION_DENIED, refused


def say(step: str, message: str) -> None:
    print(f"[{step}] {message}", flush=True)


def demo_secrets() -> list[str]:
    """Throw-away values for the secrets this run needs and the environment lacks."""
    signing = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    defaults = {
        "SECURITY_JWT_SECRET_KEY": secrets.token_urlsafe(32),
        "SECURITY_PASSWORD_PEPPER": secrets.token_urlsafe(24),
        "SECURITY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "AUDIT_MAC_KEYS": f"demo:{secrets.token_urlsafe(32)}",
        "AUDIT_SIGNING_KEY": base64.b64encode(signing).decode(),
    }
    generated = [name for name in defaults if not os.environ.get(name)]
    for name in generated:
        os.environ[name] = defaults[name]
    return generated


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class User:
    user_id: str
    password_hash: str
    permissions: tuple[str, ...]


TRADER_PASSWORD = "correct horse battery staple 42"  # noqa: S105 - the demo user's


def user_store(hasher: SecureHasher) -> dict[str, User]:
    return {
        "alice": User("alice", hasher.hash_password(TRADER_PASSWORD), ("order:create",)),
        "bob": User("bob", hasher.hash_password("bob's own passphrase 7"), ()),
    }


def rbac_policy() -> Policy:
    return Policy.from_mapping(
        {"roles": {"trader": {"permissions": ["order:create"]}}, "users": {"alice": ["trader"]}}
    )


# --------------------------------------------------------------------------- the seed's flow


@dataclass(frozen=True)
class Login:
    """What the seed's authentication flow finds around it."""

    settings: Settings
    users: dict[str, User]
    jwt_manager: JWTManager
    audit_logger: AuditLogger


async def authenticate_user(username: str, password: str, ip_address: str, login: Login) -> str:
    """The seed's "Authentication Flow", with its reader-supplied names filled in."""
    settings, jwt_manager, audit_logger = login.settings, login.jwt_manager, login.audit_logger
    users = login.users
    user = users.get(username)
    stored_hash = user.password_hash if user else ""
    user_id = user.user_id if user else None
    user_permissions = list(user.permissions) if user else []

    # Create execution context
    context = ExecutionContext.create_for_system("authenticate_user")

    # Verify password
    hasher = SecureHasher(settings.security)
    if user is None or not hasher.verify_password(password, stored_hash):
        # Log failed attempt
        await audit_logger.log_authentication_event(
            AuditEventType.LOGIN_FAILED,
            user_id=None,
            success=False,
            ip_address=ip_address,
            failure_reason="Invalid password",
        )
        raise AuthenticationError("Invalid credentials")

    # Create tokens
    access_token = await jwt_manager.create_access_token(
        user_id=user_id,  # type: ignore[arg-type]  # set whenever user is
        permissions=user_permissions,
        execution_context=context,
    )

    # Log successful login
    await audit_logger.log_authentication_event(
        AuditEventType.USER_LOGIN,
        user_id=user_id,
        success=True,
        ip_address=ip_address,
    )

    return access_token


def OrderPlacedEvent(  # the seed's name for the domain event
    order_id: uuid.UUID, user_id: str, symbol: str, quantity: int, price: Decimal
) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        account_id=user_id,
        symbol=symbol,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(quantity),
        limit_price=Money(amount=price, currency="USD"),
    )


class TradingService:
    """The seed's "Complete Service Integration", with the transactional outbox."""

    def __init__(
        self,
        db_manager: DatabaseConnectionManager,
        jwt_manager: JWTManager,
        rbac: RoleBasedAccessControl,
        event_bus: Any,
        audit_logger: AuditLogger,
        *,
        outbox: OutboxWriter | None = None,
    ) -> None:
        self.db_manager = db_manager
        self.jwt_manager = jwt_manager
        self.rbac = rbac
        self.event_bus = event_bus
        self.audit_logger = audit_logger
        self.transaction_manager = TransactionManager(db_manager)
        self.outbox = outbox

    @with_execution_context("place_order")
    @with_audit_context("order", "place", "User requested order placement")
    @with_performance_monitoring(slow_threshold_ms=500)
    @require_permission(ResourceType.ORDER, Action.CREATE)
    async def place_order(
        self, user_id: str, symbol: str, quantity: int, price: Decimal
    ) -> uuid.UUID:
        # Check permissions (handled by decorator)

        # Execute in transaction
        async with self.transaction_manager.transaction() as session:
            # Save order to database
            order_id = await self.save_order(session, user_id, symbol, quantity, price)

            # Publish domain event: through the outbox (same transaction) when enabled
            event = OrderPlacedEvent(order_id, user_id, symbol, quantity, price)
            if self.outbox is not None:
                await self.outbox.add(session, self.event_bus.topic_of(OrderPlaced), event)
            else:
                await self.event_bus.publish(event)

            return order_id

    async def save_order(
        self, session: AsyncSession, user_id: str, symbol: str, quantity: int, price: Decimal
    ) -> uuid.UUID:
        order_id = uuid.uuid4()
        await session.execute(
            text(
                f"INSERT INTO {ORDERS_TABLE} (order_id, user_id, symbol, quantity, price) "
                "VALUES (:id, :user, :symbol, :quantity, :price)"
            ),
            {
                "id": order_id,
                "user": user_id,
                "symbol": symbol,
                "quantity": quantity,
                "price": price,
            },
        )
        return order_id


# --------------------------------------------------------------------------- wiring


def incoming_request(correlation_id: str, client_ip: str) -> Request:
    """What a FastAPI endpoint would receive: POST /orders from behind a proxy."""
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/orders",
            "headers": [
                (b"x-correlation-id", correlation_id.encode()),
                (b"x-forwarded-for", f"{client_ip}, 10.0.0.2".encode()),
            ],
            "client": ("10.0.0.2", 51000),
        }
    )


async def prepare_tables(db_manager: DatabaseConnectionManager) -> None:
    await migrate_outbox(db_manager, OUTBOX_TABLE)
    async with db_manager.connect() as conn:
        await conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {ORDERS_TABLE} (order_id uuid PRIMARY KEY, "
                "user_id text NOT NULL, symbol text NOT NULL, quantity integer NOT NULL, "
                "price numeric NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
            )
        )
        await conn.commit()


async def main(run_id: str) -> int:
    generated = demo_secrets()
    settings = get_settings()
    configure_logging(settings.logging)
    if generated:
        say("setup", f"throw-away values for this run: {', '.join(generated)}")
    audit_topic = f"example.audit.{run_id}"
    say("setup", f"run {run_id}: audit topic {audit_topic}, audit schema example_audit_{run_id}")

    db_manager = DatabaseConnectionManager(settings.database)
    await db_manager.initialize()
    await prepare_tables(db_manager)
    registry = SchemaRegistryClient(settings.registry)
    hasher = SecureHasher(settings.security)
    users = user_store(hasher)
    jwt_manager = JWTManager(settings.security)
    encryption_key = settings.security.encryption_key
    audit_logger = AuditLogger(encryption_key, topic=audit_topic, settings=settings)
    set_default_audit_logger(audit_logger)  # what @with_audit_context records through
    rbac = RoleBasedAccessControl(rbac_policy(), audit=audit_logger.record_security_event)
    event_bus = create_event_bus(
        settings,
        registry=registry,
        group_id=f"example-risk-{run_id}",
        topic_for=lambda cls: f"example.{cls.type_name()}.{run_id}",
    )
    use_outbox = settings.messaging.outbox_enabled and settings.messaging.event_bus_type == "kafka"
    outbox = OutboxWriter(AvroSerializer(registry), table=OUTBOX_TABLE) if use_outbox else None
    service = TradingService(db_manager, jwt_manager, rbac, event_bus, audit_logger, outbox=outbox)

    handled = asyncio.Event()

    async def risk_check(event: OrderPlaced, context: ExecutionContext) -> None:
        say(
            "consumer",
            f"risk check of OrderPlaced {event.order_id}: {event.quantity} {event.symbol} "
            f"for {event.account_id} (correlation {context.correlation_id})",
        )
        handled.set()

    await event_bus.start()
    await event_bus.subscribe("OrderPlaced", risk_check)
    relay_producer = event_bus.transport.producer()  # the relay publishes, we own it
    relay = OutboxRelay(db_manager, relay_producer, table=OUTBOX_TABLE)
    relay_task: asyncio.Task[None] | None = None
    if use_outbox:
        await relay_producer.start()
        relay_task = asyncio.create_task(relay.run())
    try:
        # 1. login
        login = Login(settings, users, jwt_manager, audit_logger)
        try:
            await authenticate_user("alice", "not my password", "198.51.100.7", login)
        except AuthenticationError as exc:
            say("login", f"alice with a wrong password: refused ({exc}); LOGIN_FAILED audited")
        token = await authenticate_user("alice", TRADER_PASSWORD, "198.51.100.7", login)
        claims = await jwt_manager.verify_access_token(token)
        say(
            "login",
            f"alice logged in: {settings.security.jwt_algorithm} token for {claims.subject} "
            f"with permissions {sorted(str(p) for p in claims.permissions)}; USER_LOGIN audited",
        )

        # 2. orders, inside the request's context
        correlation = f"req-{run_id}"
        request = ExecutionContext.create_for_request(
            incoming_request(correlation, "203.0.113.50"), claims.subject
        )
        with execution_context(request):
            order_id = await service.place_order("alice", "AAPL", 10, Decimal("189.25"))
            say(
                "order",
                f"alice placed order {order_id} (correlation {correlation}); order row and "
                f"{'outbox row' if use_outbox else 'event'} written in one transaction; "
                "ORDER_PLACED audited",
            )
            try:
                await service.place_order("bob", "TSLA", 5, Decimal("250"))
            except PermissionDenied as exc:
                say("order", f"bob refused: {exc}; PERMISSION_DENIED audited, nothing written")
        await asyncio.wait_for(handled.wait(), timeout=60)
        rows = await db_manager.execute_scalar(
            f"SELECT count(*) FROM {ORDERS_TABLE} WHERE order_id = :id", id=order_id
        )
        say("order", f"orders table holds {rows} row for order {order_id}")
        metrics = event_bus.get_metrics()
        say(
            "bus",
            f"health {(await event_bus.health_check()).value}; events processed "
            f"{metrics.events_processed}, average {metrics.average_processing_time_ms:.1f} ms",
        )

        # 3. the audit chain
        sink_settings = AuditSinkSettings(
            topics=audit_topic,
            group_id=f"example-audit-sink-{run_id}",
            db_schema=f"example_audit_{run_id}",
            checkpoint_every_s=1.0,
        )
        chained = await chain_audit_events(db_manager, event_bus.transport, registry, sink_settings)
        report = await run_verify(
            transport=event_bus.transport, database=db_manager, settings=sink_settings
        )
        say(
            "audit",
            f"sink chained {chained} audit events into {sink_settings.db_schema}.audit_log: "
            f"{', '.join(await audit_types(db_manager, sink_settings.db_schema))}",
        )
        say(
            "audit",
            f"verify: {'intact' if report.ok else 'BROKEN'} ({report.rows} rows, "
            f"{report.chains} chain(s), checkpoint {report.latest_checkpoint_id})",
        )
        return 0 if report.ok else 1
    finally:
        relay.stop()
        if relay_task is not None:
            await relay_task
            await relay_producer.stop()
        await event_bus.stop()
        await audit_logger.aclose()
        await registry.aclose()
        await db_manager.close()


async def chain_audit_events(
    db_manager: DatabaseConnectionManager,
    transport: Any,
    registry: SchemaRegistryClient,
    settings: AuditSinkSettings,
) -> int:
    """Run the audit sink until every audit event of this run is in the chain."""
    async with running_sink(
        transport=transport, database=db_manager, registry=registry, settings=settings
    ) as sink:
        task = asyncio.create_task(sink.run())

        def chained() -> bool:
            if task.done():
                task.result()  # the sink's own error, if it stopped
            return sink.stats.rows >= AUDIT_EVENTS_EXPECTED

        try:
            await eventually(chained, timeout_s=60, what="every audit event of the run chained")
        finally:
            sink.stop()
            await task
        return sink.stats.rows


async def audit_types(db_manager: DatabaseConnectionManager, schema: str) -> list[str]:
    async with db_manager.connect() as conn:
        result = await conn.execute(
            text(f"SELECT event_type FROM {schema}.audit_log ORDER BY recorded_at, seq")
        )
        return [str(row[0]) for row in result]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-id", default=secrets.token_hex(3), help="suffix of names")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.run_id)))
