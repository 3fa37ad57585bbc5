"""Offline bundles: the window, the Kafka checkpoint and vanished chains, without a database."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.audit_sink.bundle import (
    BUNDLE_FORMAT,
    BundleError,
    row_to_dict,
    row_to_json,
    verify_bundle,
)
from connectors.audit_sink.checkpoints import checkpoint_to_json
from streaming.audit_chain import (
    GENESIS_HASH,
    ChainHead,
    ChainRow,
    Checkpoint,
    CheckpointSigner,
    MacKeyRing,
    RowColumns,
    SignedCheckpoint,
    canonical_json,
    column_time,
    extend_chain,
)
from streaming.audit_verify import Reason

RING = MacKeyRing({"k1": b"a" * 32}, "k1")
SIGNER = CheckpointSigner(Ed25519PrivateKey.generate())
KEYS = {SIGNER.key_id: SIGNER.public_key}
CHAIN, OTHER = "audit.events/0", "audit.events/1"
T0 = dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC)
SINCE, UNTIL = T0 + dt.timedelta(minutes=3), T0 + dt.timedelta(minutes=7)


def chain(name: str = CHAIN, n: int = 10) -> list[ChainRow]:
    """Row i (seq i + 1) recorded at T0 + i minutes."""
    items = [(i, canonical_json({"n": i})) for i in range(n)]
    columns = [
        RowColumns.of(uuid.uuid4(), "ORDER_PLACED", None, None, T0 + dt.timedelta(minutes=i))
        for i in range(n)
    ]
    return extend_chain(RING, ChainHead.genesis(name), items, columns)


def checkpoint(*rows: ChainRow) -> SignedCheckpoint:
    heads = tuple(ChainHead(r.chain_id, r.seq, r.hash, r.kafka_offset) for r in rows)
    return SIGNER.sign(Checkpoint("audit", 1, 0, GENESIS_HASH, heads))


def write(
    directory: Path,
    rows: list[ChainRow],
    published: SignedCheckpoint | None,
    *,
    until: dt.datetime = UNTIL,
    chains: dict[str, object] | None = None,
) -> Path:
    directory.mkdir()
    (directory / "rows.jsonl").write_text("".join(row_to_json(r) + "\n" for r in rows))
    stored = [published] if published else []
    (directory / "checkpoints.jsonl").write_text(
        "".join(json.dumps(checkpoint_to_json(s)) + "\n" for s in stored)
    )
    manifest = {
        "format": BUNDLE_FORMAT,
        "since": column_time(SINCE),
        "until": column_time(until),
        "published_checkpoint": checkpoint_to_json(published) if published else None,
        "chains": chains or {},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def first(directory: Path) -> tuple[Reason, str | None, int | None] | None:
    found = verify_bundle(directory, RING, KEYS).first
    return (found.reason, found.chain_id, found.seq) if found else None


def test_the_window_with_the_rows_around_it_verifies(tmp_path: Path) -> None:
    rows = chain()
    report = verify_bundle(write(tmp_path / "b", rows[2:8], checkpoint(rows[7])), RING, KEYS)
    assert report.ok, report.to_dict()
    assert report.rows == 6 and report.window is not None


def test_a_bundle_without_the_row_before_its_window_is_incomplete(tmp_path: Path) -> None:
    rows = chain()
    bundle = write(tmp_path / "b", rows[3:8], checkpoint(rows[7]))
    assert first(bundle) == (Reason.WINDOW_INCOMPLETE, CHAIN, 3)


def test_an_open_end_short_of_the_kafka_checkpoint_is_a_cut_tail(tmp_path: Path) -> None:
    rows = chain()
    far = UNTIL + dt.timedelta(days=1)
    bundle = write(tmp_path / "b", rows[2:8], checkpoint(rows[-1]), until=far)
    assert first(bundle) == (Reason.TRUNCATED, CHAIN, 9)


def test_a_chain_the_kafka_checkpoint_names_must_be_in_the_bundle(tmp_path: Path) -> None:
    rows, gone = chain(), chain(OTHER)
    bundle = write(tmp_path / "b", rows[2:8], checkpoint(rows[7], gone[-1]))
    assert first(bundle) == (Reason.CHAIN_MISSING, OTHER, 1)


def test_a_bundle_without_a_kafka_checkpoint_says_so(tmp_path: Path) -> None:
    rows = chain()
    bundle = write(tmp_path / "b", rows[2:8], None)
    (bundle / "checkpoints.jsonl").write_text(json.dumps(checkpoint_to_json(checkpoint(rows[7]))))
    assert first(bundle) == (Reason.CHECKPOINT_MISSING, None, None)


def test_a_bundle_of_the_old_format_is_refused(tmp_path: Path) -> None:
    bundle = write(tmp_path / "b", chain()[2:8], None)
    (bundle / "manifest.json").write_text(json.dumps({"format": "tradesense-audit-bundle/1"}))
    with pytest.raises(BundleError, match="export it again"):
        verify_bundle(bundle, RING, KEYS)


def test_a_closed_window_carries_the_row_of_the_signed_head(tmp_path: Path) -> None:
    rows = chain()
    signed = checkpoint(rows[-1])
    witnessed = {CHAIN: {"checkpoint_row": row_to_dict(rows[-1])}}
    assert first(write(tmp_path / "a", rows[2:8], signed, chains=witnessed)) is None
    assert first(write(tmp_path / "b", rows[2:8], signed)) == (Reason.TRUNCATED, CHAIN, 10)
    forged = {CHAIN: {"checkpoint_row": row_to_dict(rows[-2])}}
    bundle = write(tmp_path / "c", rows[2:8], signed, chains=forged)
    assert first(bundle) == (Reason.CHECKPOINT_MISMATCH, CHAIN, 10)
