"""Verification of the stored chains and checkpoints, and offline bundles.

``verify_store`` walks every chain in PostgreSQL against the signed checkpoints (the
newest of which is read back from Kafka, beyond the database administrator's reach).
``export_bundle`` writes rows, checkpoints and public keys to a directory that
``verify_bundle`` checks with no database at all.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.audit_sink.store import AuditStore
from streaming.audit_chain import (
    ChainHead,
    ChainRow,
    ChainVerifier,
    Checkpoint,
    Finding,
    MacKeyRing,
    SignedCheckpoint,
    format_timestamp,
    load_public_key,
    public_key_pem,
    signature_valid,
    verify_checkpoints,
)
from streaming.errors import StreamingError


class BundleError(StreamingError):
    """An export bundle is missing files or is not readable."""


@dataclass(slots=True)
class VerifyReport:
    """The outcome: ``ok`` or the findings, first one first."""

    findings: list[Finding] = field(default_factory=list)
    chains: int = 0
    rows: int = 0
    latest_checkpoint_id: int | None = None
    started_from_checkpoint: int | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chains": self.chains,
            "rows": self.rows,
            "latest_checkpoint_id": self.latest_checkpoint_id,
            "started_from_checkpoint": self.started_from_checkpoint,
            "first": self.first.to_dict() if self.first else None,
            "findings": [f.to_dict() for f in self.findings],
        }


async def verify_store(
    store: AuditStore,
    ring: MacKeyRing,
    public_keys: dict[str, Ed25519PublicKey],
    *,
    published: SignedCheckpoint | None = None,
    chain: str | None = None,
    since_checkpoint: bool = False,
) -> VerifyReport:
    """Verify chains (all, or ``chain``) and checkpoints; incremental with ``since_checkpoint``."""
    claimed = await store.heads()
    stored = await store.checkpoints()
    checkpoints = verify_checkpoints(stored, public_keys, published=published)
    report = VerifyReport(
        latest_checkpoint_id=(checkpoints.latest.checkpoint_id if checkpoints.latest else None)
    )
    start_from: Checkpoint | None = None
    if since_checkpoint:
        verified_id = await store.verified_checkpoint_id()
        for signed in stored:
            if signed.checkpoint_id == verified_id and signature_valid(signed, public_keys):
                start_from = signed.checkpoint()
        report.started_from_checkpoint = start_from.checkpoint_id if start_from else None
    if chain is not None:
        chains = {chain}
    else:
        chains = await store.chain_ids()
        if checkpoints.latest is not None:
            chains |= {h.chain_id for h in checkpoints.latest.heads}
    for chain_id in sorted(chains):
        start = start_from.head(chain_id) if start_from else None
        verifier = ChainVerifier(
            chain_id,
            ring,
            start,
            checkpoints.known_hashes.get(chain_id, {}),
            checkpoints.latest_head(chain_id),
        )
        async for row in store.rows(chain_id, from_seq=start.seq if start else 0):
            if verifier.feed(row) is not None:
                break
        head = claimed.get(chain_id)
        finding = verifier.finish(claimed_seq=head.seq if head else None)
        report.chains += 1
        report.rows += verifier.rows_checked
        if finding is not None:
            report.findings.append(finding)
    report.findings.extend(checkpoints.findings)
    if report.ok and chain is None and checkpoints.latest is not None:
        await store.set_verified(checkpoints.latest.checkpoint_id)
    return report


# --------------------------------------------------------------------------- bundles


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _signed_to_json(signed: SignedCheckpoint) -> dict[str, Any]:
    return {
        "checkpoint_id": signed.checkpoint_id,
        "key_id": signed.key_id,
        "body": _b64(signed.body),
        "signature": _b64(signed.signature),
    }


async def export_bundle(
    store: AuditStore,
    out: Path,
    *,
    since: datetime,
    until: datetime,
    public_keys: dict[str, Ed25519PublicKey],
) -> dict[str, Any]:
    """Write ``manifest.json``, ``rows.jsonl``, ``checkpoints.jsonl``, ``public_keys.json``."""
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a local export directory
    chains: dict[str, Any] = {}
    count = 0
    with (out / "rows.jsonl").open("w", encoding="utf-8") as rows_file:
        for chain_id in sorted(await store.chain_ids()):
            found = await store.seq_range(chain_id, since, until)
            if found is None:
                continue
            lo, hi = found
            first: ChainRow | None = None
            async for row in store.rows(chain_id, from_seq=lo, to_seq=hi):
                first = first or row
                count += 1
                rows_file.write(
                    json.dumps(
                        {
                            "chain": row.chain_id,
                            "seq": row.seq,
                            "offset": row.kafka_offset,
                            "key_id": row.key_id,
                            "prev_hash": row.prev_hash.hex(),
                            "hash": row.hash.hex(),
                            "payload": _b64(row.payload),
                        },
                        sort_keys=True,
                    )
                    + "\n"
                )
            chains[chain_id] = {
                "from_seq": lo,
                "to_seq": hi,
                "anchor_hash": first.prev_hash.hex() if first else None,
            }
    checkpoints = await store.checkpoints()
    with (out / "checkpoints.jsonl").open("w", encoding="utf-8") as cp_file:
        for signed in checkpoints:
            cp_file.write(json.dumps(_signed_to_json(signed), sort_keys=True) + "\n")
    (out / "public_keys.json").write_text(
        json.dumps({kid: public_key_pem(k) for kid, k in public_keys.items()}, indent=2)
    )
    manifest = {
        "format": "tradesense-audit-bundle/1",
        "namespace": store.schema,
        "since": format_timestamp(since),
        "until": format_timestamp(until),
        "exported_at": format_timestamp(datetime.now(UTC)),
        "rows": count,
        "checkpoints": len(checkpoints),
        "chains": chains,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}; is this an audit export bundle?") from exc


def _read_jsonl(path: Path) -> list[Any]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}; is this an audit export bundle?") from exc


def verify_bundle(
    directory: Path,
    ring: MacKeyRing,
    public_keys: dict[str, Ed25519PublicKey] | None = None,
) -> VerifyReport:
    """Verify an export offline: row MACs and links, checkpoint signatures and heads.

    ``public_keys`` should come from configuration; without it the bundle's own
    ``public_keys.json`` is used (which proves consistency, not origin).
    """
    manifest = _read_json(directory / "manifest.json")
    if public_keys is None:
        raw_keys = _read_json(directory / "public_keys.json")
        public_keys = {}
        for pem in raw_keys.values():
            key = load_public_key(pem.encode())
            from streaming.audit_chain import signer_key_id

            public_keys[signer_key_id(key)] = key
    signed = [
        SignedCheckpoint(
            int(c["checkpoint_id"]),
            base64.b64decode(c["body"]),
            base64.b64decode(c["signature"]),
            str(c["key_id"]),
        )
        for c in _read_jsonl(directory / "checkpoints.jsonl")
    ]
    checkpoints = verify_checkpoints(signed, public_keys)
    by_chain: dict[str, list[ChainRow]] = {}
    for r in _read_jsonl(directory / "rows.jsonl"):
        by_chain.setdefault(r["chain"], []).append(
            ChainRow(
                r["chain"],
                int(r["seq"]),
                int(r["offset"]),
                r["key_id"],
                bytes.fromhex(r["prev_hash"]),
                bytes.fromhex(r["hash"]),
                base64.b64decode(r["payload"]),
            )
        )
    report = VerifyReport(
        latest_checkpoint_id=checkpoints.latest.checkpoint_id if checkpoints.latest else None
    )
    for chain_id, meta in sorted(manifest["chains"].items()):
        rows = sorted(by_chain.get(chain_id, []), key=lambda r: r.seq)
        lo = int(meta["from_seq"])
        start = ChainHead(chain_id, lo - 1, bytes.fromhex(meta["anchor_hash"]))
        verifier = ChainVerifier(
            chain_id,
            ring,
            start,
            checkpoints.known_hashes.get(chain_id, {}),
            ChainHead(chain_id, int(meta["to_seq"]), b""),
            expect_anchor_row=False,
        )
        for row in rows:
            if verifier.feed(row) is not None:
                break
        finding = verifier.finish()
        report.chains += 1
        report.rows += verifier.rows_checked
        if finding is not None:
            report.findings.append(finding)
    report.findings.extend(checkpoints.findings)
    return report


__all__ = ["BundleError", "VerifyReport", "export_bundle", "verify_bundle", "verify_store"]
