"""Secrets and machine-readable lines come out whole, however narrow the terminal."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.audit_sink.config import decode_key_bytes


def test_keygen_never_wraps_keys_in_a_narrow_terminal() -> None:
    key_id = "rotation-2026-12-02-" + "x" * 40
    result = subprocess.run(
        [sys.executable, "-m", "streaming", "audit", "keygen", "--key-id", key_id],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "20", "TERM": "xterm"},
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    values = dict(line.split("=", 1) for line in lines)
    assert len(lines) == 5 and set(values) == {
        "AUDIT_MAC_KEYS",
        "AUDIT_SIGNING_KEY",
        "AUDIT_VERIFY_KEYS",
        "AUDIT_KEK",
        "SECURITY_PII_KEK",
    }
    kid, _, mac = values["AUDIT_MAC_KEYS"].partition(":")
    assert kid == key_id and len(decode_key_bytes(mac)) == 32
    assert len(decode_key_bytes(values["AUDIT_KEK"])) == 32
    assert len(decode_key_bytes(values["SECURITY_PII_KEK"])) == 32
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(values["AUDIT_SIGNING_KEY"]))
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert base64.b64decode(values["AUDIT_VERIFY_KEYS"]) == public
