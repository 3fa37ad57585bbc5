"""``streaming top`` refuses what it cannot do with exit 2 and says what to run instead."""

from __future__ import annotations

from typer.testing import CliRunner

from streaming.cli._common import ExitCode
from streaming.cli.main import app

runner = CliRunner()


def test_json_without_once_is_a_usage_error() -> None:
    result = runner.invoke(app, ["top", "--json"])
    assert result.exit_code == ExitCode.USAGE
    assert "--once" in result.output


def test_the_live_view_needs_a_terminal() -> None:
    result = runner.invoke(app, ["top"])  # CliRunner's stdout is not a terminal
    assert result.exit_code == ExitCode.USAGE
    assert "--once --json" in result.output


def test_interval_must_be_positive() -> None:
    result = runner.invoke(app, ["top", "--once", "--interval", "0"])
    assert result.exit_code == ExitCode.USAGE
