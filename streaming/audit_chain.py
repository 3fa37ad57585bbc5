"""The pure core of the tamper-evident audit chain: no I/O, trivially unit-tested.

- :func:`canonical_json`: RFC 8785-style bytes (sorted keys, no whitespace, ECMAScript
  number form; big integers, decimals, bytes, UUIDs and datetimes as strings).
- :func:`row_mac`: ``HMAC-SHA256(key[key_id], domain || chain id || seq || offset ||
  prev_hash || columns || payload)``: the stored payload bytes and every queryable column
  (:class:`RowColumns`: event id and type, occurred/recorded times, subject, key id) are
  what the MAC covers. Rows written before the columns were bound (format 1) still verify.
- :class:`Checkpoint`: an Ed25519-signed snapshot of every chain head, linked to the
  previous checkpoint by digest so a deleted checkpoint leaves a hole.

Verification (finding the first broken row or checkpoint and saying why) lives in
:mod:`streaming.audit_verify`.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import functools
import hashlib
import hmac
import json
import math
import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring as _escape  # the C escaper when available
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ROW_DOMAIN = b"tradesense.audit.row.v1\x00"
ROW_DOMAIN_V2 = b"tradesense.audit.row.v2\x00"
VERIFY_STATE_DOMAIN = b"tradesense.audit.verify-state.v1\x00"
CHECKPOINT_DOMAIN = b"tradesense.audit.checkpoint.v1\x00"
GENESIS_HASH = hashlib.sha256(b"tradesense.audit.genesis.v1").digest()
HASH_SIZE = 32
_MAX_SAFE_INT = 2**53 - 1


# --------------------------------------------------------------------------- canonical JSON


class CanonicalizationError(ValueError):
    """A value has no canonical JSON form (NaN, infinity, a non-string key, ...)."""


def _es_number(value: float) -> str:
    """ECMAScript Number::toString of a finite float (what RFC 8785 prescribes)."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits_tuple = decimal.Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    exponent = digits_tuple.exponent
    assert isinstance(exponent, int)
    k = len(digits)
    n = exponent + k  # value = 0.digits * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
        e = n - 1
        text = f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
    return sign + text


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _key_prefix(key: object) -> str:
    if not isinstance(key, str):
        raise CanonicalizationError(f"object key {key!r} is not a string")
    return _escape(key) + ":"


def _int_text(value: int) -> str:
    return str(value) if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else '"' + str(value) + '"'


def _dict_text(mapping: Mapping[Any, Any]) -> str:
    """One JSON object; exact-type checks first because this loop is the sink's hot path."""
    try:
        keys = sorted(mapping)
    except TypeError:
        raise CanonicalizationError("object keys are not all strings") from None
    parts: list[str] = []
    append = parts.append
    utf16 = False
    for key in keys:
        prefix = _KEY_PREFIXES.get(key)
        if prefix is None:
            prefix = _key_prefix(key)
            if not key.isascii() and max(key) >= "\ue000":
                utf16 = True  # code-point order != UTF-16 order past U+E000
            elif len(_KEY_PREFIXES) < _KEY_CACHE_SIZE:
                _KEY_PREFIXES[key] = prefix
        item = mapping[key]
        kind = type(item)
        if kind is str:
            append(prefix + _escape(item))
        elif item is None:
            append(prefix + "null")
        elif kind is dict:
            append(prefix + _dict_text(item))
        elif kind is int:
            append(prefix + _int_text(item))
        else:
            append(prefix + _text(item))
    if utf16:
        order = sorted(range(len(keys)), key=lambda i: _utf16_key(keys[i]))
        parts = [parts[i] for i in order]
    return "{" + ",".join(parts) + "}"


