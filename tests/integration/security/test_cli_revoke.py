"""`streaming auth revoke --jti` writes to the real shared revocation table."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from streaming.cli.auth import app
from streaming.config import DatabaseSettings
from streaming.security import PostgresRevocationStore

pytestmark = pytest.mark.integration


def test_cli_revoke_is_seen_by_the_store(database_settings: DatabaseSettings) -> None:
    jti = f"cli-{uuid.uuid4().hex}"
    result = CliRunner().invoke(app, ["revoke", "--jti", jti, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["revoked"] == jti

    async def check_and_clean() -> bool:
        engine = create_async_engine(database_settings.connection_url)
        try:
            revoked = await PostgresRevocationStore(engine).is_revoked(jti)
            async with engine.begin() as conn:
                await conn.execute(
                    text("DELETE FROM security_token_revocations WHERE id = :id"), {"id": jti}
                )
            return revoked
        finally:
            await engine.dispose()

    assert asyncio.run(check_and_clean())
