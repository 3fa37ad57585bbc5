"""Revocations made by the CLI reach running registry processes within the documented
bound (SECURITY_REVOCATION_MAX_LAG_S, 2 s): one registry with PostgreSQL configured, one
with Kafka only, both real ``streaming registry serve`` subprocesses."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from streaming.config import DatabaseSettings, KafkaSettings, SecuritySettings
from streaming.security import JWTManager, TokenRevokedError, shared_revocations
from tests.integration.security.secured_registry import (
    Deployment,
    assert_refused,
    bearer,
    claims,
    deployment,
    eventually,
    mint,
    registry_process,
    run_cli,
    status,
)

BOUND_S = 2.0  # the documented bound: SecuritySettings.revocation_max_lag_s


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
) -> Iterator[tuple[Deployment, list[tuple[str, Path]]]]:
    """Two registry instances: A with DATABASE_URL, B with Kafka alone (shared by the
    module: each test uses its own tokens)."""
    tmp_path = tmp_path_factory.mktemp("revocation")
    url = database_settings.connection_url.replace("postgresql+asyncpg", "postgresql")
    dep = deployment(tmp_path, kafka_settings.bootstrap_servers, url)
    logs = (tmp_path / "registry-a.log", tmp_path / "registry-b.log")
    with (
        registry_process(dep.env, logs[0]) as a,
        registry_process(dep.without_database(), logs[1]) as b,
    ):
        yield dep, [(a, logs[0]), (b, logs[1])]


def _refused_everywhere(
    registries: list[tuple[str, Path]], tokens: list[str], since: float
) -> list[float]:
    """Poll every (registry, token) pair round-robin until each answers 401; the seconds
    from ``since`` to each pair's first refusal."""
    pending = {(url, token) for url, _log in registries for token in tokens}
    elapsed: list[float] = []

    def all_refused() -> bool:
        for pair in list(pending):
            if status(*pair) == 401:
                elapsed.append(time.monotonic() - since)
                pending.discard(pair)
        return not pending

    eventually(all_refused, timeout_s=15, what=f"refusals of {len(pending)} (registry, token)")
    return elapsed


def _assert_logged_without_token(log: Path, tokens: list[str], jti: str) -> None:
    text = log.read_text()
    assert "revoked_token_refused" in text and jti in text
    for token in tokens:
        assert token not in text


def test_cli_revoke_is_refused_by_every_registry_within_the_bound(
    stack: tuple[Deployment, list[tuple[str, Path]]], database_settings: DatabaseSettings
) -> None:
    dep, registries = stack
    token = mint(dep.env, "svc-orders", "schema-reader")["access_token"]
    jti = claims(token)["jti"]
    for url, _ in registries:
        eventually(lambda u=url: status(u, token) == 200, timeout_s=30, what="token accepted")

    run_cli(["auth", "revoke", "--jti", jti, "--json"], dep.env)
    revoked_at = time.monotonic()
    elapsed = _refused_everywhere(registries, [token], revoked_at)
    print(f"jti revocation refused by {len(registries)} registries after {elapsed} s")
    assert max(elapsed) < BOUND_S

    for url, log in registries:
        response = httpx.get(f"{url}/subjects", headers=bearer(token), timeout=5.0)
        body = assert_refused(response, token)
        assert body["error_code"] == 40101 and "revoked" in body["message"]
        _assert_logged_without_token(log, [token], jti)
    assert asyncio.run(_durable(database_settings, "jti", jti))


