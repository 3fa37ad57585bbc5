"""The registry with auth on: confluent-kafka's client over Basic auth, bearer tokens,
401/40101 and 403/40301, reads allowed while writes are denied for a read-only role."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pydantic import SecretStr

from streaming.config import KafkaSettings, RegistrySettings, SecuritySettings
from streaming.errors import ConfigError
from streaming.registry.auth import auth_from_settings
from streaming.registry.server import RegistryServer, ServerSettings
from streaming.security.hashing import SecureHasher
from streaming.security.jwt import JWTManager
from streaming.security.keys import SigningKey
from tests.integration.security.secured_registry import POLICY

PEPPER = "registry-auth-pepper-0123456789"
SCHEMA = '{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}'


def _security(tmp_path: Path, key: SigningKey) -> SecuritySettings:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return SecuritySettings(
        password_pepper=SecretStr(PEPPER),
        jwt_private_key_pem=SecretStr(key.private_pem()),
        rbac_policy_path=policy,
    )


def _credentials(tmp_path: Path, security: SecuritySettings) -> Path:
    hasher = SecureHasher(security, time_cost=1, memory_cost_kib=1024, parallelism=1)
    users = {
        "reader": ("Reader-Pass-123", "schema-reader"),
        "writer": ("Writer-Pass-123", "orders-writer"),
        "admin": ("Admin-Pass-123", "registry-admin"),
    }
    lines = ["users:"]
    for name, (password, role) in users.items():
        lines += [
            f"  {name}:",
            f"    password_hash: '{hasher.hash_password(password)}'",
            f"    roles: [{role}]",
        ]
    path = tmp_path / "credentials.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest_asyncio.fixture
async def secured(
    tmp_path: Path, kafka_settings: KafkaSettings
) -> AsyncIterator[tuple[str, JWTManager]]:
    key = SigningKey.generate("EdDSA")
    security = _security(tmp_path, key)
    registry = RegistrySettings(
        auth_enabled=True, credentials_path=_credentials(tmp_path, security)
    )
    auth = auth_from_settings(registry, security, kafka=kafka_settings)
    assert auth is not None
    topic = f"_schemas-auth-{uuid.uuid4().hex[:10]}"
    settings = ServerSettings(port=0, topic=topic, audit="log")
    server = RegistryServer(settings, kafka=kafka_settings, auth=auth)
    await server.start()
    try:
        yield server.url, JWTManager(security)
    finally:
        await server.stop()


def _client(url: str, user: str, password: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url, "basic.auth.user.info": f"{user}:{password}"})


async def test_confluent_client_with_basic_auth_per_role(
    secured: tuple[str, JWTManager],
) -> None:
    url, _ = secured
    writer = _client(url, "writer", "Writer-Pass-123")
    reader = _client(url, "reader", "Reader-Pass-123")
    schema = Schema(SCHEMA, "AVRO")

    schema_id = await asyncio.to_thread(writer.register_schema, "orders-value", schema)
    assert await asyncio.to_thread(reader.get_subjects) == ["orders-value"]
    fetched = await asyncio.to_thread(reader.get_schema, schema_id)
    assert "Order" in fetched.schema_str

    with pytest.raises(SchemaRegistryError) as read_only:
        await asyncio.to_thread(reader.register_schema, "orders-value", schema)
    assert (read_only.value.http_status_code, read_only.value.error_code) == (403, 40301)

    with pytest.raises(SchemaRegistryError) as other_subject:
        await asyncio.to_thread(writer.register_schema, "users-value", schema)
    assert other_subject.value.error_code == 40301

    with pytest.raises(SchemaRegistryError) as not_admin:
        await asyncio.to_thread(writer.set_compatibility, "orders-value", "FULL")
    assert not_admin.value.error_code == 40301
    admin = _client(url, "admin", "Admin-Pass-123")
    await asyncio.to_thread(admin.set_compatibility, "orders-value", "FULL")

    wrong = _client(url, "reader", "not-the-password")
    with pytest.raises(SchemaRegistryError) as unauthorized:
        await asyncio.to_thread(wrong.get_subjects)
    assert (unauthorized.value.http_status_code, unauthorized.value.error_code) == (401, 40101)


async def test_bearer_tokens_and_missing_credentials(secured: tuple[str, JWTManager]) -> None:
    url, jwt = secured
    token = await jwt.create_access_token("svc-orders", roles=["schema-reader"])
    async with httpx.AsyncClient(base_url=url) as http:
        anonymous = await http.get("/subjects")
        assert anonymous.status_code == 401
        assert anonymous.json()["error_code"] == 40101
        assert "Basic" in anonymous.headers["www-authenticate"]

        bearer = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/subjects", headers=bearer)).status_code == 200
        denied = await http.post(
            "/subjects/orders-value/versions", json={"schema": SCHEMA}, headers=bearer
        )
        assert (denied.status_code, denied.json()["error_code"]) == (403, 40301)

        forged = {"Authorization": f"Bearer {token[:-4]}AAAA"}
        assert (await http.get("/subjects", headers=forged)).status_code == 401


def test_auth_on_without_policy_or_credentials_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        auth_from_settings(RegistrySettings(auth_enabled=True), SecuritySettings())
    assert len(info.value.problems) == 2
    assert auth_from_settings(RegistrySettings(), SecuritySettings()) is None
