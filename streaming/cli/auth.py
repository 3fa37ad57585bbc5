"""``streaming auth ...``: mint, refresh and revoke tokens, show the JWKS, hash passwords.

Exit codes: 0 done, 1 bad input or a refused token, 2 usage or configuration problem (the
message says which variable to set), 3 PostgreSQL or Kafka unreachable.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import typer

from streaming.cli._common import ExitCode, JsonOpt, err, fail, group, run, unavailable
from streaming.config import DatabaseSettings, KafkaSettings, SecuritySettings, read_settings
from streaming.errors import DatabaseUnavailableError, TransportError
from streaming.security.errors import InvalidTokenError, RevocationsUnavailableError
from streaming.security.events import SecurityEvent, SecurityEventType, log_security_event
from streaming.security.hashing import SecureHasher, validate_password_strength
from streaming.security.jwt import JWTManager, TokenPair
from streaming.security.keys import KeyRing, SigningKey
from streaming.security.rbac import Permission
from streaming.security.revocation_log import horizon_s, shared_revocations

app = group("Tokens, revocation and JWKS.")


@contextmanager
def _services(database: DatabaseSettings, kafka: KafkaSettings) -> Iterator[None]:
    """PostgreSQL or Kafka unreachable: exit 3 and name the variable to check."""
    with (
        unavailable(DatabaseUnavailableError, fix=f"is DATABASE_URL={database.display_url} right?"),
        unavailable(
            TransportError,
            RevocationsUnavailableError,
            fix=f"is KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers} right?",
        ),
    ):
        yield


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
    as_json: JsonOpt = False,
) -> None:
    """Mint an access token signed with the configured key (prints only the token)."""
    settings = read_settings(SecuritySettings)
    manager = JWTManager(settings, audit=_quiet)
    try:
        perms = [Permission.parse(p) for p in permission or []]
    except ValueError as exc:
        raise fail(str(exc)) from exc
    roles = role or []
    if refresh:
        pair = run(
            lambda: manager.issue_tokens(user, roles=roles, permissions=perms), telemetry=False
        )
        access, expires_in = pair.access_token, pair.expires_in
        extra: dict[str, Any] = {
            "refresh_token": pair.refresh_token,
            "refresh_expires_in": pair.refresh_expires_in,
        }
    else:
        ttl_s = ttl_minutes * 60 if ttl_minutes else None
        access = run(
            lambda: manager.create_access_token(user, perms, roles=roles, ttl_s=ttl_s),
            telemetry=False,
        )
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
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token id or a family everywhere: the revocation topic every verifier tails
    (KAFKA_BOOTSTRAP_SERVERS), and PostgreSQL too when DATABASE_URL is set."""
    if (jti is None) == (family is None):
        raise fail("give exactly one of --jti or --family", ExitCode.USAGE)
    security = read_settings(SecuritySettings)
    database = read_settings(DatabaseSettings)
    kafka = read_settings(KafkaSettings)
    until = time.time() + horizon_s(security)
    store = shared_revocations(security, kafka, database)
    what = {"jti": jti} if jti is not None else {"family_id": family}

    async def revoke_everywhere() -> None:
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

    with _services(database, kafka):
        run(revoke_everywhere, telemetry=False)
    if as_json:
        typer.echo(json.dumps({"revoked": jti or family, **what, "until": int(until)}))
    else:
        typer.echo(f"revoked {jti or family}")


@app.command()
def refresh(
    as_json: JsonOpt = False,
) -> None:
    """Redeem a refresh token read from stdin for a new pair (never pass tokens as arguments).

    A refresh token works once: presenting it again revokes its whole family everywhere.
    Needs DATABASE_URL, where single use is enforced across processes.
    """
    security = read_settings(SecuritySettings)
    database = read_settings(DatabaseSettings)
    kafka = read_settings(KafkaSettings)
    if not database.configured:
        raise fail(
            "refresh needs DATABASE_URL: PostgreSQL makes refresh tokens single-use",
            ExitCode.USAGE,
        )
    token = sys.stdin.readline().strip()
    if not token:
        raise fail(
            "pipe the refresh token on stdin, e.g. `... | streaming auth refresh`", ExitCode.USAGE
        )
    store = shared_revocations(security, kafka, database)
    manager = JWTManager(security, revocations=store)

    async def redeem() -> TokenPair:
        try:
            await store.start()
            await store.wait_current(kafka.metadata_timeout_s)
            return await manager.refresh(token)
        finally:
            await store.stop()

    try:
        with _services(database, kafka):
            pair = run(redeem, telemetry=False)
    except InvalidTokenError as exc:
        raise fail(f"refresh refused: {exc}") from exc
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
    ring = KeyRing.from_settings(read_settings(SecuritySettings))
    typer.echo(json.dumps(ring.jwks(), indent=2))


@app.command()
def keygen(
    algorithm: Annotated[str, typer.Option(help="EdDSA or ES256.")] = "EdDSA",
    as_json: JsonOpt = False,
) -> None:
    """Generate a signing key for SECURITY_JWT_PRIVATE_KEY_PEM (printed once, keep it secret)."""
    if algorithm not in ("EdDSA", "ES256"):
        raise fail("--algorithm must be EdDSA or ES256")
    alg: Literal["EdDSA", "ES256"] = "EdDSA" if algorithm == "EdDSA" else "ES256"
    key = SigningKey.generate(alg)
    if as_json:
        typer.echo(
            json.dumps({"kid": key.kid, "algorithm": alg, "private_key_pem": key.private_pem()})
        )
    else:
        err.print(f"kid {key.kid}; store this PEM as a secret")
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
    hasher = SecureHasher(read_settings(SecuritySettings))
    password = _read_password()
    check = validate_password_strength(password, username=user)
    if not check.ok and not allow_weak:
        raise fail("password " + "; ".join(check.problems))
    typer.echo(hasher.hash_password(password))


def _read_password() -> str:
    if sys.stdin.isatty():
        # getpass writes each prompt after it has switched echo off: never to stdout
        password = getpass.getpass("password: ", stream=sys.stderr)
        if getpass.getpass("repeat for confirmation: ", stream=sys.stderr) != password:
            raise fail("the two passwords differ")
        return password
    password = sys.stdin.readline().rstrip("\r\n")
    confirmation = sys.stdin.readline()
    if not password:
        raise fail("no password on stdin; pipe it as the first line", ExitCode.USAGE)
    if confirmation and confirmation.rstrip("\r\n") != password:
        raise fail("the second line of stdin does not repeat the password")
    return password


__all__ = ["app"]
