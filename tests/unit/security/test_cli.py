"""`streaming auth ...` commands: token, jwks, keygen, hash-password, and their exit codes."""

from __future__ import annotations

import json

import jwt as pyjwt
import pytest
from typer.testing import CliRunner

from streaming.security import SigningKey
from streaming.security.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def key_env() -> dict[str, str]:
    key = SigningKey.generate("EdDSA")
    return {
        "SECURITY_JWT_ALGORITHM": "EdDSA",
        "SECURITY_JWT_PRIVATE_KEY_PEM": key.private_pem(),
        "SECURITY_JWT_AUDIENCE": "cli-aud",
    }


def test_token_prints_a_verifiable_token(key_env: dict[str, str]) -> None:
    result = runner.invoke(
        app, ["token", "--user", "ops", "--role", "admin", "-r", "x"], env=key_env
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    jwks = json.loads(runner.invoke(app, ["jwks"], env=key_env).stdout)
    public = pyjwt.PyJWK(jwks["keys"][0])
    claims = pyjwt.decode(token, public, algorithms=["EdDSA"], audience="cli-aud")
    assert claims["sub"] == "ops" and claims["roles"] == ["admin", "x"]


def test_token_json_with_refresh_and_permissions(key_env: dict[str, str]) -> None:
    result = runner.invoke(
        app,
        ["token", "-u", "svc", "-p", "topic:orders.*:write", "--refresh", "--json"],
        env=key_env,
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
    assert body["refresh_token"].count(".") == 2


def test_token_with_bad_permission_exits_1(key_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["token", "-u", "svc", "-p", "nonsense"], env=key_env)
    assert result.exit_code == 1
    assert "must look like" in result.output


def test_missing_key_exits_2_and_says_how_to_fix() -> None:
    result = runner.invoke(app, ["token", "-u", "svc"], env={"SECURITY_JWT_PRIVATE_KEY_PEM": None})
    assert result.exit_code == 2
    assert "keygen" in result.output


def test_keygen_output_is_usable(key_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["keygen", "--algorithm", "ES256", "--json"])
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert SigningKey.from_private_pem(body["private_key_pem"]).kid == body["kid"]
    assert runner.invoke(app, ["keygen", "--algorithm", "RS256"]).exit_code == 1


def test_hash_password_refuses_weak_and_hashes_strong() -> None:
    env = {"SECURITY_PASSWORD_PEPPER": "cli-pepper-0123456789abcdef"}
    weak = runner.invoke(app, ["hash-password"], input="password1\npassword1\n", env=env)
    assert weak.exit_code == 1 and "too common" in weak.output
    strong = runner.invoke(
        app, ["hash-password"], input="Vivid-Lantern-Orbit-42\nVivid-Lantern-Orbit-42\n", env=env
    )
    assert strong.exit_code == 0
    assert strong.stdout.strip().splitlines()[-1].startswith("$pepper$")


def test_revoke_with_unreachable_database_exits_3() -> None:
    env = {"DATABASE_URL": "postgresql://nobody:pw@127.0.0.1:1/none"}
    result = runner.invoke(app, ["revoke", "--jti", "abc"], env=env)
    assert result.exit_code == 3, result.output
    assert "DATABASE_URL" in result.output
    assert ":pw@" not in result.output


@pytest.mark.parametrize("args", [[], ["--jti", "a", "--family", "b"]])
def test_revoke_needs_exactly_one_target(args: list[str]) -> None:
    result = runner.invoke(app, ["revoke", *args])
    assert result.exit_code == 2
    assert "exactly one of --jti or --family" in result.output


def test_refresh_without_a_database_is_a_configuration_error(key_env: dict[str, str]) -> None:
    env: dict[str, str | None] = {**key_env, "DATABASE_URL": None, "DB_URL": None, "DB_HOST": None}
    result = runner.invoke(app, ["refresh"], input="a.b.c\n", env=env)
    assert result.exit_code == 2
    assert "DATABASE_URL" in result.output and "a.b.c" not in result.output
