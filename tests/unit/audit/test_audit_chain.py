"""The pure chain core: canonical bytes, MACs, checkpoints and the tamper taxonomy."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.audit_chain import (
    GENESIS_HASH,
    CanonicalizationError,
    ChainHead,
    ChainRow,
    Checkpoint,
    CheckpointSigner,
    MacKeyRing,
    RowColumns,
    _es_number,
    canonical_json,
    chain_links,
    checkpoint_digest,
    extend_chain,
)
from streaming.audit_verify import ChainVerifier, Reason, verify_checkpoints, verify_rows

RING = MacKeyRing({"k1": b"a" * 32, "k2": b"b" * 32}, "k1")
CHAIN = "audit.events/0"


def make_chain(n: int = 6, ring: MacKeyRing = RING) -> list[ChainRow]:
    items = [(i * 2, canonical_json({"n": i})) for i in range(n)]
    return extend_chain(ring, ChainHead.genesis(CHAIN), items)


def reason(rows: list[ChainRow], **kw: object) -> tuple[Reason, int | None] | None:
    found = verify_rows(CHAIN, rows, RING, **kw)  # type: ignore[arg-type]
    return (found.reason, found.seq) if found else None


def test_canonical_json_sorts_keys_and_strips_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}'


def test_canonical_json_writes_big_ints_decimals_and_ids_as_strings() -> None:
    value = {
        "big": 2**60,
        "small": 42,
        "d": decimal.Decimal("1.50"),
        "u": uuid.UUID(int=1),
        "t": dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC),
        "b": b"\x00\x01",
    }
    assert canonical_json(value) == (
        b'{"b":"AAE=","big":"1152921504606846976","d":"1.50","small":42,'
        b'"t":"2024-01-02T03:04:05.678Z","u":"00000000-0000-0000-0000-000000000001"}'
    )


@pytest.mark.parametrize(
    ("number", "text"),
    [(1.0, "1"), (1e21, "1e+21"), (1e-7, "1e-7"), (0.00001, "0.00001"), (123.456, "123.456")],
)
def test_canonical_json_uses_ecmascript_number_form(number: float, text: str) -> None:
    assert canonical_json(number) == text.encode()


def test_canonical_json_escapes_controls_and_keeps_unicode() -> None:
    assert canonical_json("é\n\x01") == '"é\\n\\u0001"'.encode()


def test_canonical_json_rejects_nan() -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json(float("nan"))


def test_intact_chain_verifies() -> None:
    assert reason(make_chain()) is None


def test_key_rotation_mid_chain_still_verifies() -> None:
    first = make_chain(3)
    head = ChainHead(CHAIN, first[-1].seq, first[-1].hash)
    rest = extend_chain(RING.rotated("k2"), head, [(100, b"{}"), (101, b"{}")])
    assert {r.key_id for r in first + rest} == {"k1", "k2"}
    assert reason(first + rest) is None


def test_edited_payload_is_reported_as_payload_altered() -> None:
    rows = make_chain()
    rows[2] = dataclasses.replace(rows[2], payload=b'{"n":999}')
    assert reason(rows) == (Reason.PAYLOAD_ALTERED, 3)


def test_edited_hash_is_reported_as_hash_altered() -> None:
    rows = make_chain()
    rows[2] = dataclasses.replace(rows[2], hash=b"\x00" * 32)
    assert reason(rows) == (Reason.HASH_ALTERED, 3)


def test_deleted_middle_row_is_reported_as_row_missing() -> None:
    rows = make_chain()
    del rows[2]
    assert reason(rows) == (Reason.ROW_MISSING, 3)


def test_renumbered_seq_is_reported_as_seq_gap() -> None:
    rows = make_chain()
    rows[3:] = [dataclasses.replace(r, seq=r.seq + 1) for r in rows[3:]]
    assert reason(rows) == (Reason.SEQ_GAP, 4)


def test_swapped_rows_are_reported() -> None:
    rows = make_chain()
    a, b = rows[2], rows[3]
    rows[2], rows[3] = dataclasses.replace(b, seq=a.seq), dataclasses.replace(a, seq=b.seq)
    assert reason(rows) == (Reason.ROWS_SWAPPED, 3)


def test_inserted_forged_row_is_reported() -> None:
    rows = make_chain()
    forged = ChainRow(CHAIN, 3, 5, "k1", rows[1].hash, b"\x11" * 32, b'{"forged":1}')
    shifted = [dataclasses.replace(r, seq=r.seq + 1) for r in rows[2:]]
    assert reason([*rows[:2], forged, *shifted]) == (Reason.ROW_INSERTED, 3)


def test_chain_recomputed_with_another_key_is_reported() -> None:
    rows = make_chain()
    attacker = MacKeyRing({"k1": b"z" * 32}, "k1")
    forged = extend_chain(
        attacker,
        ChainHead.genesis(CHAIN),
        [(r.kafka_offset, b'{"n":0}' if r.seq == 1 else r.payload) for r in rows],
    )
    assert reason(forged) == (Reason.CHAIN_RECOMPUTED, 1)


def test_truncated_tail_is_caught_by_the_latest_checkpoint() -> None:
    rows = make_chain()
    latest = ChainHead(CHAIN, rows[-1].seq, rows[-1].hash)
    assert reason(rows[:-2], latest=latest) == (Reason.TRUNCATED, 5)
    assert reason(rows, latest=latest) is None


def test_unknown_key_id_is_reported() -> None:
    rows = make_chain()
    rows[1] = dataclasses.replace(rows[1], key_id="nope")
    assert reason(rows) == (Reason.UNKNOWN_KEY, 2)


def test_incremental_verification_starts_at_a_signed_head() -> None:
    rows = make_chain()
    start = ChainHead(CHAIN, rows[2].seq, rows[2].hash)
    assert verify_rows(CHAIN, rows[2:], RING, start=start) is None
    bad = ChainHead(CHAIN, rows[2].seq, b"\x00" * 32)
    found = verify_rows(CHAIN, rows[2:], RING, start=bad)
    assert found is not None and found.reason is Reason.CHECKPOINT_MISMATCH


def _checkpoints(signer: CheckpointSigner, n: int) -> list:  # type: ignore[type-arg]
    out, prev = [], GENESIS_HASH
    for i in range(1, n + 1):
        cp = Checkpoint("audit", i, 1000 * i, prev, (ChainHead(CHAIN, i, bytes([i]) * 32, i),))
        signed = signer.sign(cp)
        out.append(signed)
        prev = checkpoint_digest(signed.body)
    return out


def test_checkpoints_verify_and_round_trip() -> None:
    signer = CheckpointSigner(Ed25519PrivateKey.generate())
    stored = _checkpoints(signer, 3)
    report = verify_checkpoints(stored, {signer.key_id: signer.public_key}, published=stored[-1])
    assert report.findings == ()
    assert report.latest is not None and report.latest.checkpoint_id == 3
    assert report.known_hashes[CHAIN][2] == bytes([2]) * 32


def test_deleted_and_altered_checkpoints_are_reported() -> None:
    signer = CheckpointSigner(Ed25519PrivateKey.generate())
    keys = {signer.key_id: signer.public_key}
    stored = _checkpoints(signer, 4)
    missing = verify_checkpoints([stored[0], stored[2], stored[3]], keys)
    assert [f.reason for f in missing.findings] == [Reason.CHECKPOINT_MISSING]
    tail_gone = verify_checkpoints(stored[:2], keys, published=stored[3])
    assert [f.reason for f in tail_gone.findings] == [Reason.CHECKPOINT_MISSING]
    altered = dataclasses.replace(stored[1], body=stored[1].body.replace(b'"seq":2', b'"seq":9'))
    edited = verify_checkpoints([stored[0], altered, *stored[2:]], keys)
    assert Reason.CHECKPOINT_ALTERED in [f.reason for f in edited.findings]


_JSON_KEYS = st.text(alphabet=st.characters(max_codepoint=0xD7FF), max_size=6)
_NATIVE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(alphabet=st.characters(max_codepoint=0xD7FF)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_KEYS, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_NATIVE_JSON)
def test_canonical_json_of_plain_json_matches_the_json_module(value: object) -> None:
    # Without floats, big integers or keys past U+D7FF, RFC 8785 is what json.dumps writes.
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode("utf-8")


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_canonical_json_floats_take_the_ecmascript_form(number: float) -> None:
    assert canonical_json(number) == _es_number(number).encode()


def test_canonical_json_orders_keys_by_utf16_code_units() -> None:
    # U+1F600 is D83D DE00 in UTF-16, so it sorts before U+E000 (code-point order disagrees).
    assert canonical_json({"\ue000": 1, "\U0001f600": 2, "a": 3}) == (
        '{"a":3,"\U0001f600":2,"\ue000":1}'.encode()
    )


def test_canonical_json_rejects_non_string_keys() -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json({1: "a"})
    with pytest.raises(CanonicalizationError):
        canonical_json({1: "a", "b": 2})


def test_chain_links_are_the_hashes_extend_chain_stores() -> None:
    head = ChainHead(CHAIN, 7, b"\x01" * 32, 40)
    items = [(41 + i, canonical_json({"n": i})) for i in range(5)]
    rows = extend_chain(RING, head, items)
    assert chain_links(RING, head, items) == [(r.seq, r.prev_hash, r.hash) for r in rows]
    assert [r.seq for r in rows] == [8, 9, 10, 11, 12] and rows[0].prev_hash == head.hash
    assert reason(extend_chain(RING, ChainHead.genesis(CHAIN), items)) is None


T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)


def bound_chain(n: int = 6) -> list[ChainRow]:
    """Format-2 rows: the MAC binds the queryable columns too."""
    items = [(i * 2, canonical_json({"n": i})) for i in range(n)]
    columns = [
        RowColumns.of(uuid.UUID(int=i), "ORDER_PLACED", T0, f"user-{i}", T0) for i in range(n)
    ]
    return extend_chain(RING, ChainHead.genesis(CHAIN), items, columns)


def test_row_columns_keep_microseconds_and_round_trip() -> None:
    cols = RowColumns.of(uuid.UUID(int=1), "X", None, None, T0)
    assert cols.recorded_at == "2026-01-02T03:04:05.123456Z" and cols.recorded == T0
    assert RowColumns.from_dict(cols._asdict()) == cols


def test_bound_rows_verify_and_are_not_legacy() -> None:
    verifier = ChainVerifier(CHAIN, RING)
    for row in bound_chain():
        assert verifier.feed(row) is None
    assert verifier.finish() is None and verifier.legacy_rows == 0


@pytest.mark.parametrize(
    "change",
    [
        {"event_type": "ORDER_CANCELLED"},
        {"subject_id": "someone-else"},
        {"event_id": str(uuid.UUID(int=99))},
        {"occurred_at": None},
        {"recorded_at": "2026-01-03T03:04:05.123456Z"},
    ],
)
def test_an_edited_column_breaks_the_row_mac(change: dict[str, object]) -> None:
    rows = bound_chain()
    assert rows[2].columns is not None
    rows[2] = dataclasses.replace(rows[2], columns=rows[2].columns._replace(**change))
    assert reason(rows) == (Reason.PAYLOAD_ALTERED, 3)


def test_rows_written_before_column_binding_still_verify_as_legacy() -> None:
    legacy = make_chain(3)
    columns = RowColumns.of(uuid.UUID(int=7), "ORDER_PLACED", None, None, T0)
    head = ChainHead(CHAIN, legacy[-1].seq, legacy[-1].hash)
    rest = extend_chain(RING, head, [(50, b"{}")], [columns])
    verifier = ChainVerifier(CHAIN, RING)
    for row in [*[dataclasses.replace(r, columns=columns) for r in legacy], *rest]:
        assert verifier.feed(row) is None
    assert verifier.finish() is None and verifier.legacy_rows == 3


def test_a_bound_row_cannot_pass_as_a_legacy_one() -> None:
    rows = bound_chain()
    rows[2] = dataclasses.replace(rows[2], columns=None)  # "this row predates the columns"
    assert reason(rows) == (Reason.PAYLOAD_ALTERED, 3)


def test_a_chain_with_no_rows_left_is_missing() -> None:
    latest = ChainHead(CHAIN, 6, b"\x01" * 32)
    assert reason([], latest=latest) == (Reason.CHAIN_MISSING, 1)


def test_the_verify_state_mac_binds_namespace_checkpoint_and_digest() -> None:
    mac = RING.state_mac("audit", 3, b"\x01" * 32, "k1")
    assert mac == RING.state_mac("audit", 3, b"\x01" * 32, "k1")
    assert mac != RING.state_mac("audit", 4, b"\x01" * 32, "k1")
    assert mac != RING.state_mac("other", 3, b"\x01" * 32, "k1")
    assert mac != RING.state_mac("audit", 3, b"\x02" * 32, "k1")
    assert mac != RING.state_mac("audit", 3, b"\x01" * 32, "k2")


_COLUMN_TEXT = st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]))


@settings(max_examples=200, deadline=None)
@given(_COLUMN_TEXT, _COLUMN_TEXT, st.none() | _COLUMN_TEXT, st.none() | _COLUMN_TEXT)
def test_row_columns_bytes_are_their_canonical_json(
    event_type: str, key_id: str, occurred: str | None, subject: str | None
) -> None:
    cols = RowColumns(str(uuid.UUID(int=5)), event_type, occurred, subject, "2026-01-01T00:00Z")
    assert cols.canonical(key_id) == canonical_json({**cols._asdict(), "key_id": key_id})
