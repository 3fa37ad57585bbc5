"""Signed checkpoints: an Ed25519-signed snapshot of every chain head.

Each checkpoint is linked to the previous one by digest, so a deleted checkpoint leaves
a hole; the signing key never touches the database, so a database administrator who
rewrites rows cannot re-sign the heads. Also the key loading the settings use. Pure and
I/O-free; storing and publishing them is the audit sink's job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from streaming.audit.canonical import canonical_json
from streaming.audit.chain import ChainHead

CHECKPOINT_DOMAIN = b"tradesense.audit.checkpoint.v1\x00"


def signer_key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a checkpoint signing key (SHA-256 of the raw public key)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Every chain head at one moment, numbered and linked to the previous checkpoint."""

    namespace: str
    checkpoint_id: int
    created_at_ms: int
    prev_digest: bytes
    heads: tuple[ChainHead, ...]

    def body(self) -> bytes:
        return canonical_json(
            {
                "v": 1,
                "namespace": self.namespace,
                "id": self.checkpoint_id,
                "created_at_ms": self.created_at_ms,
                "prev_digest": self.prev_digest.hex(),
                "heads": [
                    {
                        "chain": h.chain_id,
                        "seq": h.seq,
                        "offset": h.kafka_offset,
                        "hash": h.hash.hex(),
                    }
                    for h in sorted(self.heads, key=lambda h: h.chain_id)
                ],
            }
        )

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """Read a checkpoint body (raises ``ValueError`` when it is not one)."""
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError("not a version-1 audit checkpoint")
        heads = tuple(
            ChainHead(h["chain"], int(h["seq"]), bytes.fromhex(h["hash"]), int(h["offset"]))
            for h in data["heads"]
        )
        return cls(
            str(data["namespace"]),
            int(data["id"]),
            int(data["created_at_ms"]),
            bytes.fromhex(data["prev_digest"]),
            heads,
        )

    def head(self, chain_id: str) -> ChainHead | None:
        for h in self.heads:
            if h.chain_id == chain_id:
                return h
        return None


def checkpoint_digest(body: bytes) -> bytes:
    """What the next checkpoint's ``prev_digest`` must be (genesis for the first)."""
    return hashlib.sha256(CHECKPOINT_DOMAIN + body).digest()


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """Checkpoint body bytes, the Ed25519 signature over them and the signer's key id."""

    checkpoint_id: int
    body: bytes
    signature: bytes
    key_id: str

    def checkpoint(self) -> Checkpoint:
        return Checkpoint.parse(self.body)


class CheckpointSigner:
    """Signs checkpoints with an Ed25519 private key (which never touches the database)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = signer_key_id(self.public_key)

    def sign(self, checkpoint: Checkpoint) -> SignedCheckpoint:
        body = checkpoint.body()
        signature = self._key.sign(CHECKPOINT_DOMAIN + body)
        return SignedCheckpoint(checkpoint.checkpoint_id, body, signature, self.key_id)


def signature_valid(signed: SignedCheckpoint, public_keys: Mapping[str, Ed25519PublicKey]) -> bool:
    key = public_keys.get(signed.key_id)
    if key is None:
        return False
    try:
        key.verify(signed.signature, CHECKPOINT_DOMAIN + signed.body)
    except InvalidSignature:
        return False
    try:
        return Checkpoint.parse(signed.body).checkpoint_id == signed.checkpoint_id
    except (ValueError, KeyError, TypeError):
        return False


def load_private_key(data: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM or 32 raw bytes (``ValueError`` otherwise)."""
    if data.lstrip().startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the checkpoint signing key is not an Ed25519 key")
        return key
    if len(data) != 32:
        raise ValueError("an Ed25519 private key is 32 raw bytes or PEM")
    return Ed25519PrivateKey.from_private_bytes(data)


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM or 32 raw bytes (``ValueError`` otherwise)."""
    if data.lstrip().startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the checkpoint verification key is not an Ed25519 key")
        return key
    if len(data) != 32:
        raise ValueError("an Ed25519 public key is 32 raw bytes or PEM")
    return Ed25519PublicKey.from_public_bytes(data)


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


__all__ = [
    "Checkpoint",
    "CheckpointSigner",
    "SignedCheckpoint",
    "checkpoint_digest",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
    "signature_valid",
    "signer_key_id",
]
