"""The CLI: verify exit codes and JSON, export bundles verified offline (no database)."""

from __future__ import annotations

import json
from pathlib import Path

from streaming.db import Database
from tests.integration.audit.conftest import Sunk, cli_env, export_args, run_cli, tamper


async def test_verify_cli_exits_1_with_chain_seq_and_reason(database: Database, sunk: Sunk) -> None:
    env = cli_env(sunk.setup.settings)
    code, out, _ = await run_cli("verify", "--json", env=env)
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = await run_cli("verify", "--since-checkpoint", "--json", env=env)
    assert code == 0 and json.loads(out)["started_from_checkpoint"] is not None
    await tamper(
        database,
        f"UPDATE {sunk.schema}.audit_log SET hash = sha256(hash) WHERE chain_id = :chain AND seq = 3",
        chain=sunk.chain,
    )
    code, out, _ = await run_cli("verify", "--json", "--chain", sunk.chain, env=env)
    assert code == 1
    first = json.loads(out)["first"]
    assert (first["chain"], first["seq"], first["reason"]) == (sunk.chain, 3, "hash_altered")
    code, _, err = await run_cli("verify", env=env)
    assert code == 1 and "hash_altered" in err and sunk.chain in err


async def test_exported_bundle_verifies_offline_and_catches_edits(
    sunk: Sunk, tmp_path: Path
) -> None:
    env = cli_env(sunk.setup.settings)
    bundle = tmp_path / "bundle"
    code, out, err = await run_cli(*export_args(bundle), "--json", env=env)
    assert code == 0, err
    assert json.loads(out)["rows"] >= sunk.length
    offline = {**env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    code, out, err = await run_cli("verify", "--bundle", str(bundle), "--json", env=offline)
    assert code == 0, out + err
    rows_file = bundle / "rows.jsonl"
    lines = rows_file.read_text().splitlines()
    row = json.loads(lines[4])
    row["offset"] += 1
    lines[4] = json.dumps(row)
    rows_file.write_text("\n".join(lines) + "\n")
    code, out, _ = await run_cli("verify", "--bundle", str(bundle), "--json", env=offline)
    assert code == 1
    assert json.loads(out)["first"]["chain"] == row["chain"]
