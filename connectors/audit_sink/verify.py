"""Verification of the stored chains and checkpoints in PostgreSQL.

``verify_store`` walks every chain against the signed checkpoints, the newest of which is
read back from Kafka (beyond the database administrator's reach), so a truncated tail or
a vanished chain shows. Nothing it trusts lives only in the database: rows and columns
are checked with the MAC keys, checkpoints with the public keys, and the incremental
starting point (``verify_state``) only counts when it carries a MAC made with those keys.
Offline bundles live in :mod:`connectors.audit_sink.bundle`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.audit_sink.checkpoints import ms_time
from connectors.audit_sink.store import AuditStore
from streaming.audit.checkpoints import (
    Checkpoint,
    SignedCheckpoint,
    checkpoint_digest,
    signature_valid,
)
from streaming.audit.keys import MacKeyRing
from streaming.audit.verifier import (
    ChainVerifier,
    CheckpointReport,
    Finding,
    Reason,
    verify_checkpoints,
)

# ``created_at`` of checkpoints written before it was set from the signed body came from
# the database clock in the same transaction: within this of the signed time.
CHECKPOINT_TIME_TOLERANCE_S = 1.0


@dataclass(slots=True)
class VerifyReport:
    """The outcome: ``ok`` or the findings, first one first."""

    findings: list[Finding] = field(default_factory=list)
    chains: int = 0
    rows: int = 0
    legacy_rows: int = 0
    latest_checkpoint_id: int | None = None
    started_from_checkpoint: int | None = None
    window: tuple[str, str] | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    def add(self, verifier: ChainVerifier, finding: Finding | None) -> None:
        """Count one verified chain and keep its finding."""
        self.chains += 1
        self.rows += verifier.rows_checked
        self.legacy_rows += verifier.legacy_rows
        if finding is not None:
            self.findings.append(finding)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chains": self.chains,
            "rows": self.rows,
            "legacy_rows": self.legacy_rows,
            "latest_checkpoint_id": self.latest_checkpoint_id,
            "started_from_checkpoint": self.started_from_checkpoint,
            "window": list(self.window) if self.window else None,
            "first": self.first.to_dict() if self.first else None,
            "findings": [f.to_dict() for f in self.findings],
        }


def checkpoint_time_findings(
    stored: Sequence[SignedCheckpoint], times: Mapping[int, datetime]
) -> list[Finding]:
    """``audit_checkpoint.created_at`` must be the time the checkpoint's body signs."""
    findings = []
    for signed in stored:
        column = times.get(signed.checkpoint_id)
        try:
            signed_ms = signed.checkpoint().created_at_ms
        except (ValueError, KeyError, TypeError):
            continue  # an unreadable body is reported by verify_checkpoints
        if column is None:
            continue
        drift = abs((column - ms_time(signed_ms)).total_seconds())
        if drift > CHECKPOINT_TIME_TOLERANCE_S:
            findings.append(
                Finding(
                    Reason.CHECKPOINT_ALTERED,
                    None,
                    signed.checkpoint_id,
                    f"checkpoint {signed.checkpoint_id}: created_at column is {drift:.0f}s "
                    "away from the signed time",
                )
            )
    return findings


async def _incremental_start(
    store: AuditStore,
    ring: MacKeyRing,
    stored: Sequence[SignedCheckpoint],
    public_keys: Mapping[str, Ed25519PublicKey],
) -> tuple[Checkpoint | None, Finding | None]:
    """The signed checkpoint a previous full verification reached, if ``verify_state``
    proves it with a MAC key; a state that does not authenticate is itself a finding."""
    state = await store.reader.verify_state()
    if state is None:
        return None, None
    checkpoint_id, key_id, mac = state
    if mac is None or key_id is None:
        return None, None  # written before states were authenticated: verify everything
    signed = next((s for s in stored if s.checkpoint_id == checkpoint_id), None)
    if signed is None or not signature_valid(signed, public_keys):
        return None, None  # the checkpoint findings say what happened to it
    if key_id in ring:
        expected = ring.state_mac(
            store.schema, checkpoint_id, checkpoint_digest(signed.body), key_id
        )
        if hmac.compare_digest(expected, mac):
            return signed.checkpoint(), None
    return None, Finding(
        Reason.VERIFY_STATE_ALTERED,
        None,
        checkpoint_id,
        f"verify_state names checkpoint {checkpoint_id} but its MAC does not verify "
        "(not written by a verifier holding the MAC key); verified everything instead",
    )


async def _record_verified(
    store: AuditStore,
    ring: MacKeyRing,
    checkpoints: CheckpointReport,
    signed: Sequence[SignedCheckpoint],
) -> None:
    latest = checkpoints.latest
    body = next(
        (s.body for s in signed if latest and s.checkpoint_id == latest.checkpoint_id), None
    )
    if latest is None or body is None:
        return
    kid = ring.active_key_id
    mac = ring.state_mac(store.schema, latest.checkpoint_id, checkpoint_digest(body), kid)
    await store.reader.set_verified(latest.checkpoint_id, kid, mac)


async def verify_store(
    store: AuditStore,
    ring: MacKeyRing,
    public_keys: dict[str, Ed25519PublicKey],
    *,
    published: SignedCheckpoint | None = None,
    chain: str | None = None,
    since_checkpoint: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify chains (all, or ``chain``) and checkpoints; incremental with ``since_checkpoint``.

    ``on_progress(rows_read, rows_claimed)`` is called as rows are read (for a progress bar).
    """
    claimed = await store.reader.heads()
    stored = await store.checkpoints.load()
    checkpoints = verify_checkpoints(stored, public_keys, published=published)
    report = VerifyReport(
        latest_checkpoint_id=(checkpoints.latest.checkpoint_id if checkpoints.latest else None)
    )
    start_from: Checkpoint | None = None
    state_finding: Finding | None = None
    if since_checkpoint:
        start_from, state_finding = await _incremental_start(store, ring, stored, public_keys)
        report.started_from_checkpoint = start_from.checkpoint_id if start_from else None
    if chain is not None:
        chains = {chain}
    else:
        chains = await store.reader.chain_ids()
        if checkpoints.latest is not None:
            chains |= {h.chain_id for h in checkpoints.latest.heads}
    starts = {c: start_from.head(c) if start_from else None for c in chains}
    total = sum(claimed[c].seq - (h.seq if h else 0) for c, h in starts.items() if c in claimed)
    done = 0
    for chain_id in sorted(chains):
        start = start_from.head(chain_id) if start_from else None
        verifier = ChainVerifier(
            chain_id,
            ring,
            start,
            checkpoints.known_hashes.get(chain_id, {}),
            checkpoints.latest_head(chain_id),
        )
        async for row in store.reader.rows(chain_id, from_seq=start.seq if start else 0):
            done += 1
            if on_progress is not None and done % 500 == 0:
                on_progress(done, total)
            if verifier.feed(row) is not None:
                break
        head = claimed.get(chain_id)
        report.add(verifier, verifier.finish(claimed_seq=head.seq if head else None))
    if on_progress is not None:
        on_progress(done, done)
    report.findings.extend(checkpoints.findings)
    report.findings.extend(checkpoint_time_findings(stored, await store.checkpoints.times()))
    if state_finding is not None:
        report.findings.append(state_finding)
    if report.ok and chain is None:
        await _record_verified(
            store, ring, checkpoints, [*stored, *([published] if published else [])]
        )
    return report


__all__ = ["VerifyReport", "checkpoint_time_findings", "verify_store"]
