"""The row MAC and the key ring that computes and checks it.

:func:`row_mac` is ``HMAC-SHA256(key[key_id], domain || chain id || seq || offset ||
prev_hash || columns || payload)``: the stored payload bytes and every queryable column
(:class:`~streaming.audit.chain.RowColumns`: event id and type, occurred/recorded times,
subject, key id) are what the MAC covers. Rows written before the columns were bound
(format 1) still verify. :class:`MacKeyRing` holds the keys by id: new rows use the
active one, rotated-out ids stay for verification. Pure and I/O-free.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING

from streaming.audit.canonical import canonical_json

if TYPE_CHECKING:
    from streaming.audit.chain import ChainRow

ROW_DOMAIN = b"tradesense.audit.row.v1\x00"
ROW_DOMAIN_V2 = b"tradesense.audit.row.v2\x00"
VERIFY_STATE_DOMAIN = b"tradesense.audit.verify-state.v1\x00"


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

    ``columns`` (:meth:`~streaming.audit.chain.RowColumns.canonical`) selects format 2;
    without it the format-1 MAC of rows written before the columns were bound. The
    domains differ, so neither form can pass for the other.
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


__all__ = ["MacKeyRing", "row_mac", "verify_state_mac"]
