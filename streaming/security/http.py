"""Request authentication and authorization for HTTP services (the schema registry).

Framework-light: it takes the ``Authorization`` header value, method and path, and
returns a :class:`Principal` or raises; :func:`http_error` turns the raised error into
Confluent's JSON shape (401 -> ``error_code`` 40101, 403 -> 40301). In a Starlette
middleware::

    try:
        request.state.principal = await auth.guard_registry_request(
            request.method, request.url.path, request.headers.get("authorization")
        )
    except SecurityError as exc:
        error = http_error(exc)
        return JSONResponse(error.body, status_code=error.status_code, headers=error.headers)

Errors other than :class:`SecurityError` propagate, so the request fails closed with a
500; a verifier whose revocation list is not current answers 503/50003 (fail closed).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import structlog

from streaming.errors import AuthenticationError, PermissionDenied, SecurityError
from streaming.security.credentials import PasswordAuthenticator
from streaming.security.errors import (
    HashingError,
    InvalidTokenError,
    RevocationsUnavailableError,
)
from streaming.security.jwt import JWTManager
from streaming.security.principal import Principal
from streaming.security.rbac import ANY_RESOURCE, Action, ResourceType, RoleBasedAccessControl

_log = structlog.get_logger(__name__)

UNAUTHORIZED = 40101
FORBIDDEN = 40301
INTERNAL = 50001
UNAVAILABLE = 50003
MAX_AUTHORIZATION_CHARS = 16 * 1024  # far above any real token; bigger is refused unparsed


@dataclass(frozen=True, slots=True)
class HttpError:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def http_error(exc: SecurityError, *, realm: str = "schema-registry") -> HttpError:
    """The Confluent-shaped response for a security failure; never echoes credentials."""
    if isinstance(exc, RevocationsUnavailableError):
        message = "revocation list is not current; retry shortly"
        return HttpError(503, {"error_code": UNAVAILABLE, "message": message})
    if isinstance(exc, PermissionDenied):
        return HttpError(403, {"error_code": FORBIDDEN, "message": str(exc)})
    if isinstance(exc, AuthenticationError):
        challenge = f'Basic realm="{realm}", Bearer realm="{realm}"'
        return HttpError(
            401,
            {"error_code": UNAUTHORIZED, "message": f"Unauthorized: {exc}"},
            {"WWW-Authenticate": challenge},
        )
    return HttpError(500, {"error_code": INTERNAL, "message": "internal security error"})


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a request needs: ``action`` on ``resource_type`` named ``resource``."""

    resource_type: ResourceType
    action: Action
    resource: str = ANY_RESOURCE


_OPEN = ("/", "/schemas/types", "/contexts", "/v1/metadata/id", "/v1/metadata/version")
_WRITE_METHODS = {"PUT", "DELETE", "POST"}


def registry_requirement(method: str, path: str) -> Requirement | None:
    """Map a Confluent Schema Registry route to the permission it needs.

    ``path`` is the decoded path (Starlette's ``request.url.path``). ``None`` means any
    authenticated caller may proceed. Reads need READ on the subject, registering needs
    WRITE, deleting and changing config/mode need ADMIN; ``/schemas/ids/{id}`` names no
    subject, so it needs READ on all subjects (the registry may refine this by checking
    the id's subjects). Unknown routes need ADMIN: deny by default.
    """
    method = method.upper()
    parts = [p for p in path.split("/") if p]
    if path.rstrip("/") in _OPEN or (not parts and method == "GET"):
        return None
    subject = ResourceType.SUBJECT
    head = parts[0] if parts else ""
    if head == "subjects":
        if len(parts) == 1:
            return Requirement(subject, Action.READ)
        name = parts[1]
        if method == "DELETE":
            return Requirement(subject, Action.ADMIN, name)
        if method == "POST" and len(parts) == 3 and parts[2] == "versions":
            return Requirement(subject, Action.WRITE, name)
        if method in {"GET", "POST"}:  # POST /subjects/{s} is a lookup
            return Requirement(subject, Action.READ, name)
    elif head == "schemas" and method == "GET":
        return Requirement(subject, Action.READ)
    elif head == "compatibility" and len(parts) >= 3 and parts[1] == "subjects":
        return Requirement(subject, Action.READ, parts[2])
    elif head in {"config", "mode"}:
        name = parts[1] if len(parts) > 1 else ANY_RESOURCE
        action = Action.ADMIN if method in _WRITE_METHODS else Action.READ
        return Requirement(subject, action, name)
    return Requirement(subject, Action.ADMIN)


class HttpAuthenticator:
    """``Bearer <jwt>`` via :class:`JWTManager`, ``Basic`` via :class:`PasswordAuthenticator`."""

    def __init__(
        self,
        rbac: RoleBasedAccessControl,
        *,
        jwt: JWTManager | None = None,
        passwords: PasswordAuthenticator | None = None,
    ) -> None:
        if jwt is None and passwords is None:
            raise ValueError("give a JWTManager, a PasswordAuthenticator, or both")
        self._rbac = rbac
        self._jwt = jwt
        self._passwords = passwords

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an ``Authorization`` header value, or AuthenticationError."""
        if not authorization or not authorization.strip():
            raise AuthenticationError(
                "send 'Authorization: Bearer <token>' or HTTP Basic credentials"
            )
        if len(authorization) > MAX_AUTHORIZATION_CHARS:
            raise AuthenticationError(
                f"Authorization header exceeds {MAX_AUTHORIZATION_CHARS} characters"
            )
        scheme, _, value = authorization.strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and self._jwt is not None and value:
            try:
                return await self._jwt.authenticate(value)
            except InvalidTokenError as exc:
                raise AuthenticationError(f"bearer token {exc.reason.value}") from exc
        if scheme == "basic" and self._passwords is not None and value:
            username, password = _basic(value)
            try:
                return await self._passwords.authenticate(username, password)
            except HashingError as exc:
                await _log.aerror("stored_credential_unusable", username=username, error=str(exc))
                raise AuthenticationError("invalid username or password") from exc
        accepted = [n for n, on in (("Bearer", self._jwt), ("Basic", self._passwords)) if on]
        raise AuthenticationError(f"unsupported authorization scheme; use {' or '.join(accepted)}")

    async def authorize(
        self,
        principal: Principal,
        resource_type: ResourceType,
        action: Action,
        resource: str | None = None,
    ) -> None:
        await self._rbac.authorize(principal, resource_type, action, resource)

    async def guard_registry_request(
        self, method: str, path: str, authorization: str | None
    ) -> Principal:
        """Authenticate, then authorize by :func:`registry_requirement`."""
        principal = await self.authenticate(authorization)
        need = registry_requirement(method, path)
        if need is not None:
            await self._rbac.authorize(principal, need.resource_type, need.action, need.resource)
        return principal


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthenticationError("malformed Basic credentials") from exc
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        raise AuthenticationError("malformed Basic credentials (expected user:password)")
    return username, password


__all__ = [
    "FORBIDDEN",
    "UNAUTHORIZED",
    "HttpAuthenticator",
    "HttpError",
    "Requirement",
    "http_error",
    "registry_requirement",
]
