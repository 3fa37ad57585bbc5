"""The tamper-evident audit chain: one hash chain per (topic, partition).

Each row's hash is its MAC (:mod:`streaming.audit.keys`) over the previous row's hash,
so a changed, deleted or reordered row breaks every hash after it. This module holds the
chain's shapes (:class:`ChainRow`, :class:`ChainHead`, :class:`RowColumns`) and how rows
are appended (:func:`chain_links`, :func:`extend_chain`). Pure and I/O-free; the
canonical encoding is :mod:`.canonical`, signed snapshots of every head are
:mod:`.checkpoints`, and finding the first broken row (and saying why) is :mod:`.verifier`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from streaming.audit.canonical import column_time, json_string, parse_column_time
from streaming.audit.keys import MacKeyRing
from streaming.audit.keys import row_mac as row_mac  # explicit: the benchmark swaps it here

GENESIS_HASH = hashlib.sha256(b"tradesense.audit.genesis.v1").digest()
HASH_SIZE = 32


def chain_id_for(topic: str, partition: int) -> str:
    """One chain per (topic, partition)."""
    return f"{topic}/{partition}"


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
            + json_string(self.event_id)
            + ',"event_type":'
            + json_string(self.event_type)
            + ',"key_id":'
            + json_string(key_id)
            + ',"occurred_at":'
            + (json_string(occurred) if occurred is not None else "null")
            + ',"recorded_at":'
            + json_string(self.recorded_at)
            + ',"subject_id":'
            + (json_string(subject) if subject is not None else "null")
            + "}"
        ).encode("utf-8", "surrogatepass")

    @property
    def recorded(self) -> dt.datetime:
        return parse_column_time(self.recorded_at)


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


__all__ = [
    "GENESIS_HASH",
    "ChainHead",
    "ChainRow",
    "RowColumns",
    "chain_id_for",
    "chain_links",
    "extend_chain",
]
