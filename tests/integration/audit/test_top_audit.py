"""``streaming top`` shows the audit chain as PostgreSQL holds it: heads, the newest
checkpoint's age and the last passing verify (recorded by ``streaming audit verify``)."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import text

from streaming.db import Database
from tests.integration.audit.conftest import Sunk, cli_env, run_cli
from tests.integration.ops.conftest import CHECKOUT, streaming_command


async def _top(env: dict[str, str], topic: str) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(
        *streaming_command(), "top", "--once", "--json", "--topic", topic, "--interval", "0.2",
        env={**env, "PYTHONPATH": str(CHECKOUT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode == 0, err.decode()
    doc: dict[str, object] = json.loads(out)
    return doc


async def test_top_shows_chain_heads_checkpoint_age_and_the_last_passing_verify(
    sunk: Sunk, database: Database
) -> None:
    env = cli_env(sunk.setup.settings)
    env.pop("REGISTRY_URL", None)
    before = (await _top(env, sunk.setup.topic))["audit"]
    assert isinstance(before, dict) and before["status"] == "ok", before
    assert before["last_verify"] is None  # nothing verified yet
    heads = {c["chain_id"]: c for c in before["chains"]}
    assert heads[sunk.chain]["seq"] == sunk.length
    async with database.connect() as conn:
        total = (await conn.execute(text(f"SELECT count(*) FROM {sunk.schema}.audit_log"))).one()
        newest = (
            await conn.execute(
                text(f"SELECT max(checkpoint_id) FROM {sunk.schema}.audit_checkpoint")
            )
        ).one()
    assert sum(c["seq"] for c in heads.values()) == total[0]
    checkpoint = before["checkpoint"]
    assert checkpoint["checkpoint_id"] == newest[0] and 0 <= checkpoint["age_s"] < 600

    code, _, err = await run_cli("verify", env=env)
    assert code == 0, err
    after = (await _top(env, sunk.setup.topic))["audit"]
    assert isinstance(after, dict)
    verify = after["last_verify"]
    assert verify["result"] == "ok" and verify["checkpoint_id"] == newest[0]
    assert 0 <= verify["age_s"] < 60
