"""OWASP JWT cheat-sheet attacks on a real ``streaming registry serve`` process (auth on,
Kafka only). Tokens are forged with pyjwt/cryptography or minted by the CLI; every attack
must get 401/40101 or 403/40301 with a Confluent body that echoes no credential, and the
server must stay healthy (``/ready`` answers 200) after each."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from streaming.config import DatabaseSettings, KafkaSettings
from tests.integration.security.secured_registry import (
    AUDIENCE,
    ISSUER,
    PASSWORDS,
    Deployment,
    assert_refused,
    deployment,
    eventually,
    mint,
    registry_process,
    run_cli,
    status,
)

SCHEMA = '{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}'
READ = ("GET", "/subjects")
ADMIN = ("DELETE", "/subjects/orders-value")


@dataclass
class Target:
    dep: Deployment
    url: str
    log: Path


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
) -> Iterator[Target]:
    """One registry without PostgreSQL; the CLI runs get DATABASE_URL (refresh needs it)."""
    tmp = tmp_path_factory.mktemp("attacks")
    url = database_settings.connection_url.replace("postgresql+asyncpg", "postgresql")
    dep = deployment(tmp, kafka_settings.bootstrap_servers, url)
    log = tmp / "registry.log"
    with registry_process(dep.without_database(), log) as registry:
        valid = _signed(dep, _claims())
        eventually(lambda: status(registry, valid) == 200, timeout_s=30, what="a valid token")
        yield Target(dep, registry, log)


# ---- forging helpers (pyjwt and cryptography only) ------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _claims(role: str = "schema-reader", **changes: Any) -> dict[str, Any]:
    """Valid access-token claims; a change to ``None`` drops the claim."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": "mallory",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "token_use": "access",
        "roles": [role],
        "permissions": [],
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def _signed(
    dep: Deployment,
    payload: dict[str, Any],
    *,
    key: ed25519.Ed25519PrivateKey | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    return pyjwt.encode(
        payload, key or dep.key, algorithm="EdDSA", headers={"kid": dep.kid, **(headers or {})}
    )


def _hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """HMAC by hand: pyjwt itself refuses an asymmetric key as an HMAC secret."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _public_forms(dep: Deployment) -> dict[str, bytes]:
    public = dep.key.public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = OKPAlgorithm.to_jwk(public).encode()
    return {"pem": pem, "raw": raw, "jwk": jwk}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# ---- the attacks ----------------------------------------------------------------------


@dataclass
class Attack:
    headers: dict[str, str]
    method: str = "GET"
    path: str = "/subjects"
    status: int = 401
    secrets: list[str] = field(default_factory=list)


def _token_attack(token: str, route: tuple[str, str] = READ) -> Attack:
    return Attack(_bearer(token), route[0], route[1], 401, [token])


def _alg_none(dep: Deployment, alg: str) -> Attack:
    header = {"alg": alg, "typ": "JWT", "kid": dep.kid}
    return _token_attack(f"{_segment(header)}.{_segment(_claims('registry-admin'))}.", ADMIN)


def _hs256_with_public_key(dep: Deployment, form: str) -> Attack:
    header = {"alg": "HS256", "typ": "JWT", "kid": dep.kid}
    secret = _public_forms(dep)[form]
    return _token_attack(_hs256(header, _claims("registry-admin"), secret), ADMIN)


def _foreign_key_our_kid(dep: Deployment) -> Attack:
    foreign = ed25519.Ed25519PrivateKey.generate()
    return _token_attack(_signed(dep, _claims("registry-admin"), key=foreign), ADMIN)


def _embedded_jwk(dep: Deployment, keep_our_kid: bool) -> Attack:
    foreign = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(OKPAlgorithm.to_jwk(foreign.public_key()))
    headers: dict[str, Any] = {"jwk": jwk}
    if not keep_our_kid:
        headers["kid"] = "attacker-key"
    token = _signed(dep, _claims("registry-admin"), key=foreign, headers=headers)
    return _token_attack(token, ADMIN)


def _jku(dep: Deployment) -> Attack:
    foreign = ed25519.Ed25519PrivateKey.generate()
    headers = {"jku": "http://127.0.0.1:9/.well-known/jwks.json", "kid": "attacker-key"}
    return _token_attack(_signed(dep, _claims("registry-admin"), key=foreign, headers=headers))


def _jku_our_kid(dep: Deployment) -> Attack:
    foreign = ed25519.Ed25519PrivateKey.generate()
    headers = {"jku": "http://127.0.0.1:9/.well-known/jwks.json"}
    return _token_attack(_signed(dep, _claims("registry-admin"), key=foreign, headers=headers))


def _edited_payload(dep: Deployment) -> Attack:
    header, _payload, signature = _signed(dep, _claims()).split(".")
    forged = f"{header}.{_segment(_claims('registry-admin'))}.{signature}"
    return _token_attack(forged, ADMIN)


def _claims_attack(**changes: Any) -> Callable[[Deployment], Attack]:
    return lambda dep: _token_attack(_signed(dep, _claims(**changes)))


def _minted_refresh(dep: Deployment) -> Attack:
    return _token_attack(mint(dep.env, "svc-a", "schema-reader")["refresh_token"])


def _rotated_refresh(dep: Deployment) -> Attack:
    pair = mint(dep.env, "svc-b", "schema-reader")
    run_cli(["auth", "refresh"], dep.env, stdin=pair["refresh_token"])
    return _token_attack(pair["refresh_token"])


def _as(user: str, method: str, path: str, status: int = 403) -> Callable[[Deployment], Attack]:
    password = PASSWORDS[user]
    return lambda dep: Attack(_basic(user, password), method, path, status, [password])


def _bearer_as(role: str, method: str, path: str) -> Callable[[Deployment], Attack]:
    return lambda dep: Attack(_bearer(_signed(dep, _claims(role))), method, path, 403)


def _wrong_basic(user: str, password: str) -> Callable[[Deployment], Attack]:
    return lambda dep: Attack(_basic(user, password), secrets=[password] if password else [])


def _raw_header(value: str) -> Callable[[Deployment], Attack]:
    return lambda dep: Attack({"Authorization": value}, secrets=[])


B64_NO_COLON = base64.b64encode(b"no-colon-here").decode()
B64_NO_USER = base64.b64encode(b":secret-pw").decode()
B64_NOT_UTF8 = base64.b64encode(b"\xff\xfe:pw").decode()
VERSIONS = "/subjects/{}/versions"

ATTACKS: dict[str, Callable[[Deployment], Attack]] = {
    "no-credentials": lambda dep: Attack({}),
    **{
        f"alg-{alg}": (lambda dep, a=alg: _alg_none(dep, a))
        for alg in ("none", "None", "NONE", "nOnE")
    },
    **{
        f"hs256-public-key-{form}": (lambda dep, f=form: _hs256_with_public_key(dep, f))
        for form in ("pem", "raw", "jwk")
    },
    "foreign-key-with-our-kid": _foreign_key_our_kid,
    "embedded-jwk-our-kid": lambda dep: _embedded_jwk(dep, True),
    "embedded-jwk-own-kid": lambda dep: _embedded_jwk(dep, False),
    "jku-header": _jku,
    "jku-header-our-kid": _jku_our_kid,
    "edited-payload-old-signature": _edited_payload,
    "expired": _claims_attack(
        iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200, exp=int(time.time()) - 3600
    ),
    "not-yet-valid": _claims_attack(nbf=int(time.time()) + 3600),
    "missing-exp": _claims_attack(exp=None),
    "wrong-iss": _claims_attack(iss="https://evil.example"),
    "wrong-aud": _claims_attack(aud="someone-else"),
    "forged-refresh-as-access": _claims_attack(token_use="refresh"),
    "minted-refresh-as-access": _minted_refresh,
    "rotated-refresh-reused": _rotated_refresh,
    "reader-basic-writes": _as("reader", "POST", VERSIONS.format("orders-value")),
    "reader-basic-deletes": _as("reader", "DELETE", "/subjects/orders-value"),
    "reader-basic-sets-config": _as("reader", "PUT", "/config"),
    "reader-bearer-writes": _bearer_as("schema-reader", "POST", VERSIONS.format("orders-value")),
    "reader-bearer-deletes": _bearer_as(
        "schema-reader", "DELETE", "/subjects/orders-value/versions/1"
    ),
    **{
        f"writer-escapes-to-{name}": _as("writer", "POST", VERSIONS.format(subject))
        for name, subject in {
            "users": "users-value",
            "prefix": "xorders-value",
            "upper-case": "ORDERS-value",
            "underscore": "orders_value",
            "leading-space": "%20orders-value",
            "dot-segment": "orders-x%2F..%2Fusers-value",
        }.items()
    },
    "unknown-route-anonymous": lambda dep: Attack({}, "GET", "/no/such/route"),
    "unknown-route-reader": _as("reader", "GET", "/no/such/route"),
    "wrong-method-writer": _as("writer", "PATCH", "/subjects/orders-value/versions"),
    "writer-deletes-own-subject": _as("writer", "DELETE", "/subjects/orders-value"),
    "writer-bearer-escapes": _bearer_as("orders-writer", "POST", VERSIONS.format("users-value")),
    "basic-wrong-password": _wrong_basic("reader", "not-the-password"),
    "basic-unknown-user": _wrong_basic("nobody", PASSWORDS["reader"]),
    "basic-empty-password": _wrong_basic("reader", ""),
    "basic-user-case": _wrong_basic("READER", PASSWORDS["reader"]),
    "basic-password-trailing-space": _wrong_basic("reader", PASSWORDS["reader"] + " "),
    "basic-other-users-password": _wrong_basic("admin", PASSWORDS["reader"]),
    "bearer-64kib": _raw_header("Bearer " + "A" * 65_536),
    "other-header-64kib-no-credentials": lambda dep: Attack({"X-Filler": "x" * 65_536}),
    "basic-64kib": _raw_header("Basic " + base64.b64encode(b"reader:" + b"x" * 49_152).decode()),
    "bearer-no-token": _raw_header("Bearer"),
    "bearer-whitespace-padded": _raw_header("Bearer \t \t x"),
    "bearer-two-segments": _raw_header("Bearer a.b"),
    "bearer-four-segments": _raw_header("Bearer a.b.c.d"),
    "bearer-dots-only": _raw_header("Bearer .."),
    "bearer-header-not-object": _raw_header(f"Bearer {_b64(b'[]')}.{_b64(b'{}')}.sig"),
    "bearer-not-base64": _raw_header("Bearer !!!.###.$$$"),
    "basic-no-value": _raw_header("Basic"),
    "basic-not-base64": _raw_header("Basic !!!not-base64!!!"),
    "basic-no-colon": _raw_header(f"Basic {B64_NO_COLON}"),
    "basic-no-user": _raw_header(f"Basic {B64_NO_USER}"),
    "basic-not-utf8": _raw_header(f"Basic {B64_NOT_UTF8}"),
    "unknown-scheme": _raw_header("Digest username=reader"),
    "scheme-without-space": _raw_header("Bearer:abc.def.ghi"),
    "lower-case-scheme-garbage": _raw_header("bearer x"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_refused_and_the_server_stays_healthy(target: Target, name: str) -> None:
    attack = ATTACKS[name](target.dep)
    body = SCHEMA if attack.method in ("POST", "PUT") else None
    response = httpx.request(
        attack.method,
        f"{target.url}{attack.path}",
        headers={**attack.headers, "Content-Type": "application/vnd.schemaregistry.v1+json"},
        content=json.dumps({"schema": body}) if body else None,
        timeout=10.0,
    )
    refused = assert_refused(response, *attack.secrets)
    assert response.status_code == attack.status, (name, refused)
    if response.status_code == 401:
        assert "Basic" in response.headers["www-authenticate"]
    assert httpx.get(f"{target.url}/ready", timeout=5.0).status_code == 200
    log = target.log.read_text()
    for secret in attack.secrets:
        assert secret not in log


def test_a_correctly_signed_token_is_accepted(target: Target) -> None:
    """The forging helpers make tokens the registry accepts, so each refusal above is
    due to the one thing the attack changed."""
    assert status(target.url, _signed(target.dep, _claims())) == 200
    writer = _signed(target.dep, _claims("orders-writer"))
    response = httpx.post(
        f"{target.url}{VERSIONS.format('orders-value')}",
        headers={**_bearer(writer), "Content-Type": "application/vnd.schemaregistry.v1+json"},
        content=json.dumps({"schema": SCHEMA}),
        timeout=10.0,
    )
    assert response.status_code == 200, response.text


def test_reused_refresh_token_revokes_its_family_at_the_registry(target: Target) -> None:
    pair = mint(target.dep.env, "svc-c", "schema-reader")
    rotated = json.loads(
        run_cli(["auth", "refresh", "--json"], target.dep.env, stdin=pair["refresh_token"]).stdout
    )
    assert status(target.url, rotated["access_token"]) == 200
    reuse = run_cli(["auth", "refresh"], target.dep.env, stdin=pair["refresh_token"], check=False)
    assert reuse.returncode == 1
    for token in (pair["access_token"], rotated["access_token"]):
        eventually(lambda t=token: status(target.url, t) == 401, timeout_s=10, what="refusal")
        response = httpx.get(f"{target.url}/subjects", headers=_bearer(token), timeout=5.0)
        assert assert_refused(response, token)["error_code"] == 40101
    assert httpx.get(f"{target.url}/ready", timeout=5.0).status_code == 200
