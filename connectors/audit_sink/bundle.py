"""Offline export bundles: what ``audit export`` writes and ``audit verify --bundle`` proves.

A bundle holds, per chain, the rows recorded in ``[since, until)`` plus the row just
before and the row just after the window (their ``recorded_at``, bound by the row MAC,
shows they lie outside), the row at the chain's signed head when the window closed before
it, the database's checkpoints, and the newest checkpoint read from
``_streaming.audit-checkpoints`` in Kafka. Offline, with only the MAC keys and the
public keys, :func:`verify_bundle` then shows the window is authentic and complete, and
that every chain the Kafka checkpoint names is present up to the head it signed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.audit_sink.checkpoints import checkpoint_from_json, checkpoint_to_json
from connectors.audit_sink.store import AuditStore
from connectors.audit_sink.verify import VerifyReport
from streaming.audit.canonical import format_timestamp, parse_column_time
from streaming.audit.chain import ChainHead, ChainRow, RowColumns
from streaming.audit.checkpoints import (
    SignedCheckpoint,
    load_public_key,
    public_key_pem,
    signer_key_id,
)
from streaming.audit.keys import MacKeyRing
from streaming.audit.verifier import ChainVerifier, Finding, Reason, verify_checkpoints
from streaming.errors import StreamingError

BUNDLE_FORMAT = "tradesense-audit-bundle/2"


class BundleError(StreamingError):
    """An export bundle is missing files or is not readable."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def row_to_dict(row: ChainRow) -> dict[str, Any]:
    return {
        "chain": row.chain_id,
        "seq": row.seq,
        "offset": row.kafka_offset,
        "key_id": row.key_id,
        "prev_hash": row.prev_hash.hex(),
        "hash": row.hash.hex(),
        "payload": _b64(row.payload),
        "columns": row.columns._asdict() if row.columns is not None else None,
    }


def row_to_json(row: ChainRow) -> str:
    return json.dumps(row_to_dict(row), sort_keys=True)


