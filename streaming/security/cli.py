"""``streaming auth ...``: mint, refresh and revoke tokens, show the JWKS, hash passwords.

Exit codes: 0 done, 1 bad input or a refused token, 2 usage or configuration problem (the
message says which variable to set), 3 PostgreSQL or Kafka unreachable.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal, TypeVar

import structlog
import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from rich.console import Console

from streaming.config import DatabaseSettings, KafkaSettings, SecuritySettings
from streaming.errors import ConfigError, DatabaseError, DatabaseUnavailableError, TransportError
from streaming.logging import configure_logging
from streaming.security.errors import InvalidTokenError, RevocationsUnavailableError
from streaming.security.events import SecurityEvent, SecurityEventType, log_security_event
from streaming.security.hashing import SecureHasher, validate_password_strength
from streaming.security.jwt import JWTManager, TokenPair
from streaming.security.keys import KeyRing, SigningKey
from streaming.security.rbac import Permission
from streaming.security.revocation_log import horizon_s, shared_revocations

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
    jti: Annotated[
        str | None, typer.Option("--jti", help="Token id (the 'jti' claim) to revoke.")
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(
            "--family", help="Refresh family id (the 'fam' claim): every token of a login."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Revoke a token id or a family everywhere: the revocation topic every verifier tails
    (KAFKA_BOOTSTRAP_SERVERS), and PostgreSQL too when DATABASE_URL is set."""
    if (jti is None) == (family is None):
        raise _fail("give exactly one of --jti or --family", 2)
    security = _settings(SecuritySettings)
    database = _settings(DatabaseSettings)
    kafka = _settings(KafkaSettings)
    until = time.time() + horizon_s(security)
    store = shared_revocations(security, kafka, database)
    what = {"jti": jti} if jti is not None else {"family_id": family}

    async def run() -> None:
        try:
            if jti is not None:
                await store.revoke(jti, until)
            else:
                assert family is not None
                await store.revoke_family(family, until)
        finally:
            await store.stop()
        await log_security_event(
            SecurityEvent(SecurityEventType.TOKEN_REVOKED, None, {**what, "via": "cli"})
        )

    _run_store(run, database, kafka)
    if as_json:
        typer.echo(json.dumps({"revoked": jti or family, **what, "until": int(until)}))
    else:
        typer.echo(f"revoked {jti or family}")


def _run_store(
    run: Callable[[], Coroutine[Any, Any, None]], database: DatabaseSettings, kafka: KafkaSettings
) -> None:
    """Run against PostgreSQL and Kafka, mapping their failures to exit codes."""
    try:
        asyncio.run(run())
    except DatabaseUnavailableError as exc:
        raise _fail(f"{exc} at {database.display_url}; is DATABASE_URL right?", 3) from exc
    except DatabaseError as exc:
        raise _fail(str(exc), 1) from exc
    except (TransportError, RevocationsUnavailableError) as exc:
        raise _fail(
            f"{exc}; is KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers} right?", 3
        ) from exc


@app.command()
def refresh(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Redeem a refresh token read from stdin for a new pair (never pass tokens as arguments).

    A refresh token works once: presenting it again revokes its whole family everywhere.
    Needs DATABASE_URL, where single use is enforced across processes.
    """
    security = _settings(SecuritySettings)
    database = _settings(DatabaseSettings)
    kafka = _settings(KafkaSettings)
    if not database.configured:
        raise _fail("refresh needs DATABASE_URL: PostgreSQL makes refresh tokens single-use", 2)
    token = sys.stdin.readline().strip()
    if not token:
        raise _fail("pipe the refresh token on stdin, e.g. `... | streaming auth refresh`", 2)
    store = shared_revocations(security, kafka, database)
    manager = _run(lambda: JWTManager(security, revocations=store))
    pairs: list[TokenPair] = []

    async def run() -> None:
        try:
            await store.start()
            await store.wait_current(kafka.metadata_timeout_s)
            pairs.append(await manager.refresh(token))
        finally:
            await store.stop()

    try:
        _run_store(run, database, kafka)
    except InvalidTokenError as exc:
        raise _fail(f"refresh refused: {exc}", 1) from exc
    pair = pairs[0]
    if as_json:
        body = {
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "token_type": pair.token_type,
            "expires_in": pair.expires_in,
            "refresh_expires_in": pair.refresh_expires_in,
            "family_id": pair.family_id,
        }
        typer.echo(json.dumps(body))
    else:
        typer.echo(pair.access_token)
        typer.echo(pair.refresh_token)


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
    """Print the peppered hash of a password for a credentials file (only the hash on stdout).

    On a terminal it prompts twice on stderr without echo; otherwise it reads the
    password from the first line of stdin, and a second line, if given, must repeat it.
    """
    hasher = _run(lambda: SecureHasher(_settings(SecuritySettings)))
    password = _read_password()
    check = validate_password_strength(password, username=user)
    if not check.ok and not allow_weak:
        raise _fail("password " + "; ".join(check.problems), 1)
    typer.echo(hasher.hash_password(password))


def _read_password() -> str:
    if sys.stdin.isatty():
        # getpass writes each prompt after it has switched echo off: never to stdout
        password = getpass.getpass("password: ", stream=sys.stderr)
        if getpass.getpass("repeat for confirmation: ", stream=sys.stderr) != password:
            raise _fail("the two passwords differ", 1)
        return password
    password = sys.stdin.readline().rstrip("\r\n")
    confirmation = sys.stdin.readline()
    if not password:
        raise _fail("no password on stdin; pipe it as the first line", 2)
    if confirmation and confirmation.rstrip("\r\n") != password:
        raise _fail("the second line of stdin does not repeat the password", 1)
    return password


__all__ = ["app"]
