"""Verification of the audit chain, pure and I/O-free: the first break and *why*.

:class:`ChainVerifier` / :func:`verify_checkpoints` tell apart an edited payload or
column, an edited hash, a missing, swapped or inserted row, a recomputed chain, a cut
tail, a vanished chain, and deleted or altered checkpoints (a :class:`Reason`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from streaming.audit_chain import (
    GENESIS_HASH,
    ChainHead,
    ChainRow,
    Checkpoint,
    MacKeyRing,
    SignedCheckpoint,
    checkpoint_digest,
    signature_valid,
)


class Reason(enum.StrEnum):
    """Why verification failed; stable strings for the CLI, logs and tests."""

    PAYLOAD_ALTERED = "payload_altered"
    HASH_ALTERED = "hash_altered"
    ROW_MISSING = "row_missing"
    ROWS_SWAPPED = "rows_swapped"
    ROW_INSERTED = "row_inserted"
    CHAIN_RECOMPUTED = "chain_recomputed"
    MAC_MISMATCH = "mac_mismatch"
    LINK_BROKEN = "link_broken"
    SEQ_GAP = "seq_gap"
    SEQ_DISORDER = "seq_disorder"
    UNKNOWN_KEY = "unknown_key"
    TRUNCATED = "truncated"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    CHECKPOINT_MISSING = "checkpoint_missing"
    CHECKPOINT_ALTERED = "checkpoint_altered"
    CHAIN_MISSING = "chain_missing"
    WINDOW_INCOMPLETE = "window_incomplete"
    VERIFY_STATE_ALTERED = "verify_state_altered"


@dataclass(frozen=True, slots=True)
class Finding:
    """The first thing wrong: which chain (or checkpoint), which seq, and why."""

    reason: Reason
    chain_id: str | None
    seq: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason.value,
            "chain": self.chain_id,
            "seq": self.seq,
            "detail": self.detail,
        }


@dataclass(slots=True)
class _Pending:
    kind: str  # "mac" or "link"
    row: ChainRow
    expected_prev: bytes


@dataclass(slots=True)
class ChainVerifier:
    """Feeds rows of one chain in seq order; reports the first break with its reason.

    Some causes are only told apart by the next row (did the successor link to the
    suspicious row, or around it?), so a suspicious row is decided one row late.
    ``start`` resumes from a trusted (signed) head, whose own row is fed first unless
    ``expect_anchor_row`` is off; ``known_hashes`` maps seq -> hash from valid
    checkpoints; ``latest`` is the newest trusted head, for truncation.
    """

    chain_id: str
    ring: MacKeyRing
    start: ChainHead | None = None
    known_hashes: Mapping[int, bytes] = field(default_factory=dict)
    latest: ChainHead | None = None
    expect_anchor_row: bool = True
    rows_checked: int = 0
    legacy_rows: int = 0
    _fed: bool = False
    _seq: int = 0
    _hash: bytes = GENESIS_HASH
    _anchored: bool = True
    _pending: _Pending | None = None
    _finding: Finding | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.start.seq > 0:
            self._seq, self._hash = self.start.seq, self.start.hash
            self._anchored = not self.expect_anchor_row

    @property
    def finding(self) -> Finding | None:
        return self._finding

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.chain_id, self._seq, self._hash)

    def _fail(self, reason: Reason, seq: int, detail: str) -> Finding:
        self._finding = Finding(reason, self.chain_id, seq, detail)
        return self._finding

    def feed(self, row: ChainRow) -> Finding | None:
        if self._finding is not None:
            return None
        self._fed = True
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return self._resolve(pending, row)
        if not self._anchored:
            if row.seq == self._seq:
                self._anchored = True
                if row.hash != self._hash:
                    return self._fail(
                        Reason.CHECKPOINT_MISMATCH,
                        row.seq,
                        "row hash differs from the signed checkpoint this run starts from",
                    )
                return None
            self._anchored = True
            if row.seq > self._seq:
                return self._fail(
                    Reason.ROW_MISSING, self._seq, "the row the signed checkpoint names is gone"
                )
        return self._check(row)

    def _check(self, row: ChainRow) -> Finding | None:
        expected = self._seq + 1
        if row.seq != expected:
            if row.seq < expected:
                return self._fail(
                    Reason.SEQ_DISORDER, row.seq, f"seq {row.seq} repeats or goes back"
                )
            if row.prev_hash == self._hash:
                return self._fail(
                    Reason.SEQ_GAP,
                    expected,
                    f"seq jumps from {self._seq} to {row.seq} but the rows still link",
                )
            return self._fail(
                Reason.ROW_MISSING,
                expected,
                f"seq jumps from {self._seq} to {row.seq} and the link is broken",
            )
        if row.key_id not in self.ring:
            return self._fail(Reason.UNKNOWN_KEY, row.seq, f"row uses MAC key id {row.key_id!r}")
        if row.prev_hash != self._hash:
            self._pending = _Pending("link", row, self._hash)
            return None
        row_format = self.ring.row_format(row)
        if row_format is None:
            self._pending = _Pending("mac", row, self._hash)
            return None
        if row_format == 1:
            self.legacy_rows += 1
        known = self.known_hashes.get(row.seq)
        if known is not None and known != row.hash:
            return self._fail(
                Reason.CHECKPOINT_MISMATCH,
                row.seq,
                "row hash differs from the one a signed checkpoint recorded",
            )
        self._seq, self._hash = row.seq, row.hash
        self.rows_checked += 1
        return None

    def _mac_ok(self, row: ChainRow) -> bool:
        return self.ring.row_format(row) is not None

    def _resolve(self, pending: _Pending, successor: ChainRow | None) -> Finding:
        row = pending.row
        if pending.kind == "link":
            if successor is not None and row.prev_hash == successor.hash:
                return self._fail(
                    Reason.ROWS_SWAPPED, row.seq, f"rows {row.seq} and {successor.seq} are swapped"
                )
            return self._fail(
                Reason.LINK_BROKEN, row.seq, "prev_hash does not match the previous row's hash"
            )
        if successor is None:
            if self.known_hashes.get(row.seq) == row.hash:
                return self._fail(
                    Reason.PAYLOAD_ALTERED,
                    row.seq,
                    "stored payload or a column no longer matches the hash a checkpoint recorded",
                )
            return self._fail(Reason.MAC_MISMATCH, row.seq, "row hash does not verify")
        if successor.prev_hash == row.hash:
            if self._mac_ok(successor):
                return self._fail(
                    Reason.PAYLOAD_ALTERED,
                    row.seq,
                    "stored payload or a column (event id/type, times, subject, offset, key id) "
                    "changed; the chain still links to the original hash",
                )
            return self._fail(
                Reason.CHAIN_RECOMPUTED,
                row.seq,
                "rows link to each other but their hashes were not made with the audit key",
            )
        if successor.prev_hash == pending.expected_prev:
            return self._fail(
                Reason.ROW_INSERTED, row.seq, "a row that does not verify sits between two links"
            )
        return self._fail(
            Reason.HASH_ALTERED, row.seq, "stored hash changed; the next row links to another"
        )

    def finish(self, *, claimed_seq: int | None = None) -> Finding | None:
        """Call after the last row; checks the tail against the newest trusted head."""
        if self._finding is not None:
            return self._finding
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return self._resolve(pending, None)
        started_at_genesis = self.start is None or self.start.seq == 0
        if not self._fed and started_at_genesis and self.latest is not None and self.latest.seq:
            return self._fail(
                Reason.CHAIN_MISSING,
                1,
                f"no row of this chain is left but a signed checkpoint saw seq {self.latest.seq}",
            )
        if not self._anchored:
            return self._fail(
                Reason.TRUNCATED, self._seq, "the row the signed checkpoint names is gone"
            )
        if self.latest is not None and self.latest.seq > self._seq:
            return self._fail(
                Reason.TRUNCATED,
                self._seq + 1,
                f"chain ends at seq {self._seq} but a signed checkpoint saw seq {self.latest.seq}",
            )
        if claimed_seq is not None and claimed_seq > self._seq:
            return self._fail(
                Reason.TRUNCATED,
                self._seq + 1,
                f"chain ends at seq {self._seq} but its head row says seq {claimed_seq}",
            )
        return None


def verify_rows(
    chain_id: str,
    rows: Iterable[ChainRow],
    ring: MacKeyRing,
    *,
    start: ChainHead | None = None,
    known_hashes: Mapping[int, bytes] | None = None,
    latest: ChainHead | None = None,
) -> Finding | None:
    """Verify one whole chain held in memory (the streaming form is :class:`ChainVerifier`)."""
    verifier = ChainVerifier(chain_id, ring, start, dict(known_hashes or {}), latest)
    for row in rows:
        if verifier.feed(row) is not None:
            break
    return verifier.finish()


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    """Checkpoint findings, the newest trusted checkpoint, and seq -> hash per chain."""

    findings: tuple[Finding, ...]
    latest: Checkpoint | None
    known_hashes: Mapping[str, Mapping[int, bytes]]

    def latest_head(self, chain_id: str) -> ChainHead | None:
        return self.latest.head(chain_id) if self.latest is not None else None


def _checkpoint_finding(reason: Reason, checkpoint_id: int, detail: str) -> Finding:
    return Finding(reason, None, checkpoint_id, f"checkpoint {checkpoint_id}: {detail}")


def verify_checkpoints(
    stored: Sequence[SignedCheckpoint],
    public_keys: Mapping[str, Ed25519PublicKey],
    *,
    published: SignedCheckpoint | None = None,
) -> CheckpointReport:
    """Check the database's checkpoints (signatures, numbering, links) against Kafka's latest.

    ``published`` is the newest checkpoint read from the compacted Kafka topic, which a
    database administrator cannot rewrite: if the database lacks it or holds different
    bytes, checkpoints were deleted or altered.
    """
    findings: list[Finding] = []
    valid: list[Checkpoint] = []
    prev_id, prev_digest = 0, GENESIS_HASH
    by_id: dict[int, SignedCheckpoint] = {}
    for signed in sorted(stored, key=lambda s: s.checkpoint_id):
        by_id[signed.checkpoint_id] = signed
        if not signature_valid(signed, public_keys):
            findings.append(
                _checkpoint_finding(
                    Reason.CHECKPOINT_ALTERED, signed.checkpoint_id, "signature does not verify"
                )
            )
            prev_id, prev_digest = signed.checkpoint_id, checkpoint_digest(signed.body)
            continue
        checkpoint = signed.checkpoint()
        if signed.checkpoint_id != prev_id + 1:
            findings.append(
                _checkpoint_finding(
                    Reason.CHECKPOINT_MISSING,
                    prev_id + 1,
                    f"numbering jumps from {prev_id} to {signed.checkpoint_id}",
                )
            )
        elif checkpoint.prev_digest != prev_digest:
            findings.append(
                _checkpoint_finding(
                    Reason.CHECKPOINT_ALTERED,
                    signed.checkpoint_id,
                    "does not link to the previous checkpoint",
                )
            )
        valid.append(checkpoint)
        prev_id, prev_digest = signed.checkpoint_id, checkpoint_digest(signed.body)
    latest = valid[-1] if valid else None
    if published is not None:
        if not signature_valid(published, public_keys):
            findings.append(
                _checkpoint_finding(
                    Reason.CHECKPOINT_ALTERED,
                    published.checkpoint_id,
                    "the copy in Kafka has an invalid signature",
                )
            )
        else:
            mine = by_id.get(published.checkpoint_id)
            if mine is None:
                findings.append(
                    _checkpoint_finding(
                        Reason.CHECKPOINT_MISSING,
                        published.checkpoint_id,
                        f"published to Kafka but not in the database (which ends at {prev_id})",
                    )
                )
            elif mine.body != published.body or mine.signature != published.signature:
                findings.append(
                    _checkpoint_finding(
                        Reason.CHECKPOINT_ALTERED,
                        published.checkpoint_id,
                        "differs from the copy published to Kafka",
                    )
                )
            from_kafka = published.checkpoint()
            if latest is None or from_kafka.checkpoint_id >= latest.checkpoint_id:
                latest = from_kafka
                if mine is None:
                    valid.append(from_kafka)
    known: dict[str, dict[int, bytes]] = {}
    for checkpoint in valid:
        for head in checkpoint.heads:
            known.setdefault(head.chain_id, {})[head.seq] = head.hash
    return CheckpointReport(tuple(findings), latest, known)


__all__ = [
    "ChainVerifier",
    "CheckpointReport",
    "Finding",
    "Reason",
    "verify_checkpoints",
    "verify_rows",
]
