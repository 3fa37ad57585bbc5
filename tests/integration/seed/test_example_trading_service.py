"""examples/trading_service.py run as a user runs it (a subprocess on the test stack), then
checked from the outside: its output, the orders and outbox rows, the audit chain in
PostgreSQL, and ``streaming audit verify`` with the keys we gave it."""

from __future__ import annotations

import base64
import os
import re
import secrets
import sys
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from streaming.db import Database
from streaming.testing.stack import StackEndpoints
from tests.integration.children import run_to_end

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT_S = 180


async def run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    return await run_to_end(argv, env, ROOT, TIMEOUT_S)


def one(pattern: str, output: str) -> re.Match[str]:
    found = re.search(pattern, output, re.MULTILINE)
    assert found is not None, f"{pattern!r} not in the example's output:\n{output}"
    return found


def seed_environment(stack: StackEndpoints, registry_url: str) -> dict[str, str]:
    signing = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "DATABASE_URL": stack.database_url,
        "REGISTRY_URL": registry_url,
        "SECURITY_JWT_SECRET_KEY": secrets.token_urlsafe(32),
        "SECURITY_PASSWORD_PEPPER": secrets.token_urlsafe(24),
        "SECURITY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "AUDIT_MAC_KEYS": f"t1:{secrets.token_urlsafe(32)}",
        "AUDIT_SIGNING_KEY": base64.b64encode(signing).decode(),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


async def test_example_logs_in_places_an_order_and_chains_the_audit_trail(
    streaming_stack: StackEndpoints, registry_url: str, database: Database
) -> None:
    run_id = uuid.uuid4().hex[:8]
    env = seed_environment(streaming_stack, registry_url)
    code, out, err = await run(
        [sys.executable, "examples/trading_service.py", "--run-id", run_id], env
    )
    assert code == 0, f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert "throw-away" not in out  # it used the secrets we gave it
    one(r"^\[login\] alice with a wrong password: refused", out)
    one(r"^\[login\] alice logged in: HS256 token for alice", out)
    order_id = one(r"^\[order\] alice placed order ([0-9a-f-]{36}) \(correlation req-", out)[1]
    one(r"^\[order\] bob refused: .*not allowed to create order", out)
    one(
        rf"^\[consumer\] risk check of OrderPlaced {order_id}: .* for alice "
        rf"\(correlation req-{run_id}\)",
        out,
    )
    one(r"^\[bus\] health healthy; events processed 1", out)
    one(r"^\[audit\] verify: intact \(5 rows, 1 chain\(s\)", out)

    schema = f"example_audit_{run_id}"
    async with database.connect() as conn:
        orders = (
            await conn.execute(
                text("SELECT user_id, symbol FROM example_orders WHERE order_id = :id"),
                {"id": uuid.UUID(order_id)},
            )
        ).all()
        bobs = await conn.scalar(text("SELECT count(*) FROM example_orders WHERE user_id = 'bob'"))
        outbox = (
            await conn.execute(
                text(
                    "SELECT event_type, topic, sent_at IS NOT NULL FROM example_outbox "
                    "WHERE topic = :topic"
                ),
                {"topic": f"example.OrderPlaced.{run_id}"},
            )
        ).all()
        audit = (
            await conn.execute(text(f"SELECT event_type, seq FROM {schema}.audit_log ORDER BY seq"))
        ).all()
    assert orders == [("alice", "AAPL")]
    assert bobs == 0
    assert outbox == [("OrderPlaced", f"example.OrderPlaced.{run_id}", True)]
    assert [row[0] for row in audit] == [
        "LOGIN_FAILED",
        "USER_LOGIN",
        "ORDER_PLACED",
        "PERMISSION_DENIED",
        "ORDER_PLACED",
    ]
    assert [row[1] for row in audit] == [1, 2, 3, 4, 5]

    verify_env = {**env, "AUDIT_DB_SCHEMA": schema, "AUDIT_TOPICS": f"example.audit.{run_id}"}
    code, out, err = await run([sys.executable, "-m", "streaming", "audit", "verify"], verify_env)
    assert code == 0, f"audit verify exit {code}\n{out}\n{err}"
    async with database.connect() as conn:
        await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await conn.commit()