async def export_bundle(
    store: AuditStore,
    out: Path,
    *,
    since: datetime,
    until: datetime,
    public_keys: dict[str, Ed25519PublicKey],
    published: SignedCheckpoint | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write ``manifest.json``, ``rows.jsonl``, ``checkpoints.jsonl``, ``public_keys.json``.

    ``on_progress(rows_written, 0)`` is called as rows are written (the total is unknown).

    ``published`` is the newest checkpoint read from Kafka; every chain it names gets an
    entry, so a chain deleted from the database shows up as an empty one.
    """
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a local export directory
    chain_ids = await store.reader.chain_ids()
    signed_heads = {h.chain_id: h for h in published.checkpoint().heads} if published else {}
    chain_ids |= set(signed_heads)
    chains: dict[str, Any] = {}
    count = written = 0
    with (out / "rows.jsonl").open("w", encoding="utf-8") as rows_file:
        for chain_id in sorted(chain_ids):
            before, after = await store.reader.window_bounds(chain_id, since, until)
            first = last = None
            in_window = 0
            async for row in store.reader.rows(chain_id, from_seq=max(before, 1), to_seq=after):
                first = first if first is not None else row.seq
                last = row.seq
                if before < row.seq and (after is None or row.seq < after):
                    in_window += 1
                rows_file.write(row_to_json(row) + "\n")
                written += 1
                if on_progress is not None and written % 500 == 0:
                    on_progress(written, 0)
            count += in_window
            chains[chain_id] = {"from_seq": first, "to_seq": last, "window_rows": in_window}
            head = signed_heads.get(chain_id)
            if after is not None and head is not None and last is not None and head.seq > last:
                # The window closed before the chain's signed head: carry that one row so
                # the verifier can still see the chain reaches it.
                async for row in store.reader.rows(chain_id, from_seq=head.seq, to_seq=head.seq):
                    chains[chain_id]["checkpoint_row"] = row_to_dict(row)
    checkpoints = await store.checkpoints.load()
    with (out / "checkpoints.jsonl").open("w", encoding="utf-8") as cp_file:
        for signed in checkpoints:
            cp_file.write(json.dumps(checkpoint_to_json(signed), sort_keys=True) + "\n")
    (out / "public_keys.json").write_text(
        json.dumps({kid: public_key_pem(k) for kid, k in public_keys.items()}, indent=2)
    )
    manifest = {
        "format": BUNDLE_FORMAT,
        "namespace": store.schema,
        "since": format_timestamp(since),
        "until": format_timestamp(until),
        "exported_at": format_timestamp(datetime.now(UTC)),
        "rows": count,
        "checkpoints": len(checkpoints),
        "published_checkpoint": checkpoint_to_json(published) if published else None,
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


def _parse_row(r: Any) -> ChainRow:
    return ChainRow(
        r["chain"],
        int(r["seq"]),
        int(r["offset"]),
        r["key_id"],
        bytes.fromhex(r["prev_hash"]),
        bytes.fromhex(r["hash"]),
        base64.b64decode(r["payload"]),
        RowColumns.from_dict(r["columns"]),
    )


def _window_finding(
    chain_id: str, rows: list[ChainRow], since: datetime, until: datetime
) -> Finding | None:
    """The rows around the window must lie outside it, and time must never go back (the
    sink's invariant, which makes a time window one contiguous seq range)."""
    first = rows[0]
    if first.seq > 1 and not (first.columns and first.columns.recorded < since):
        return Finding(
            Reason.WINDOW_INCOMPLETE,
            chain_id,
            first.seq - 1,
            f"the bundle starts at seq {first.seq}, recorded inside its window: "
            "the rows before it are not shown",
        )
    previous: datetime | None = None
    for row in rows:
        recorded = row.columns.recorded if row.columns else None
        if recorded is not None and previous is not None and recorded < previous:
            return Finding(
                Reason.WINDOW_INCOMPLETE,
                chain_id,
                row.seq,
                "recorded_at goes back here, so the window may continue elsewhere",
            )
        previous = recorded or previous
    return None


def _checkpoint_row_finding(
    chain_id: str, meta: Any, latest: ChainHead, ring: MacKeyRing
) -> Finding | None:
    """A window that closed before the chain's signed head carries the signed head's row."""
    raw = meta.get("checkpoint_row") if isinstance(meta, dict) else None
    if raw is None:
        return Finding(
            Reason.TRUNCATED,
            chain_id,
            latest.seq,
            f"the row the newest checkpoint signed (seq {latest.seq}) is not in the bundle",
        )
    row = _parse_row(raw)
    if row.seq != latest.seq or row.hash != latest.hash or ring.row_format(row) is None:
        return Finding(
            Reason.CHECKPOINT_MISMATCH,
            chain_id,
            latest.seq,
            "the row carried for the newest checkpoint's head does not match it",
        )
    return None


def _load_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for pem in _read_json(directory / "public_keys.json").values():
        key = load_public_key(pem.encode())
        keys[signer_key_id(key)] = key
    return keys


def verify_bundle(
    directory: Path,
    ring: MacKeyRing,
    public_keys: dict[str, Ed25519PublicKey] | None = None,
) -> VerifyReport:
    """Verify an export offline: rows, their window, checkpoints, and the Kafka checkpoint.

    ``public_keys`` should come from configuration; without it the bundle's own
    ``public_keys.json`` is used (which proves consistency, not origin).
    """
    manifest = _read_json(directory / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{directory} is not a {BUNDLE_FORMAT} bundle: export it again with this version"
        )
    keys = public_keys if public_keys is not None else _load_keys(directory)
    try:
        since = parse_column_time(manifest["since"])
        until = parse_column_time(manifest["until"])
        raw_published = manifest.get("published_checkpoint")
        published = checkpoint_from_json(raw_published) if raw_published else None
        stored = [checkpoint_from_json(c) for c in _read_jsonl(directory / "checkpoints.jsonl")]
        by_chain: dict[str, list[ChainRow]] = {}
        for r in _read_jsonl(directory / "rows.jsonl"):
            by_chain.setdefault(r["chain"], []).append(_parse_row(r))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{directory}: malformed bundle ({exc!r})") from exc
    checkpoints = verify_checkpoints(stored, keys, published=published)
    report = VerifyReport(
        latest_checkpoint_id=checkpoints.latest.checkpoint_id if checkpoints.latest else None,
        window=(manifest["since"], manifest["until"]),
    )
    names = set(manifest.get("chains", {})) | set(by_chain)
    if checkpoints.latest is not None:
        names |= {h.chain_id for h in checkpoints.latest.heads}
    for chain_id in sorted(names):
        rows = sorted(by_chain.get(chain_id, []), key=lambda r: r.seq)
        latest = checkpoints.latest_head(chain_id)
        start = closed = None
        if rows:
            if rows[0].seq > 1:
                start = ChainHead(chain_id, rows[0].seq - 1, rows[0].prev_hash)
            last = rows[-1].columns
            closed = last is not None and last.recorded >= until
        # An open end is where the chain ended at export: the Kafka checkpoint's head must
        # be in it. A closed end (a row recorded after the window) needs no more rows.
        verifier = ChainVerifier(
            chain_id,
            ring,
            start,
            checkpoints.known_hashes.get(chain_id, {}),
            None if closed else latest,
            expect_anchor_row=False,
        )
        for row in rows:
            if verifier.feed(row) is not None:
                break
        finding = verifier.finish()
        if finding is None and rows:
            finding = _window_finding(chain_id, rows, since, until)
        if finding is None and closed and latest is not None and latest.seq > rows[-1].seq:
            meta = manifest.get("chains", {}).get(chain_id)
            try:
                finding = _checkpoint_row_finding(chain_id, meta, latest, ring)
            except (KeyError, TypeError, ValueError) as exc:
                raise BundleError(f"{directory}: malformed checkpoint row ({exc!r})") from exc
        report.add(verifier, finding)
    report.findings.extend(checkpoints.findings)
    if published is None and stored:
        report.findings.append(
            Finding(
                Reason.CHECKPOINT_MISSING,
                None,
                None,
                "the bundle carries no checkpoint read from Kafka, so a cut tail would not "
                "show: export it again with Kafka reachable",
            )
        )
    return report


__all__ = [
    "BUNDLE_FORMAT",
    "BundleError",
    "export_bundle",
    "row_to_dict",
    "row_to_json",
    "verify_bundle",
]
