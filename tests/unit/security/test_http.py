"""HTTP request authentication for the registry: Bearer and Basic, 401/403 in Confluent shape."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest

from streaming.errors import AuthenticationError, PermissionDenied
from streaming.security import (
    Action,
    HashingError,
    HttpAuthenticator,
    InMemoryCredentialStore,
    JWTManager,
    PasswordAuthenticator,
    Policy,
    ResourceType,
    RoleBasedAccessControl,
    SecureHasher,
    http_error,
    registry_requirement,
)
from streaming.security.credentials import Credential
from streaming.security.errors import RevocationsUnavailableError
from streaming.security.http import Requirement

from .conftest import AuditRecorder

SUBJECT = ResourceType.SUBJECT
POLICY = Policy.from_mapping(
    {
        "roles": {
            "schema-reader": {"permissions": ["subject:*:read"]},
            "schema-writer": {"inherits": ["schema-reader"], "permissions": ["subject:*:write"]},
            "schema-admin": {"permissions": ["subject:*:admin"]},
            "orders-team": {"permissions": ["subject:orders-*:read,write"]},
        }
    }
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def store(hasher: SecureHasher) -> InMemoryCredentialStore:
    store = InMemoryCredentialStore()
    store.add("reader", "Reader-Pass-123", hasher, roles=["schema-reader"])
    store.add("admin", "Admin-Pass-123", hasher, roles=["schema-admin"])
    return store


@pytest.fixture
def auth(
    store: InMemoryCredentialStore,
    hasher: SecureHasher,
    manager: JWTManager,
    audit: AuditRecorder,
) -> HttpAuthenticator:
    passwords = PasswordAuthenticator(store, hasher, audit=audit)
    return HttpAuthenticator(
        RoleBasedAccessControl(POLICY, audit=audit), jwt=manager, passwords=passwords
    )


async def test_missing_header_is_401_with_challenge(auth: HttpAuthenticator) -> None:
    with pytest.raises(AuthenticationError) as info:
        await auth.authenticate(None)
    error = http_error(info.value)
    assert error.status_code == 401
    assert error.body["error_code"] == 40101
    assert "Bearer" in error.body["message"]
    assert error.headers["WWW-Authenticate"].startswith("Basic realm=")


@pytest.mark.parametrize(
    "header", ["", "Digest abc", "Bearer", "Basic !!!not-base64!!!", "Basic " + "dXNlcg=="]
)
async def test_unusable_headers_are_401(auth: HttpAuthenticator, header: str) -> None:
    with pytest.raises(AuthenticationError):
        await auth.authenticate(header)


async def test_basic_auth_good_and_bad(auth: HttpAuthenticator, audit: AuditRecorder) -> None:
    principal = await auth.authenticate(basic("reader", "Reader-Pass-123"))
    assert principal.subject == "reader" and principal.roles == {"schema-reader"}
    assert principal.auth_method == "basic"
    with pytest.raises(AuthenticationError) as wrong:
        await auth.authenticate(basic("reader", "wrong"))
    with pytest.raises(AuthenticationError) as unknown:
        await auth.authenticate(basic("nobody", "wrong"))
    assert str(wrong.value) == str(unknown.value) == "invalid username or password"
    assert audit.types() == ["login", "login_failed", "login_failed"]


async def test_bearer_auth(
    auth: HttpAuthenticator, make_manager: Callable[..., JWTManager]
) -> None:
    token = await make_manager().create_access_token("ci", [], roles=["schema-writer"])
    principal = await auth.authenticate(f"bearer {token}")
    assert principal.subject == "ci" and principal.auth_method == "bearer"
    expired = await make_manager(clock=lambda: time.time() - 7200).create_access_token("ci", [])
    with pytest.raises(AuthenticationError) as info:
        await auth.authenticate(f"Bearer {expired}")
    assert "expired" in http_error(info.value).body["message"]
    assert expired not in http_error(info.value).body["message"]


async def test_read_only_role_reads_but_cannot_write(auth: HttpAuthenticator) -> None:
    header = basic("reader", "Reader-Pass-123")
    await auth.guard_registry_request("GET", "/subjects/orders-value/versions/latest", header)
    await auth.guard_registry_request("POST", "/subjects/orders-value", header)  # lookup
    await auth.guard_registry_request("GET", "/schemas/ids/1", header)
    with pytest.raises(PermissionDenied) as info:
        await auth.guard_registry_request("POST", "/subjects/orders-value/versions", header)
    error = http_error(info.value)
    assert (error.status_code, error.body["error_code"]) == (403, 40301)
    assert "orders-value" in error.body["message"]
    with pytest.raises(PermissionDenied):
        await auth.guard_registry_request("PUT", "/config/orders-value", header)


async def test_admin_may_change_config_and_delete(auth: HttpAuthenticator) -> None:
    header = basic("admin", "Admin-Pass-123")
    for method, path in [("PUT", "/config"), ("DELETE", "/subjects/x"), ("PUT", "/mode/x")]:
        principal = await auth.guard_registry_request(method, path, header)
        assert principal.subject == "admin"


async def test_pattern_scoped_bearer_token(
    auth: HttpAuthenticator, make_manager: Callable[..., JWTManager]
) -> None:
    token = await make_manager().create_access_token("svc", [], roles=["orders-team"])
    header = f"Bearer {token}"
    await auth.guard_registry_request("POST", "/subjects/orders-value/versions", header)
    with pytest.raises(PermissionDenied):
        await auth.guard_registry_request("POST", "/subjects/payments-value/versions", header)


async def test_unusable_stored_hash_is_a_401_not_a_crash(
    hasher: SecureHasher, audit: AuditRecorder
) -> None:
    foreign = SecureHasher(
        pepper="another-pepper-0123456789abcdef", time_cost=1, memory_cost_kib=1024, parallelism=1
    )
    store = InMemoryCredentialStore([Credential("old", foreign.hash_password("Pw-123456789!"))])
    auth = HttpAuthenticator(
        RoleBasedAccessControl(POLICY), passwords=PasswordAuthenticator(store, hasher, audit=audit)
    )
    with pytest.raises(AuthenticationError):
        await auth.authenticate(basic("old", "Pw-123456789!"))


def test_other_security_errors_map_to_500() -> None:
    error = http_error(HashingError("x"))
    assert (error.status_code, error.body["error_code"]) == (500, 50001)


def test_authenticator_needs_a_method() -> None:
    with pytest.raises(ValueError, match="JWTManager"):
        HttpAuthenticator(RoleBasedAccessControl())


@pytest.mark.parametrize(
    ("method", "path", "need"),
    [
        ("GET", "/", None),
        ("GET", "/schemas/types", None),
        ("GET", "/subjects", Requirement(SUBJECT, Action.READ)),
        ("GET", "/subjects/a-value/versions", Requirement(SUBJECT, Action.READ, "a-value")),
        (
            "GET",
            "/subjects/a-value/versions/3/schema",
            Requirement(SUBJECT, Action.READ, "a-value"),
        ),
        ("POST", "/subjects/a-value", Requirement(SUBJECT, Action.READ, "a-value")),
        ("POST", "/subjects/a-value/versions", Requirement(SUBJECT, Action.WRITE, "a-value")),
        ("DELETE", "/subjects/a-value", Requirement(SUBJECT, Action.ADMIN, "a-value")),
        ("DELETE", "/subjects/a-value/versions/1", Requirement(SUBJECT, Action.ADMIN, "a-value")),
        ("GET", "/schemas/ids/7", Requirement(SUBJECT, Action.READ)),
        (
            "POST",
            "/compatibility/subjects/a-value/versions/latest",
            Requirement(SUBJECT, Action.READ, "a-value"),
        ),
        ("GET", "/config", Requirement(SUBJECT, Action.READ)),
        ("PUT", "/config", Requirement(SUBJECT, Action.ADMIN)),
        ("GET", "/config/a-value", Requirement(SUBJECT, Action.READ, "a-value")),
        ("PUT", "/config/a-value", Requirement(SUBJECT, Action.ADMIN, "a-value")),
        ("DELETE", "/mode/a-value", Requirement(SUBJECT, Action.ADMIN, "a-value")),
        ("GET", "/mode", Requirement(SUBJECT, Action.READ)),
        ("POST", "/exporters", Requirement(SUBJECT, Action.ADMIN)),
    ],
)
def test_registry_route_requirements(method: str, path: str, need: Requirement | None) -> None:
    assert registry_requirement(method, path) == need


async def test_an_oversized_header_is_refused_unparsed(auth: HttpAuthenticator) -> None:
    huge = "Bearer " + "A" * 20_000
    with pytest.raises(AuthenticationError) as info:
        await auth.authenticate(huge)
    error = http_error(info.value)
    assert (error.status_code, error.body["error_code"]) == (401, 40101)
    assert "exceeds" in error.body["message"] and "AAAA" not in error.body["message"]


def test_a_stale_revocation_list_is_503_not_a_verdict() -> None:
    error = http_error(RevocationsUnavailableError("list is 9s old"))
    assert (error.status_code, error.body["error_code"]) == (503, 50003)
