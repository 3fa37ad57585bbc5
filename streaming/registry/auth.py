"""The security layer put in front of the registry API.

Bearer JWTs (``JWTManager``) and HTTP Basic (what Confluent clients send with
``basic.auth.user.info``, checked against hashed credentials) identify the caller; RBAC
on ``ResourceType.SUBJECT`` decides: ``read`` for lookups, ``write`` to register,
``admin`` for config, mode and deletes. A global route (no subject) needs the grant on
every subject (``subject:*``). Bearer tokens are checked against the shared revocation
list (:mod:`streaming.security.revocation_log`), which the server starts and stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streaming.config import DatabaseSettings, KafkaSettings, RegistrySettings, SecuritySettings
from streaming.errors import ConfigError
from streaming.registry.app import Authenticator, Authorizer
from streaming.security.credentials import InMemoryCredentialStore, PasswordAuthenticator
from streaming.security.hashing import SecureHasher
from streaming.security.http import HttpAuthenticator
from streaming.security.jwt import JWTManager
from streaming.security.rbac import Action, Policy, ResourceType, RoleBasedAccessControl
from streaming.security.revocation_log import SharedRevocationStore, shared_revocations
from streaming.transport.base import TransportFactory

_ACTIONS = {"read": Action.READ, "write": Action.WRITE, "admin": Action.ADMIN}


@dataclass(frozen=True, slots=True)
class RegistryAuth:
    """The app's two hooks and the revocation list the server must keep current."""

    authenticate: Authenticator
    authorize: Authorizer
    revocations: SharedRevocationStore | None = None


def registry_auth(http: HttpAuthenticator) -> tuple[Authenticator, Authorizer]:
    """Adapt an :class:`HttpAuthenticator` to the registry app's two hooks."""

    async def authenticate(headers: Mapping[str, str]) -> Any:
        return await http.authenticate(headers.get("authorization"))

    async def authorize(principal: Any, subject: str | None, action: str) -> None:
        await http.authorize(principal, ResourceType.SUBJECT, _ACTIONS[action], subject)

    return authenticate, authorize


def auth_from_settings(
    registry: RegistrySettings,
    security: SecuritySettings,
    *,
    kafka: KafkaSettings | None = None,
    database: DatabaseSettings | None = None,
    transport: TransportFactory | None = None,
) -> RegistryAuth | None:
    """Build the hooks when ``REGISTRY_AUTH_ENABLED``; every missing setting in one error.

    With a JWT key the registry tails the revocation topic on ``kafka``; a configured
    ``database`` also seeds it with the durable PostgreSQL list.
    """
    if not registry.auth_enabled:
        return None
    problems: list[str] = []
    if security.rbac_policy_path is None:
        problems.append(
            "SECURITY_RBAC_POLICY_PATH: a YAML role policy is required when "
            "REGISTRY_AUTH_ENABLED=true (roles granting subject:<pattern>:read|write|admin)"
        )
    has_jwt = security.jwt_private_key_pem is not None or security.jwt_secret_key is not None
    if registry.credentials_path is None and not has_jwt:
        problems.append(
            "REGISTRY_AUTH_ENABLED=true needs REGISTRY_CREDENTIALS_PATH (HTTP Basic users) "
            "and/or a JWT key (SECURITY_JWT_PRIVATE_KEY_PEM or SECURITY_JWT_SECRET_KEY)"
        )
    if problems:
        raise ConfigError(problems)
    assert security.rbac_policy_path is not None
    rbac = RoleBasedAccessControl(
        Policy.from_yaml(security.rbac_policy_path), cache_ttl_s=security.rbac_cache_ttl_s
    )
    passwords = None
    if registry.credentials_path is not None:
        store = InMemoryCredentialStore.from_yaml(registry.credentials_path)
        passwords = PasswordAuthenticator(store, SecureHasher(security))
    jwt, revocations = None, None
    if has_jwt:
        revocations = shared_revocations(
            security, kafka or KafkaSettings(), database, transport=transport
        )
        jwt = JWTManager(security, revocations=revocations)
    authenticate, authorize = registry_auth(HttpAuthenticator(rbac, jwt=jwt, passwords=passwords))
    return RegistryAuth(authenticate, authorize, revocations)


__all__ = ["RegistryAuth", "auth_from_settings", "registry_auth"]
