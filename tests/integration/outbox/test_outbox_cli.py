"""``streaming outbox status|relay`` through the entry point: JSON, refusals, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import text

from streaming.config import DatabaseSettings, KafkaSettings
from streaming.db import Database


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming", "outbox", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_status_counts_rows_and_relay_refuses_bad_setups(
    database: Database,
    database_settings: DatabaseSettings,
    kafka_settings: KafkaSettings,
    tables: tuple[str, str],
) -> None:
    outbox, _orders = tables
    async with database.connect() as conn:
        await conn.execute(
            text(
                f"INSERT INTO {outbox} (event_id, topic, event_type, sent_at) VALUES "
                "(gen_random_uuid(), 't', 'OrderPlaced', NULL), "
                "(gen_random_uuid(), 't', 'OrderPlaced', NULL), "
                "(gen_random_uuid(), 't', 'OrderPlaced', now())"
            )
        )
        await conn.commit()
    assert database_settings.url is not None
    env = {
        **os.environ,
        "DATABASE_URL": database_settings.url.get_secret_value(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "LOG_LEVEL": "WARNING",
    }
    status = _cli(env, "status", "--table", outbox, "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert (doc["unsent"], doc["sent"]) == (2, 1)
    assert doc["oldest_s"] is not None and doc["oldest_s"] >= 0

    missing = _cli(env, "relay", "--table", f"{outbox}_missing")
    assert missing.returncode == 2
    assert "streaming db migrate" in " ".join(missing.stderr.split())

    disabled = _cli({**env, "MESSAGING_OUTBOX_ENABLED": "false"}, "relay", "--table", outbox)
    assert disabled.returncode == 2
    assert "MESSAGING_OUTBOX_ENABLED" in disabled.stderr
    assert (
        await database.execute_scalar(f"SELECT count(*) FROM {outbox} WHERE sent_at IS NULL") == 2
    )