def test_refresh_reuse_revokes_the_family_on_every_registry_within_the_bound(
    stack: tuple[Deployment, list[tuple[str, Path]]], database_settings: DatabaseSettings
) -> None:
    dep, registries = stack
    first = mint(dep.env, "svc-risk", "schema-reader")
    rotated_run = run_cli(["auth", "refresh", "--json"], dep.env, stdin=first["refresh_token"])
    rotated = json.loads(rotated_run.stdout)
    family = claims(first["access_token"])["fam"]
    assert rotated["family_id"] == family
    tokens = [first["access_token"], rotated["access_token"]]
    for url, _ in registries:
        for token in tokens:
            eventually(lambda u=url, t=token: status(u, t) == 200, timeout_s=30, what="accepted")

    reuse = run_cli(["auth", "refresh"], dep.env, stdin=first["refresh_token"], check=False)
    assert reuse.returncode == 1, reuse.stderr
    assert "refresh_reused" in reuse.stderr and first["refresh_token"] not in reuse.stderr
    reused_at = time.monotonic()
    elapsed = _refused_everywhere(registries, tokens, reused_at)
    print(f"family revocation refused by {len(registries)} registries after {elapsed} s")
    assert max(elapsed) < BOUND_S

    for url, log in registries:
        for token in tokens:
            response = httpx.get(f"{url}/subjects", headers=bearer(token), timeout=5.0)
            assert_refused(response, token)
        _assert_logged_without_token(log, tokens, family)
    again = run_cli(["auth", "refresh"], dep.env, stdin=rotated["refresh_token"], check=False)
    assert again.returncode == 1 and "revoked" in again.stderr
    assert asyncio.run(_durable(database_settings, "family", family))


def test_family_revoked_without_postgresql_is_refused_everywhere_within_the_bound(
    stack: tuple[Deployment, list[tuple[str, Path]]], database_settings: DatabaseSettings
) -> None:
    """A Kafka-only deployment: the CLI has no DATABASE_URL, the topic alone carries it."""
    dep, registries = stack
    pair = mint(dep.env, "svc-ledger", "schema-reader")
    family = claims(pair["access_token"])["fam"]
    for url, _ in registries:
        eventually(lambda u=url: status(u, pair["access_token"]) == 200, timeout_s=30, what="ok")

    run_cli(["auth", "revoke", "--family", family], dep.without_database())
    elapsed = _refused_everywhere(registries, [pair["access_token"]], time.monotonic())
    print(f"Kafka-only family revocation refused after {elapsed} s")
    assert max(elapsed) < BOUND_S
    assert not asyncio.run(_durable(database_settings, "family", family))


def test_an_in_process_verifier_honours_a_cli_revocation(
    stack: tuple[Deployment, list[tuple[str, Path]]], kafka_settings: KafkaSettings
) -> None:
    """A client-side guard (any JWTManager built with shared_revocations, no database)."""
    dep, _ = stack
    security = SecuritySettings(
        jwt_private_key_pem=SecretStr(dep.env["SECURITY_JWT_PRIVATE_KEY_PEM"]),
        revocation_topic=dep.revocation_topic,
    )
    token = mint(dep.env, "svc-guard", "schema-reader")["access_token"]

    async def scenario() -> float:
        store = shared_revocations(security, kafka_settings)
        await store.start()
        try:
            await store.wait_current(30)
            guard = JWTManager(security, revocations=store)
            jti = (await guard.verify_access_token(token)).token_id
            await asyncio.to_thread(run_cli, ["auth", "revoke", "--jti", jti], dep.env)
            revoked_at = time.monotonic()
            while True:
                try:
                    await guard.verify_access_token(token)
                except TokenRevokedError:
                    return time.monotonic() - revoked_at
                assert time.monotonic() - revoked_at < 15, "never refused"
                await asyncio.sleep(0.01)  # poll
        finally:
            await store.stop()

    elapsed = asyncio.run(scenario())
    print(f"in-process guard refused the revoked token after {elapsed:.3f} s")
    assert elapsed < BOUND_S


async def _durable(database: DatabaseSettings, kind: str, ident: str) -> bool:
    """The durable copy, read with raw SQL."""
    url = database.connection_url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT 1 FROM security_token_revocations WHERE kind = $1 AND id = $2", kind, ident
        )
    finally:
        await conn.close()
    return row is not None