def _text(value: Any) -> str:
    """The canonical JSON text of any supported value."""
    kind = type(value)
    if kind is str:
        return _escape(value)
    if kind is dict:
        return _dict_text(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, enum.Enum):
        return _text(value.value)
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalizationError(f"{value!r} has no JSON form")
        text = repr(value)
        # Shortest fixed-point digits read the same in ECMAScript; exponent forms and
        # integral values ("1.0" vs "1") need the exact conversion.
        return _es_number(value) if "e" in text or text.endswith(".0") else text
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise CanonicalizationError(f"{value!r} has no JSON form")
        return _escape(str(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return '"' + base64.b64encode(bytes(value)).decode("ascii") + '"'
    if isinstance(value, uuid.UUID):
        return '"' + str(value) + '"'
    if isinstance(value, dt.datetime):
        return _escape(format_timestamp(value))
    if isinstance(value, dt.date | dt.time):
        return _escape(value.isoformat())
    if isinstance(value, Mapping):
        return _dict_text(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join([_text(item) for item in value]) + "]"
    raise CanonicalizationError(f"cannot canonicalize a {type(value).__name__}")


# '"key":' for keys seen before (audit records repeat the same few dozen field names).
_KEY_PREFIXES: dict[str, str] = {}
_KEY_CACHE_SIZE = 4096


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 JSON bytes of ``value`` (RFC 8785 style).

    Strings go through the C JSON string escaper, which escapes exactly what RFC 8785
    asks for ('"', '\\', the short forms and other controls as lower-case \\u00xx). The
    rest is one Python pass writing text directly: converting to JSON-native types for
    ``json.dumps`` first cost more than writing the text, and the sink does this per row.
    """
    return _text(value).encode("utf-8", "surrogatepass")


def format_timestamp(value: dt.datetime) -> str:
    """UTC ISO 8601 with milliseconds and ``Z`` (naive datetimes are taken as UTC)."""
    if value.tzinfo is dt.UTC:  # what fastavro returns: skip the conversion
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- row MAC


def chain_id_for(topic: str, partition: int) -> str:
    """One chain per (topic, partition)."""
    return f"{topic}/{partition}"


def column_time(value: dt.datetime | None) -> str | None:
    """UTC ISO 8601 with microseconds (what PostgreSQL's timestamptz keeps) and ``Z``."""
    if value is None:
        return None
    if value.tzinfo is dt.UTC:  # what the sink and asyncpg hand over: skip the conversion
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_column_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class RowColumns(NamedTuple):
    """The columns a reader queries and filters on, as the strings the row MAC binds.

    A named tuple, not a dataclass: the sink builds one per row.
    """

    event_id: str
    event_type: str
    occurred_at: str | None
    subject_id: str | None
    recorded_at: str

    @classmethod
    def of(
        cls,
        event_id: uuid.UUID | str,
        event_type: str,
        occurred_at: dt.datetime | None,
        subject_id: str | None,
        recorded_at: dt.datetime,
    ) -> RowColumns:
        recorded = column_time(recorded_at)
        assert recorded is not None
        return cls(str(event_id), event_type, column_time(occurred_at), subject_id, recorded)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowColumns:
        """Read the bundle form (raises ``KeyError``/``TypeError`` when it is not one)."""
        return cls(**{name: data[name] for name in cls._fields})

    def canonical(self, key_id: str) -> bytes:
        """The bytes the MAC covers: :func:`canonical_json` of these columns plus the row's
        MAC key id, written directly (keys in sorted order) because the sink does it per row."""
        occurred, subject = self.occurred_at, self.subject_id
        return (
            '{"event_id":'
            + _escape(self.event_id)
            + ',"event_type":'
            + _escape(self.event_type)
            + ',"key_id":'
            + _escape(key_id)
            + ',"occurred_at":'
            + (_escape(occurred) if occurred is not None else "null")
            + ',"recorded_at":'
            + _escape(self.recorded_at)
            + ',"subject_id":'
            + (_escape(subject) if subject is not None else "null")
            + "}"
        ).encode("utf-8", "surrogatepass")

    @property
    def recorded(self) -> dt.datetime:
        return parse_column_time(self.recorded_at)


def row_mac(
    key: bytes,
    *,
    chain_id: str,
    seq: int,
    offset: int,
    prev_hash: bytes,
    payload: bytes,
    columns: bytes | None = None,
) -> bytes:
    """The row hash: an HMAC binding the row to its chain, position, predecessor and columns.

    ``columns`` (:meth:`RowColumns.canonical`) selects format 2; without it the format-1
    MAC of rows written before the columns were bound. The domains differ, so neither
    form can pass for the other.
    """
    chain = chain_id.encode("utf-8")
    header = b"".join((_U16.pack(len(chain)), chain, _TWO_I64.pack(seq, offset), prev_hash))
    if columns is None:
        mac = _keyed(key, ROW_DOMAIN).copy()
        mac.update(header)
    else:
        mac = _keyed(key, ROW_DOMAIN_V2).copy()
        mac.update(header + _U32.pack(len(columns)) + columns)
    mac.update(payload)
    return mac.digest()


@functools.lru_cache(maxsize=32)
def _keyed(key: bytes, domain: bytes) -> hmac.HMAC:
    """An HMAC already keyed and fed the domain tag: copying it skips re-keying per row."""
    return hmac.new(key, domain, hashlib.sha256)


def verify_state_mac(key: bytes, namespace: str, checkpoint_id: int, digest: bytes) -> bytes:
    """Authenticates "a verifier holding the MAC key found everything intact up to this
    checkpoint", so ``verify --since-checkpoint`` never starts from a state a database
    administrator wrote."""
    body = canonical_json({"namespace": namespace, "checkpoint_id": checkpoint_id})
    return hmac.new(key, VERIFY_STATE_DOMAIN + body + digest, hashlib.sha256).digest()


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_TWO_I64 = struct.Struct(">qq")


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One stored audit row as the verifier sees it."""

    chain_id: str
    seq: int
    kafka_offset: int
    key_id: str
    prev_hash: bytes
    hash: bytes
    payload: bytes
    columns: RowColumns | None = None


class MacKeyRing:
    """HMAC keys by id; new rows use the active id, old ids stay for verification."""

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise KeyError(f"active audit MAC key id {active_key_id!r} is not among the keys")
        short = [kid for kid, key in keys.items() if len(key) < 32]
        if short:
            raise ValueError(f"audit MAC keys must be at least 32 bytes: {', '.join(short)}")
        self._keys = dict(keys)
        self.active_key_id = active_key_id

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def key(self, key_id: str) -> bytes:
        return self._keys[key_id]

    @property
    def active_key(self) -> bytes:
        return self._keys[self.active_key_id]

    def rotated(self, key_id: str, key: bytes | None = None) -> MacKeyRing:
        """A ring whose active key is ``key_id`` (added when ``key`` is given)."""
        keys = dict(self._keys)
        if key is not None:
            keys[key_id] = key
        return MacKeyRing(keys, key_id)

    def mac(self, row: ChainRow, *, row_format: int = 2) -> bytes:
        """The row's MAC in ``row_format`` (1 ignores the columns; 2 needs them)."""
        columns = row.columns.canonical(row.key_id) if row.columns is not None else None
        return row_mac(
            self._keys[row.key_id],
            chain_id=row.chain_id,
            seq=row.seq,
            offset=row.kafka_offset,
            prev_hash=row.prev_hash,
            payload=row.payload,
            columns=columns if row_format == 2 else None,
        )

    def row_format(self, row: ChainRow) -> int | None:
        """2 or 1 when the stored hash verifies in that format, ``None`` when it does not."""
        if row.key_id not in self._keys:
            return None
        if row.columns is not None and hmac.compare_digest(self.mac(row), row.hash):
            return 2
        return 1 if hmac.compare_digest(self.mac(row, row_format=1), row.hash) else None

    def state_mac(self, namespace: str, checkpoint_id: int, digest: bytes, key_id: str) -> bytes:
        return verify_state_mac(self._keys[key_id], namespace, checkpoint_id, digest)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain ends: its last seq, that row's hash and Kafka offset."""

    chain_id: str
    seq: int
    hash: bytes
    kafka_offset: int = -1

    @classmethod
    def genesis(cls, chain_id: str) -> ChainHead:
        return cls(chain_id, 0, GENESIS_HASH, -1)


def chain_links(
    ring: MacKeyRing,
    head: ChainHead,
    items: Iterable[tuple[int, bytes]],
    columns: Sequence[RowColumns] | None = None,
) -> list[tuple[int, bytes, bytes]]:
    """``(seq, prev_hash, hash)`` for ``(kafka offset, payload)`` items appended after
    ``head`` with the active key: :func:`extend_chain` without building row objects.

    ``columns`` (one per item) makes format-2 rows; without them, format-1 rows (tests of
    chains written before the columns were bound).
    """
    links: list[tuple[int, bytes, bytes]] = []
    seq, prev = head.seq, head.hash
    key, chain_id, kid = ring.active_key, head.chain_id, ring.active_key_id
    cols = iter(columns) if columns is not None else None
    for offset, payload in items:
        seq += 1
        bound = next(cols).canonical(kid) if cols is not None else None
        digest = row_mac(
            key,
            chain_id=chain_id,
            seq=seq,
            offset=offset,
            prev_hash=prev,
            payload=payload,
            columns=bound,
        )
        links.append((seq, prev, digest))
        prev = digest
    return links


def extend_chain(
    ring: MacKeyRing,
    head: ChainHead,
    items: Iterable[tuple[int, bytes]],
    columns: Sequence[RowColumns] | None = None,
) -> list[ChainRow]:
    """Rows for ``(kafka offset, payload)`` items appended after ``head`` with the active key."""
    items = list(items)
    kid = ring.active_key_id
    cols: Sequence[RowColumns | None] = columns if columns is not None else [None] * len(items)
    return [
        ChainRow(head.chain_id, seq, offset, kid, prev, digest, payload, col)
        for (seq, prev, digest), (offset, payload), col in zip(
            chain_links(ring, head, items, columns), items, cols, strict=True
        )
    ]


# --------------------------------------------------------------------------- checkpoints


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
    "GENESIS_HASH",
    "CanonicalizationError",
    "ChainHead",
    "ChainRow",
    "Checkpoint",
    "CheckpointSigner",
    "MacKeyRing",
    "RowColumns",
    "SignedCheckpoint",
    "canonical_json",
    "chain_id_for",
    "chain_links",
    "checkpoint_digest",
    "column_time",
    "extend_chain",
    "format_timestamp",
    "load_private_key",
    "load_public_key",
    "parse_column_time",
    "public_key_pem",
    "row_mac",
    "signature_valid",
    "signer_key_id",
    "verify_state_mac",
]
