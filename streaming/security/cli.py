"""``streaming auth ...``: mint tokens for operators and tests, revoke them, show the JWKS.

Exit codes: 0 done, 1 bad input, 2 configuration problem (the message says which
variable to set), 3 PostgreSQL unreachable.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import structlog
import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from rich.console import Console
from sqlalchemy.ext.asyncio import create_async_engine

from streaming.config import DatabaseSettings, SecuritySettings
from streaming.errors import ConfigError, DatabaseError, DatabaseUnavailableError
from streaming.logging import configure_logging
from streaming.security.events import SecurityEvent, SecurityEventType, log_security_event
from streaming.security.hashing import SecureHasher, validate_password_strength
from streaming.security.jwt import JWTManager
from streaming.security.keys import KeyRing, SigningKey
from streaming.security.rbac import Permission
from streaming.security.revocation import PostgresRevocationStore

app = typer.Typer(name="auth", help="Tokens, revocation and keys.", no_args_is_help=True)
_err = Console(stderr=True)
S = TypeVar("S", bound=BaseSettings)
T = TypeVar("T")


@app.callback()
def _edge() -> None:
    """Logs go to stderr so ``--json`` output on stdout stays parseable."""
    if not structlog.is_configured():
        configure_logging()


def _fail(message: str, code: int) -> typer.Exit:
    _err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _settings(cls: Callable[[], S]) -> S:
    try:
        return cls()
    except ValidationError as exc:
        lines = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid settings: {lines}", 2) from exc


def _run(make: Callable[[], T]) -> T:
    try:
        return make()
    except ConfigError as exc:
        raise _fail(str(exc), 2) from exc


@app.command()
def token(
    user: Annotated[str, typer.Option("--user", "-u", help="Subject (sub) of the token.")],
    role: Annotated[
        list[str] | None, typer.Option("--role", "-r", help="Role; repeatable.")
    ] = None,
    permission: Annotated[
        list[str] | None,
        typer.Option("--permission", "-p", help="Direct grant like 'topic:orders.*:read'."),
    ] = None,
    refresh: Annotated[bool, typer.Option(help="Also issue a refresh token.")] = False,
    ttl_minutes: Annotated[int | None, typer.Option(min=1, help="Access token lifetime.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Mint an access token signed with the configured key (prints only the token)."""
    settings = _settings(SecuritySettings)
    manager = _run(lambda: JWTManager(settings, audit=_quiet))
    try:
        perms = [Permission.parse(p) for p in permission or []]
    except ValueError as exc:
        raise _fail(str(exc), 1) from exc
    roles = role or []
    if refresh:
        pair = asyncio.run(manager.issue_tokens(user, roles=roles, permissions=perms))
        access, expires_in = pair.access_token, pair.expires_in
        extra: dict[str, Any] = {
            "refresh_token": pair.refresh_token,
            "refresh_expires_in": pair.refresh_expires_in,
        }
    else:
        ttl_s = ttl_minutes * 60 if ttl_minutes else None
        access = asyncio.run(manager.create_access_token(user, perms, roles=roles, ttl_s=ttl_s))
        expires_in, extra = ttl_s or settings.access_token_expire_minutes * 60, {}
    if as_json:
        body = {"access_token": access, "token_type": "Bearer", "expires_in": expires_in}
        typer.echo(json.dumps(body | extra))
    else:
        typer.echo(access)
        if refresh:
            typer.echo(extra["refresh_token"])


async def _quiet(_event: SecurityEvent) -> None:
    """Minting from the CLI is not a login; nothing to audit."""


@app.command()
def revoke(
    jti: Annotated[str, typer.Option("--jti", help="Token id (the 'jti' claim) to revoke.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Put a token id on the shared revocation list in PostgreSQL (DATABASE_URL)."""
    security = _settings(SecuritySettings)
    database = _settings(DatabaseSettings)
    longest = max(
        security.access_token_expire_minutes * 60, security.refresh_token_expire_days * 86_400
    )
    until = time.time() + longest + security.jwt_leeway_s
    try:
        asyncio.run(_revoke(database, jti, until))
    except DatabaseUnavailableError as exc:
        raise _fail(f"{exc} at {database.display_url}; is DATABASE_URL right?", 3) from exc
    except DatabaseError as exc:
        raise _fail(str(exc), 1) from exc
    if as_json:
        typer.echo(json.dumps({"revoked": jti, "until": int(until)}))
    else:
        typer.echo(f"revoked {jti}")


async def _revoke(database: DatabaseSettings, jti: str, until: float) -> None:
    engine = create_async_engine(
        database.connection_url, connect_args={"timeout": database.connect_timeout_s}
    )
    try:
        store = PostgresRevocationStore(engine)
        await store.ensure_schema()
        await store.revoke(jti, until)
        await log_security_event(
            SecurityEvent(SecurityEventType.TOKEN_REVOKED, None, {"jti": jti, "via": "cli"})
        )
    finally:
        await engine.dispose()


@app.command()
def jwks() -> None:
    """Print the public JWKS document (public keys only; empty for HS256)."""
    settings = _settings(SecuritySettings)
    ring = _run(lambda: KeyRing.from_settings(settings))
    typer.echo(json.dumps(ring.jwks(), indent=2))


@app.command()
def keygen(
    algorithm: Annotated[str, typer.Option(help="EdDSA or ES256.")] = "EdDSA",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Generate a signing key for SECURITY_JWT_PRIVATE_KEY_PEM (printed once, keep it secret)."""
    if algorithm not in ("EdDSA", "ES256"):
        raise _fail("--algorithm must be EdDSA or ES256", 1)
    alg: Literal["EdDSA", "ES256"] = "EdDSA" if algorithm == "EdDSA" else "ES256"
    key = SigningKey.generate(alg)
    if as_json:
        typer.echo(
            json.dumps({"kid": key.kid, "algorithm": alg, "private_key_pem": key.private_pem()})
        )
    else:
        _err.print(f"kid {key.kid}; store this PEM as a secret", highlight=False)
        typer.echo(key.private_pem(), nl=False)


@app.command("hash-password")
def hash_password(
    user: Annotated[
        str | None, typer.Option(help="Username (refused inside the password).")
    ] = None,
    allow_weak: Annotated[bool, typer.Option(help="Hash even if strength rules fail.")] = False,
) -> None:
    """Prompt for a password and print its peppered hash for a credentials file."""
    hasher = _run(lambda: SecureHasher(_settings(SecuritySettings)))
    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    check = validate_password_strength(password, username=user)
    if not check.ok and not allow_weak:
        raise _fail("password " + "; ".join(check.problems), 1)
    typer.echo(hasher.hash_password(password))


__all__ = ["app"]
