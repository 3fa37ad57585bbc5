"""CLI input errors exit 2 with a fix-it message before touching Kafka."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from streaming.cli.dlq import app as dlq_app
from streaming.cli.offsets import app as offsets_app

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["reset", "-g", "g", "--to-earliest", "--to-latest"],
        ["reset", "-g", "g"],
        ["reset", "-g", "g", "--by-duration", "1h"],
        ["reset", "-g", "g", "--to-earliest", "--topic", "bad topic!"],
        ["reset", "-g", "g", "--from-file", "/nonexistent/offsets.csv"],
    ],
)
def test_bad_reset_requests_exit_2(args: list[str]) -> None:
    result = runner.invoke(offsets_app, args)
    assert result.exit_code == 2, result.output


def test_bad_offsets_filter_exits_2() -> None:
    result = runner.invoke(dlq_app, ["redrive", "-t", "o", "-g", "g", "--offsets", "0:x"])
    assert result.exit_code == 2
    assert "P:START-END" in result.output
