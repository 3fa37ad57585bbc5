"""Audit sink settings (``AUDIT_`` prefix) and the key material they name.

Keys come from the environment (or a KMS that fills it), never from the database:
``AUDIT_MAC_KEYS`` holds ``kid:base64key`` pairs for the row MACs, ``AUDIT_SIGNING_KEY``
the Ed25519 checkpoint key, ``AUDIT_KEK`` the key-encryption key wrapping per-subject
PII data keys (falls back to ``SECURITY_ENCRYPTION_KEY``).
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streaming.audit.checkpoints import (
    CheckpointSigner,
    load_private_key,
    load_public_key,
    signer_key_id,
)
from streaming.audit.keys import MacKeyRing
from streaming.config import LoggingSettings, SecuritySettings, read_settings
from streaming.core.topics import AUDIT_CHECKPOINTS_TOPIC as DEFAULT_CHECKPOINT_TOPIC
from streaming.core.topics import AUDIT_EVENTS_TOPIC
from streaming.errors import ConfigError
from streaming.security.fields import FieldEncryptor, key_id, parse_key

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def decode_key_bytes(text: str) -> bytes:
    """Base64 (std or url-safe) or hex text -> bytes."""
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]+", text) and len(text) % 2 == 0 and len(text) >= 64:
        return bytes.fromhex(text)
    try:
        return base64.urlsafe_b64decode(
            text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4)
        )
    except (binascii.Error, ValueError) as exc:
        raise ConfigError([f"audit key material is neither base64 nor hex: {exc}"]) from exc


class AuditSinkSettings(BaseSettings):
    """Where the audit sink reads and writes, how it batches and which keys it uses."""

    model_config = SettingsConfigDict(
        env_prefix="AUDIT_", frozen=True, extra="forbid", populate_by_name=True
    )

    topics: str = AUDIT_EVENTS_TOPIC
    group_id: str = "audit-sink"
    db_schema: str = "audit"
    writer_role: str | None = "audit_writer"
    checkpoint_topic: str = DEFAULT_CHECKPOINT_TOPIC
    batch_max_rows: int = Field(default=1000, gt=0)
    batch_max_latency_ms: int = Field(default=200, gt=0)
    checkpoint_every_rows: int = Field(default=5000, gt=0)
    checkpoint_every_s: float = Field(default=30.0, gt=0)
    session_timeout_ms: int = Field(default=10_000, ge=6000)
    backoff_initial_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=5.0, gt=0)
    kafka_commit_interval_s: float = Field(default=1.0, ge=0)
    mac_keys: SecretStr | None = None
    mac_active_key_id: str | None = None
    signing_key: SecretStr | None = None
    verify_keys: str = ""
    kek: SecretStr | None = None
    previous_keks: SecretStr | None = None
    pii_enabled: bool | None = None
    """``AUDIT_PII_ENABLED``; unset: ``LOG_AUDIT_ENCRYPTION_ENABLED`` decides (see
    :attr:`encrypt_pii`)."""
    pii_key_cache_size: int = Field(default=10_000, gt=0)
    pii_key_cache_ttl_s: float = Field(default=300.0, gt=0)

    @field_validator("db_schema", "writer_role")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not _IDENT.match(value):
            raise ValueError("must be a lower-case SQL identifier (letters, digits, _)")
        return value

    def encrypt_pii(self, logging: LoggingSettings | None = None) -> bool:
        """Whether the sink envelope-encrypts PII: ``LOG_AUDIT_ENCRYPTION_ENABLED`` (the
        seed's switch, on by default and required by the compliance rules) unless
        ``AUDIT_PII_ENABLED`` says otherwise; turning it off while the seed's switch is on
        is refused, so the two can never disagree silently."""
        wanted = (logging or read_settings(LoggingSettings)).audit_encryption_enabled
        if self.pii_enabled is None:
            return wanted
        if wanted and not self.pii_enabled:
            raise ConfigError(
                [
                    "AUDIT_PII_ENABLED=false contradicts LOG_AUDIT_ENCRYPTION_ENABLED=true: "
                    "audit log encryption must be enabled; unset AUDIT_PII_ENABLED"
                ]
            )
        return self.pii_enabled

    @property
    def topic_list(self) -> list[str]:
        return [t.strip() for t in self.topics.split(",") if t.strip()]

    def mac_key_ring(self) -> MacKeyRing:
        """``AUDIT_MAC_KEYS=kid1:base64,kid2:base64``; the active id defaults to the last."""
        if self.mac_keys is None:
            raise ConfigError(
                [
                    "AUDIT_MAC_KEYS is not set: give 'kid:base64key' pairs (32+ random bytes "
                    "each), e.g. AUDIT_MAC_KEYS=k1:$(python -c 'import secrets;"
                    "print(secrets.token_urlsafe(32))')"
                ]
            )
        keys: dict[str, bytes] = {}
        for entry in self.mac_keys.get_secret_value().split(","):
            kid, sep, material = entry.strip().partition(":")
            if not sep or not kid:
                raise ConfigError(["AUDIT_MAC_KEYS entries must look like kid:base64key"])
            keys[kid] = decode_key_bytes(material)
        active = self.mac_active_key_id or list(keys)[-1]
        try:
            return MacKeyRing(keys, active)
        except (KeyError, ValueError) as exc:
            raise ConfigError([f"AUDIT_MAC_KEYS / AUDIT_MAC_ACTIVE_KEY_ID: {exc}"]) from exc

    def signer(self) -> CheckpointSigner:
        if self.signing_key is None:
            raise ConfigError(
                [
                    "AUDIT_SIGNING_KEY is not set: an Ed25519 private key as PEM or base64 of "
                    "32 raw bytes (streaming audit keygen prints one)"
                ]
            )
        raw = self.signing_key.get_secret_value().encode()
        try:
            return CheckpointSigner(load_private_key(raw if b"BEGIN" in raw else _b64(raw)))
        except ValueError as exc:
            raise ConfigError([f"AUDIT_SIGNING_KEY: {exc}"]) from exc

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Checkpoint verification keys: the signer's own plus ``AUDIT_VERIFY_KEYS``."""
        keys: dict[str, Ed25519PublicKey] = {}
        for entry in self.verify_keys.split(","):
            if entry.strip():
                try:
                    key = load_public_key(_b64(entry.strip().encode()))
                except ValueError as exc:
                    raise ConfigError([f"AUDIT_VERIFY_KEYS: {exc}"]) from exc
                keys[signer_key_id(key)] = key
        if self.signing_key is not None:
            signer = self.signer()
            keys[signer.key_id] = signer.public_key
        if not keys:
            raise ConfigError(
                ["set AUDIT_VERIFY_KEYS (base64 Ed25519 public keys) or AUDIT_SIGNING_KEY"]
            )
        return keys

    def kek_encryptor(self, security: SecuritySettings | None = None) -> FieldEncryptor:
        """The PII key-encryption key (``AUDIT_KEK``, else ``SECURITY_ENCRYPTION_KEY``)."""
        active = self.kek
        if active is None:
            active = (security or SecuritySettings()).encryption_key
        if active is None:
            raise ConfigError(
                ["AUDIT_KEK (or SECURITY_ENCRYPTION_KEY) is not set: 32 bytes, base64 or hex"]
            )
        old = []
        if self.previous_keks is not None:
            old = [
                parse_key(k.strip())
                for k in self.previous_keks.get_secret_value().split(",")
                if k.strip()
            ]
        return FieldEncryptor(parse_key(active), previous={key_id(k): k for k in old})


def _b64(raw: bytes) -> bytes:
    return decode_key_bytes(raw.decode("ascii"))


__all__ = ["DEFAULT_CHECKPOINT_TOPIC", "AuditSinkSettings", "decode_key_bytes"]
