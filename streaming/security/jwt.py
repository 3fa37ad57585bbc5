"""Access and refresh tokens: issue, verify, rotate, revoke (pyjwt underneath).

Every token carries ``sub``, ``roles``, ``permissions``, ``jti``, ``iat``, ``nbf``,
``exp``, ``iss``, ``aud`` and ``token_use`` (``access`` or ``refresh``); tokens born from
one login share a family id ``fam``. Refresh tokens are single-use: redeeming one
returns a new pair, and presenting it again means it was stolen or replayed, so the
whole family (every refresh and access token derived from that login) is revoked.

Verification pins the algorithm to the key named by ``kid`` before pyjwt sees the
token, so ``alg: none`` and HS256-with-the-public-key confusion fail up front. pyjwt
checks ``exp``/``nbf``/``iat`` against the wall clock with ``jwt_leeway_s`` of slack; the
``clock`` argument only dates the tokens this manager issues (tests use it).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt

from streaming.config import SecuritySettings
from streaming.context import ExecutionContext, current_execution_context
from streaming.security.errors import (
    InvalidTokenError,
    RefreshTokenReuseError,
    TokenRejection,
    TokenRevokedError,
)
from streaming.security.events import (
    AuditCallback,
    SecurityEvent,
    SecurityEventType,
    log_security_event,
)
from streaming.security.keys import KeyRing
from streaming.security.principal import Principal
from streaming.security.rbac import Permission
from streaming.security.revocation import InMemoryRevocationStore, RevocationStore

ACCESS = "access"
REFRESH = "refresh"
_REQUIRED = ["sub", "jti", "iat", "nbf", "exp", "iss", "aud", "token_use"]

# Most specific first: several pyjwt errors subclass one another.
_REJECTIONS: tuple[tuple[type[pyjwt.PyJWTError], TokenRejection], ...] = (
    (pyjwt.ExpiredSignatureError, TokenRejection.EXPIRED),
    (pyjwt.ImmatureSignatureError, TokenRejection.NOT_YET_VALID),
    (pyjwt.InvalidAudienceError, TokenRejection.AUDIENCE),
    (pyjwt.InvalidIssuerError, TokenRejection.ISSUER),
    (pyjwt.MissingRequiredClaimError, TokenRejection.MISSING_CLAIM),
    (pyjwt.InvalidSignatureError, TokenRejection.BAD_SIGNATURE),
    (pyjwt.InvalidAlgorithmError, TokenRejection.ALGORITHM),
    (pyjwt.InvalidKeyError, TokenRejection.ALGORITHM),
)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The checked contents of a token."""

    subject: str
    token_id: str
    token_use: str
    issued_at: float
    expires_at: float
    family_id: str | None = None
    roles: tuple[str, ...] = ()
    permissions: tuple[Permission, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)

    def principal(self) -> Principal:
        return Principal(
            self.subject,
            frozenset(self.roles),
            frozenset(self.permissions),
            auth_method="bearer",
            token_id=self.token_id,
        )


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh returns; ``repr`` hides both tokens."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    refresh_expires_in: int
    family_id: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


ContextLike = Mapping[str, Any] | ExecutionContext
"""What ``execution_context=`` takes: the seed's :class:`ExecutionContext` or a mapping."""


def _context_claim(execution_context: ContextLike | None) -> dict[str, Any]:
    """The ``ctx`` claim: only scalar values travel (operation, correlation id, ...).

    ``None`` means the :class:`ExecutionContext` bound in this task, if any.
    """
    if execution_context is None:
        execution_context = current_execution_context()
    if execution_context is None:
        return {}
    if isinstance(execution_context, Mapping):
        items = dict(execution_context)
    elif dataclasses.is_dataclass(execution_context):
        fields = dataclasses.fields(execution_context)
        items = {f.name: getattr(execution_context, f.name) for f in fields}
    elif callable(dump := getattr(execution_context, "to_dict", None)):
        items = dict(dump())
    else:
        raise TypeError(
            f"execution_context must be an ExecutionContext or a mapping, not "
            f"{type(execution_context).__name__}"
        )
    return {str(k): v for k, v in items.items() if isinstance(v, str | int | float | bool)}


