"""JWT signing keys, their ids (``kid``) and the public JWKS document.

Asymmetric keys (EdDSA/Ed25519 by default, ES256/P-256) let verifiers hold only public
keys; the ``kid`` is the RFC 7638 thumbprint of the public key, so every instance given
the same key agrees on it. A :class:`KeyRing` signs with one active key and verifies
with the active and any previous keys, which is how keys rotate without downtime:
publish the new public key, switch signing, drop the old key after the longest token
lifetime. HS256 is supported only when configured, and its secret never enters the JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.errors import ConfigError

Algorithm = Literal["EdDSA", "ES256", "HS256"]
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
_MIN_HMAC_BYTES = 32
_HOW_TO_FIX = (
    "generate a key with `streaming auth keygen` and put it in SECURITY_JWT_PRIVATE_KEY_PEM, "
    "or set SECURITY_JWT_ALGORITHM=HS256 with a SECURITY_JWT_SECRET_KEY of 32+ bytes"
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _public_jwk(public: PublicKey) -> dict[str, Any]:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return dict(OKPAlgorithm.to_jwk(public, as_dict=True))
    return dict(ECAlgorithm.to_jwk(public, as_dict=True))


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without whitespace."""
    required = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({k: jwk[k] for k in required}, sort_keys=True, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True)
class SigningKey:
    """One key: ``signer`` is None for a verify-only (previous, public) key."""

    kid: str
    algorithm: Algorithm
    verifier: PublicKey | bytes = field(repr=False)
    signer: PrivateKey | bytes | None = field(default=None, repr=False)

    @classmethod
    def generate(cls, algorithm: Algorithm = "EdDSA") -> SigningKey:
        if algorithm == "HS256":
            raise ValueError("HS256 secrets come from configuration, not from generate()")
        private: PrivateKey = (
            ed25519.Ed25519PrivateKey.generate()
            if algorithm == "EdDSA"
            else ec.generate_private_key(ec.SECP256R1())
        )
        return cls._from_private(private)

    @classmethod
    def _from_private(cls, private: PrivateKey) -> SigningKey:
        public = private.public_key()
        return cls(_thumbprint(_public_jwk(public)), _algorithm_of(public), public, private)

    @classmethod
    def from_private_pem(cls, pem: str | bytes | SecretStr) -> SigningKey:
        raw = pem.get_secret_value() if isinstance(pem, SecretStr) else pem
        data = raw.encode("utf-8") if isinstance(raw, str) else raw
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                [f"SECURITY_JWT_PRIVATE_KEY_PEM is not a PEM private key; {_HOW_TO_FIX}"]
            ) from exc
        if not isinstance(private, PrivateKey) or (
            isinstance(private, ec.EllipticCurvePrivateKey)
            and not isinstance(private.curve, ec.SECP256R1)
        ):
            raise ConfigError(["JWT signing keys must be Ed25519 (EdDSA) or P-256 (ES256)"])
        return cls._from_private(private)

    @classmethod
    def from_public_pem(cls, pem: str | bytes) -> SigningKey:
        """A verify-only key, e.g. the previous key during a rotation."""
        data = pem.encode("utf-8") if isinstance(pem, str) else pem
        try:
            public = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise ConfigError(["JWT verification key is not a PEM public key"]) from exc
        if not isinstance(public, PublicKey):
            raise ConfigError(["JWT verification keys must be Ed25519 or P-256 public keys"])
        return cls(_thumbprint(_public_jwk(public)), _algorithm_of(public), public)

    @classmethod
    def from_secret(cls, secret: str | bytes | SecretStr) -> SigningKey:
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        data = raw.encode("utf-8") if isinstance(raw, str) else raw
        if len(data) < _MIN_HMAC_BYTES:
            raise ConfigError(
                [f"SECURITY_JWT_SECRET_KEY must be at least {_MIN_HMAC_BYTES} bytes for HS256"]
            )
        kid = "hs-" + hmac.new(data, b"tradesense-jwt-kid", hashlib.sha256).hexdigest()[:16]
        return cls(kid, "HS256", data, data)

    def public_jwk(self) -> dict[str, Any] | None:
        """The public JWK for the JWKS document; None for HMAC keys (never published)."""
        if isinstance(self.verifier, bytes):
            return None
        return {**_public_jwk(self.verifier), "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def private_pem(self) -> str:
        if not isinstance(self.signer, PrivateKey):
            raise ValueError("only asymmetric keys with a private part can be exported as PEM")
        return self.signer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    def public_pem(self) -> str:
        if isinstance(self.verifier, bytes):
            raise ValueError("HMAC keys have no public part")
        return self.verifier.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")


def _algorithm_of(public: PublicKey) -> Algorithm:
    return "EdDSA" if isinstance(public, ed25519.Ed25519PublicKey) else "ES256"


class KeyRing:
    """Signs with ``active``; verifies with ``active`` and ``previous`` by ``kid``."""

    def __init__(self, active: SigningKey, previous: Iterable[SigningKey] = ()) -> None:
        if active.signer is None:
            raise ConfigError(["the active JWT key needs its private part to sign"])
        self.active = active
        self._keys = {k.kid: k for k in previous}
        self._keys[active.kid] = active

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> KeyRing:
        if settings.jwt_algorithm == "HS256":
            if settings.jwt_secret_key is None:
                raise ConfigError([f"SECURITY_JWT_SECRET_KEY is required for HS256; {_HOW_TO_FIX}"])
            return cls(SigningKey.from_secret(settings.jwt_secret_key))
        if settings.jwt_private_key_pem is None:
            raise ConfigError(
                [
                    f"SECURITY_JWT_PRIVATE_KEY_PEM is required for {settings.jwt_algorithm}; {_HOW_TO_FIX}"
                ]
            )
        key = SigningKey.from_private_pem(settings.jwt_private_key_pem)
        if key.algorithm != settings.jwt_algorithm:
            raise ConfigError(
                [
                    f"SECURITY_JWT_PRIVATE_KEY_PEM is a {key.algorithm} key but "
                    f"SECURITY_JWT_ALGORITHM={settings.jwt_algorithm}; make them agree"
                ]
            )
        return cls(key)

    def get(self, kid: str) -> SigningKey | None:
        return self._keys.get(kid)

    @property
    def algorithms(self) -> frozenset[str]:
        return frozenset(k.algorithm for k in self._keys.values())

    def rotate(self, new_active: SigningKey) -> KeyRing:
        """A ring signing with ``new_active`` that still verifies every current key."""
        return KeyRing(new_active, self._keys.values())

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """``{"keys": [...]}``: public keys only, active first."""
        ordered = [self.active, *(k for k in self._keys.values() if k is not self.active)]
        return {"keys": [jwk for k in ordered if (jwk := k.public_jwk()) is not None]}


__all__ = ["Algorithm", "KeyRing", "SigningKey"]
