"""Signing keys from configuration, stable key ids and the JWKS document."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.errors import ConfigError
from streaming.security import KeyRing, SigningKey


def test_missing_private_key_says_how_to_fix() -> None:
    with pytest.raises(ConfigError, match="streaming auth keygen"):
        KeyRing.from_settings(SecuritySettings(jwt_algorithm="EdDSA", jwt_private_key_pem=None))


def test_hs256_needs_a_long_enough_secret() -> None:
    with pytest.raises(ConfigError, match="SECURITY_JWT_SECRET_KEY"):
        KeyRing.from_settings(SecuritySettings(jwt_algorithm="HS256", jwt_secret_key=None))
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        KeyRing.from_settings(
            SecuritySettings(jwt_algorithm="HS256", jwt_secret_key=SecretStr("short"))
        )


def test_pem_algorithm_must_match_the_setting() -> None:
    pem = SigningKey.generate("ES256").private_pem()
    with pytest.raises(ConfigError, match="make them agree"):
        KeyRing.from_settings(
            SecuritySettings(jwt_algorithm="EdDSA", jwt_private_key_pem=SecretStr(pem))
        )
    ring = KeyRing.from_settings(
        SecuritySettings(jwt_algorithm="ES256", jwt_private_key_pem=SecretStr(pem))
    )
    assert ring.active.algorithm == "ES256"


def test_not_a_pem_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a PEM private key"):
        SigningKey.from_private_pem("-----BEGIN NONSENSE-----")


def test_kid_is_the_same_on_every_instance_given_the_same_key() -> None:
    key = SigningKey.generate("EdDSA")
    again = SigningKey.from_private_pem(key.private_pem())
    assert again.kid == key.kid
    assert SigningKey.from_secret("x" * 32).kid == SigningKey.from_secret("x" * 32).kid


def test_jwks_holds_public_parts_only() -> None:
    key = SigningKey.generate("EdDSA")
    (jwk,) = KeyRing(key).jwks()["keys"]
    assert jwk["kid"] == key.kid and jwk["alg"] == "EdDSA" and jwk["use"] == "sig"
    assert "d" not in jwk  # the private scalar
    assert key.private_pem() not in repr(key)


def test_active_key_must_be_able_to_sign() -> None:
    public_only = SigningKey.from_public_pem(SigningKey.generate("EdDSA").public_pem())
    with pytest.raises(ConfigError, match="private part"):
        KeyRing(public_only)