class JWTManager:
    """Issues and verifies tokens; shares revocations through ``revocations``.

    The default in-memory revocation store only suits one process; every process of a
    deployment should use :func:`~streaming.security.revocation_log.shared_revocations`
    so a revocation made anywhere is honoured everywhere within the documented bound.
    """

    def __init__(
        self,
        settings: SecuritySettings,
        *,
        keys: KeyRing | None = None,
        revocations: RevocationStore | None = None,
        audit: AuditCallback = log_security_event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._keys = keys if keys is not None else KeyRing.from_settings(settings)
        self._revocations = revocations if revocations is not None else InMemoryRevocationStore()
        self._audit = audit
        self._clock = clock
        self._access_ttl_s = settings.access_token_expire_minutes * 60
        self._refresh_ttl_s = settings.refresh_token_expire_days * 86_400

    @property
    def keys(self) -> KeyRing:
        return self._keys

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return self._keys.jwks()

    def _encode(self, claims: dict[str, Any], ttl_s: int) -> str:
        now = int(self._clock())
        claims |= {
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
        }
        key = self._keys.active
        assert key.signer is not None  # KeyRing refuses a verify-only active key
        return pyjwt.encode(claims, key.signer, algorithm=key.algorithm, headers={"kid": key.kid})

    async def create_access_token(
        self,
        user_id: str | int | uuid.UUID,
        permissions: Iterable[str | Permission] = (),
        execution_context: ContextLike | None = None,
        *,
        roles: Iterable[str] = (),
        family_id: str | None = None,
        ttl_s: int | None = None,
    ) -> str:
        """A signed access token (the seed's call: ``(user_id, permissions, context)``).

        ``execution_context`` (an :class:`ExecutionContext` or a mapping; default: the one
        bound in this task) travels as the ``ctx`` claim. Bad permission strings raise
        ``ValueError`` here.
        """
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "token_use": ACCESS,
            "roles": sorted(set(roles)),
            "permissions": sorted({str(_permission(p)) for p in permissions}),
        }
        if family_id is not None:
            claims["fam"] = family_id
        ctx = _context_claim(execution_context)
        if ctx:
            claims["ctx"] = ctx
        return self._encode(claims, ttl_s or self._access_ttl_s)

    async def issue_tokens(
        self,
        user_id: str,
        *,
        roles: Iterable[str] = (),
        permissions: Iterable[str | Permission] = (),
        execution_context: ContextLike | None = None,
        family_id: str | None = None,
    ) -> TokenPair:
        """A new access + refresh pair, starting a token family unless one is given."""
        family = family_id or uuid.uuid4().hex
        roles, permissions = sorted(set(roles)), [str(_permission(p)) for p in permissions]
        access = await self.create_access_token(
            user_id, permissions, execution_context, roles=roles, family_id=family
        )
        refresh = self._encode(
            {
                "sub": user_id,
                "token_use": REFRESH,
                "fam": family,
                "roles": roles,
                "permissions": sorted(set(permissions)),
            },
            self._refresh_ttl_s,
        )
        return TokenPair(access, refresh, self._access_ttl_s, self._refresh_ttl_s, family)

    async def verify_access_token(self, token: str) -> TokenClaims:
        """Checked claims, or :class:`InvalidTokenError` with the failed check as ``reason``."""
        return await self._verify(token, ACCESS)

    async def verify_refresh_token(self, token: str) -> TokenClaims:
        """Checks a refresh token without redeeming it."""
        return await self._verify(token, REFRESH)

    async def authenticate(self, token: str) -> Principal:
        return (await self.verify_access_token(token)).principal()

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Redeem a refresh token for a new pair; a second redemption revokes the family."""
        claims = await self._verify(refresh_token, REFRESH)
        family = claims.family_id or claims.token_id
        first_use = await self._revocations.mark_used(
            claims.token_id, claims.expires_at + self._settings.jwt_leeway_s
        )
        if not first_use:
            await self._revocations.revoke_family(family, self._horizon())
            await self._audit(
                SecurityEvent(
                    SecurityEventType.REFRESH_REUSE_DETECTED,
                    claims.subject,
                    {"family_id": family, "jti": claims.token_id},
                )
            )
            raise RefreshTokenReuseError(family)
        pair = await self.issue_tokens(
            claims.subject,
            roles=claims.roles,
            permissions=claims.permissions,
            family_id=family,
        )
        await self._audit(
            SecurityEvent(
                SecurityEventType.TOKEN_REFRESHED,
                claims.subject,
                {"family_id": family, "jti": claims.token_id},
            )
        )
        return pair

    def _horizon(self) -> float:
        """Epoch seconds after which no token issued until now can still be valid."""
        longest = max(self._access_ttl_s, self._refresh_ttl_s)
        return self._clock() + longest + self._settings.jwt_leeway_s

    async def revoke(
        self, jti: str, expires_at: float | None = None, *, subject: str | None = None
    ) -> None:
        """Revoke one token id until ``expires_at`` (default: the longest token lifetime)."""
        await self._revocations.revoke(jti, expires_at or self._horizon())
        await self._audit(SecurityEvent(SecurityEventType.TOKEN_REVOKED, subject, {"jti": jti}))

    async def revoke_family(self, family_id: str, *, subject: str | None = None) -> None:
        """Revoke every token of one login (logout everywhere for that session)."""
        await self._revocations.revoke_family(family_id, self._horizon())
        await self._audit(
            SecurityEvent(SecurityEventType.TOKEN_REVOKED, subject, {"family_id": family_id})
        )

    async def revoke_token(self, token: str) -> TokenClaims:
        """Revoke a token given in full (its signature must check out; expiry may not)."""
        payload = self._decode(token, verify_exp=False)
        claims = _claims(payload)
        await self.revoke(
            claims.token_id,
            claims.expires_at + self._settings.jwt_leeway_s,
            subject=claims.subject,
        )
        return claims

    async def _verify(self, token: str, token_use: str) -> TokenClaims:
        claims = _claims(self._decode(token))
        if claims.token_use != token_use:
            raise InvalidTokenError(
                TokenRejection.WRONG_TYPE, f"expected a {token_use} token, got {claims.token_use}"
            )
        if await self._revocations.is_revoked(claims.token_id, claims.family_id):
            await self._audit(
                SecurityEvent(
                    SecurityEventType.REVOKED_TOKEN_REFUSED,
                    claims.subject,
                    {"jti": claims.token_id, "family_id": claims.family_id},
                )
            )
            raise TokenRevokedError(claims.token_id, claims.family_id)
        return claims

    def _decode(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        try:
            header = pyjwt.get_unverified_header(token)
        except pyjwt.PyJWTError as exc:
            raise InvalidTokenError(TokenRejection.MALFORMED, "unreadable header") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._keys.algorithms:
            raise InvalidTokenError(TokenRejection.ALGORITHM, f"algorithm {alg!r} not accepted")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidTokenError(TokenRejection.UNKNOWN_KID, f"kid {kid!r} is not ours")
        if key.algorithm != alg:
            raise InvalidTokenError(
                TokenRejection.ALGORITHM, f"kid {kid!r} signs {key.algorithm}, not {alg}"
            )
        try:
            payload: dict[str, Any] = pyjwt.decode(
                token,
                key.verifier,
                algorithms=[key.algorithm],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway_s,
                options={"require": _REQUIRED, "verify_exp": verify_exp},
            )
        except pyjwt.PyJWTError as exc:
            reason = next(
                (r for kind, r in _REJECTIONS if isinstance(exc, kind)), TokenRejection.MALFORMED
            )
            raise InvalidTokenError(reason, type(exc).__name__) from exc
        return payload


def _permission(value: str | Permission) -> Permission:
    return value if isinstance(value, Permission) else Permission.parse(value)


def _claims(payload: Mapping[str, Any]) -> TokenClaims:
    try:
        roles = payload.get("roles", [])
        perms = payload.get("permissions", [])
        ctx = payload.get("ctx", {})
        family = payload.get("fam")
        if not (
            isinstance(roles, list)
            and isinstance(perms, list)
            and isinstance(ctx, dict)
            and (family is None or isinstance(family, str))
            and all(isinstance(x, str) for x in (*roles, *perms))
        ):
            raise ValueError("roles/permissions must be lists of strings")
        return TokenClaims(
            subject=str(payload["sub"]),
            token_id=str(payload["jti"]),
            token_use=str(payload["token_use"]),
            issued_at=float(payload["iat"]),
            expires_at=float(payload["exp"]),
            family_id=family,
            roles=tuple(roles),
            permissions=tuple(Permission.parse(p) for p in perms),
            context=ctx,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidTokenError(TokenRejection.MALFORMED, "claims have the wrong shape") from exc


__all__ = ["ACCESS", "REFRESH", "JWTManager", "TokenClaims", "TokenPair"]
