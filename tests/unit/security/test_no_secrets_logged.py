"""No secret or token reaches the logs: raw structlog events (before any masking) and
stdlib records are captured through a whole security workflow and searched."""

from __future__ import annotations

import base64
import logging
import os

import pytest
import structlog
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.errors import SecurityError
from streaming.security import (
    Action,
    FieldEncryptor,
    HttpAuthenticator,
    InMemoryCredentialStore,
    JWTManager,
    KeyRing,
    PasswordAuthenticator,
    Policy,
    Principal,
    RoleBasedAccessControl,
    SecureHasher,
    SigningKey,
    TopicAuthorizer,
)
from streaming.security.credentials import Credential

from .conftest import PEPPER

GOOD_PASSWORD = "Reader-Secret-Pass-991"
WRONG_PASSWORD = "Wrong-Guess-Pass-552"


async def test_security_workflow_logs_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = SigningKey.generate("EdDSA")
    hs_secret = "hs256-secret-" + "z" * 40
    field_key = os.urandom(32)
    settings = SecuritySettings(
        jwt_private_key_pem=SecretStr(key.private_pem()),
        password_pepper=SecretStr(PEPPER),
        jwt_secret_key=SecretStr(hs_secret),
    )
    hasher = SecureHasher(settings, time_cost=1, memory_cost_kib=1024, parallelism=1)
    policy = Policy.from_mapping({"roles": {"reader": {"permissions": ["subject:*:read"]}}})
    rbac = RoleBasedAccessControl(policy)  # default audit: structlog
    manager = JWTManager(settings, keys=KeyRing.from_settings(settings))
    store = InMemoryCredentialStore()
    store.add("reader", GOOD_PASSWORD, hasher, roles=["reader"])
    foreign = SecureHasher(
        pepper="foreign-pepper-0123456789abcdef", time_cost=1, memory_cost_kib=1024, parallelism=1
    )
    store_hash = foreign.hash_password(GOOD_PASSWORD)
    stale = InMemoryCredentialStore([Credential("stale", store_hash)])
    http = HttpAuthenticator(rbac, jwt=manager, passwords=PasswordAuthenticator(store, hasher))
    stale_http = HttpAuthenticator(rbac, passwords=PasswordAuthenticator(stale, hasher))
    secrets_seen: list[str] = [GOOD_PASSWORD, WRONG_PASSWORD, PEPPER, hs_secret, key.private_pem()]
    secrets_seen.append(store_hash)

    with structlog.testing.capture_logs() as events:
        pair = await manager.issue_tokens("reader", roles=["reader"])
        second = await manager.refresh(pair.refresh_token)
        with pytest.raises(SecurityError):
            await manager.refresh(pair.refresh_token)  # reuse -> family revoked
        with pytest.raises(SecurityError):
            await http.authenticate(f"Bearer {second.access_token}")
        other = await manager.issue_tokens("reader", roles=["reader"])
        await http.guard_registry_request("GET", "/subjects", f"Bearer {other.access_token}")
        with pytest.raises(SecurityError):
            await http.guard_registry_request(
                "POST", "/subjects/x/versions", f"Bearer {other.access_token}"
            )
        await manager.revoke_token(other.access_token)
        good_header = "Basic " + base64.b64encode(f"reader:{GOOD_PASSWORD}".encode()).decode()
        bad_header = "Basic " + base64.b64encode(f"reader:{WRONG_PASSWORD}".encode()).decode()
        await http.authenticate(good_header)
        with pytest.raises(SecurityError):
            await http.authenticate(bad_header)
        with pytest.raises(SecurityError):
            await stale_http.authenticate(
                "Basic " + base64.b64encode(f"stale:{GOOD_PASSWORD}".encode()).decode()
            )
        with pytest.raises(SecurityError):
            await TopicAuthorizer(rbac).check(
                Principal("svc", frozenset({"reader"})), "orders.created", Action.WRITE
            )
        FieldEncryptor(field_key).encrypt(b"pii")
        secrets_seen += [
            pair.access_token,
            pair.refresh_token,
            second.access_token,
            second.refresh_token,
            other.access_token,
            other.refresh_token,
            good_header.split(" ")[1],
            bad_header.split(" ")[1],
            field_key.hex(),
            base64.b64encode(field_key).decode(),
        ]

    captured = [repr(e) for e in events] + [
        r.getMessage() + repr(r.__dict__) for r in caplog.records
    ]
    kinds = {e.get("security_event") for e in events}
    assert {
        "token_refreshed",
        "refresh_reuse_detected",
        "permission_denied",
        "token_revoked",
        "login",
        "login_failed",
    } <= kinds
    assert any(e.get("event") == "stored_credential_unusable" for e in events)
    blob = "\n".join(captured)
    for secret in secrets_seen:
        assert secret not in blob
        # Tokens are long; make sure no large fragment (e.g. the signature) leaked either.
        if len(secret) > 60:
            assert secret[-40:] not in blob
