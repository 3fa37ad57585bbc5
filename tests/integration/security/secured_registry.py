"""Registry processes with auth on, and the ``streaming`` CLI, driven from the outside.

Everything here is independent of our client code: keys come from ``cryptography``,
tokens are minted by the CLI or forged with ``pyjwt``, requests go through ``httpx``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from streaming.devstack.procs import free_port

PEPPER = "revocation-test-pepper-0123456789"
POLICY = """
roles:
  schema-reader:
    permissions: ["subject:*:read"]
  orders-writer:
    inherits: [schema-reader]
    permissions: ["subject:orders-*:write"]
  registry-admin:
    permissions: ["subject:*:admin", "subject:*:write", "subject:*:read"]
"""
PASSWORDS = {
    "reader": "Quiet-Harbor-Lamp-71",
    "writer": "Amber-Kettle-Drift-38",
    "admin": "Velvet-Canyon-Stone-92",
}
ROLES = {"reader": "schema-reader", "writer": "orders-writer", "admin": "registry-admin"}
ISSUER, AUDIENCE = "tradesense-streaming", "tradesense"  # the SecuritySettings defaults


@dataclass
class Deployment:
    """Shared settings of every process in one test (registries and CLI runs)."""

    env: dict[str, str]
    key: ed25519.Ed25519PrivateKey
    kid: str
    revocation_topic: str
    tmp: Path

    def without_database(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if k not in {"DATABASE_URL", "DB_URL"}}


def deployment(tmp: Path, bootstrap: str, database_url: str) -> Deployment:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    suffix = uuid.uuid4().hex[:10]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "SECURITY_", "DB_"))
    }
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "SECURITY_JWT_PRIVATE_KEY_PEM": pem,
        "SECURITY_RBAC_POLICY_PATH": str(policy),
        "SECURITY_PASSWORD_PEPPER": PEPPER,
        "SECURITY_REVOCATION_TOPIC": f"_streaming.revocations-test-{suffix}",
        "REGISTRY_AUTH_ENABLED": "true",
        "REGISTRY_TOPIC": f"_schemas-revocation-{suffix}",
        "LOG_FORMAT": "json",
    }
    credentials = tmp / "credentials.yaml"
    credentials.write_text(_credentials_yaml(env))
    env["REGISTRY_CREDENTIALS_PATH"] = str(credentials)
    jwks = run_cli(["auth", "jwks"], env)
    kid = str(json.loads(jwks.stdout)["keys"][0]["kid"])
    return Deployment(env, key, kid, env["SECURITY_REVOCATION_TOPIC"], tmp)


def _credentials_yaml(env: Mapping[str, str]) -> str:
    lines = ["users:"]
    for user, password in PASSWORDS.items():
        hashed = run_cli(["auth", "hash-password", "--user", user], env, stdin=password + "\n")
        lines += [
            f"  {user}:",
            f"    password_hash: '{hashed.stdout.strip()}'",
            f"    roles: [{ROLES[user]}]",
        ]
    return "\n".join(lines) + "\n"


def run_cli(
    args: list[str], env: Mapping[str, str], *, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``python -m streaming <args>`` as a child process."""
    done = subprocess.run(
        [sys.executable, "-m", "streaming", *args],
        env=dict(env),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"streaming {args[:2]} exited {done.returncode}: {done.stderr}")
    return done


@contextmanager
def registry_process(env: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """``streaming registry serve`` on a free port until the block ends; yields its URL."""
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streaming", "registry", "serve", "--port", str(port)],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _ready(url, proc, log_path), timeout_s=90, what=f"registry on {url}")
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"registry exited {proc.returncode}: {log_path.read_text()[-3000:]}")
    try:
        return httpx.get(f"{url}/ready", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def eventually(check: Callable[[], bool], *, timeout_s: float, what: str) -> float:
    """Poll ``check`` until true; the seconds it took, or AssertionError at the deadline."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)  # poll
    return time.monotonic() - start


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def status(url: str, token: str, path: str = "/subjects") -> int:
    return httpx.get(f"{url}{path}", headers=bearer(token), timeout=5.0).status_code


def mint(env: Mapping[str, str], user: str, role: str) -> dict[str, Any]:
    """A token pair from ``streaming auth token --refresh --json``."""
    done = run_cli(["auth", "token", "--user", user, "--role", role, "--refresh", "--json"], env)
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def claims(token: str) -> dict[str, Any]:
    """The payload, unverified: the test only reads ids out of tokens the CLI minted."""
    payload: dict[str, Any] = pyjwt.decode(token, options={"verify_signature": False})
    return payload


def assert_refused(response: httpx.Response, *credentials: str) -> dict[str, Any]:
    """401/40101 or 403/40301 with a Confluent body that echoes none of ``credentials``."""
    assert response.status_code in (401, 403), (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    expected = 40101 if response.status_code == 401 else 40301
    assert body["error_code"] == expected, body
    assert isinstance(body["message"], str) and body["message"]
    for secret in credentials:
        assert secret not in response.text
    return body
