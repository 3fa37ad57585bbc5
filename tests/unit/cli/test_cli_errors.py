"""Bad input at the CLI edge: one actionable line and a meaningful exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def run(args: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def base_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REGISTRY_URL"}
    }
    env["COLUMNS"] = "400"
    env.update(extra)
    return env


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_malformed_bootstrap_servers_is_one_line(tmp_path: Path) -> None:
    result = run(
        ["health"], env=base_env(KAFKA_BOOTSTRAP_SERVERS="kafka-without-port"), cwd=tmp_path
    )
    assert result.returncode == 2
    lines = error_lines(result)
    assert len(lines) == 1
    assert "KAFKA_BOOTSTRAP_SERVERS" in lines[0] and "host:port" in lines[0]


def test_missing_java_is_one_line_with_the_fix(tmp_path: Path) -> None:
    result = run(
        ["dev", "up", "--json"], env=base_env(PATH=str(tmp_path / "empty-bin")), cwd=tmp_path
    )
    assert result.returncode == 3
    lines = error_lines(result)
    assert len(lines) == 1
    assert "java not found" in lines[0]
    assert "KAFKA_BOOTSTRAP_SERVERS" in lines[0]


def test_non_compliant_production_lists_every_rule(tmp_path: Path) -> None:
    env = base_env(
        ENVIRONMENT="production", LOG_AUDIT_RETENTION_DAYS="30", SECURITY_PASSWORD_SALT_ROUNDS="10"
    )
    result = run(["health"], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "LOG_AUDIT_RETENTION_DAYS=30" in result.stderr
    assert "SECURITY_PASSWORD_SALT_ROUNDS=10" in result.stderr
    assert "database SSL" in result.stderr


def test_dev_env_without_stack_says_how_to_start(tmp_path: Path) -> None:
    result = run(["dev", "env"], env=base_env(), cwd=tmp_path)
    assert result.returncode == 3
    assert error_lines(result) == [
        "error: the local stack is not running; start it with 'streaming dev up'"
    ]


# Usage errors, through the installed console script (the entry point users run).
STREAMING = Path(sys.executable).parent / "streaming"

USAGE_ERRORS = [
    (["produce", "--type", "OrderPlaced", "--fake", "1"], "Missing option '--topic'"),
    (["produce", "-t", "x", "--type", "OrderPlaced", "--fake", "x"], "Invalid value for '--fake'"),
    (["produce", "-t", "x", "--type", "OrderPlaced", "--bogus"], "No such option: --bogus"),
    (["produce", "-t", "x", "--type", "OrderPlaced", "--batch", "0"], "'--batch'"),
    (["produce", "-t", "x", "--type", "OrderPlaced", "--batch", "-1"], "'--batch'"),
    (["produce", "-t", "x", "--type", "OrderPlaced", "--fake", "-3"], "'--fake'"),
    (["consume", "-t", "x", "--max", "-1"], "'--max'"),
    (["topics", "ensure", "--partitions", "many"], "Invalid value for '--partitions'"),
    (["dlq", "show", "-t", "x"], "Missing option '--group'"),
    (["dlq", "redrive", "-t", "x", "-g", "g", "--bogus"], "No such option: --bogus"),
    (["registry", "serve", "--port", "abc"], "Invalid value for '--port'"),
    (["auth", "token", "-u", "x", "--ttl-minutes", "0"], "'--ttl-minutes'"),
    (["audit", "export", "--since", "2024-01-01"], "Missing option '--until'"),
    (["db", "migrate", "--bogus"], "No such option: --bogus"),
    (["outbox", "relay", "--batch-size", "0"], "'--batch-size'"),
    (["offsets", "snapshot", "-g", "g"], "Missing option '--name'"),
    (["replay", "-t", "x"], "Missing option '--to'"),
    (["table", "dump"], "Missing option '--topic'"),
    (["dev", "up", "--brokers", "many"], "Invalid value for '--brokers'"),
    (["health", "extra"], "unexpected extra argument"),
    (["no-such-command"], "No such command 'no-such-command'"),
]


@pytest.mark.parametrize(
    ("args", "message"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS]
)
def test_usage_errors_exit_2_with_typers_message(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(STREAMING), *args],
        capture_output=True,
        text=True,
        env=base_env(),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"Usage: streaming {args[0]}" in result.stderr or "Usage: streaming [" in result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr
    assert result.stdout == ""


def _leaf_commands(command: Any, path: list[str]) -> list[list[str]]:
    subs = getattr(command, "commands", None)
    if not subs:
        return [path]
    return [leaf for name, sub in subs.items() for leaf in _leaf_commands(sub, [*path, name])]


def test_every_command_refuses_an_unknown_option_with_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from typer.main import get_command

    from streaming.cli import app, main

    leaves = _leaf_commands(get_command(app), [])
    assert len(leaves) > 30
    for path in leaves:
        with pytest.raises(SystemExit) as exited:
            main([*path, "--no-such-option"])
        assert exited.value.code == 2, path
        assert "No such option" in capsys.readouterr().err, path
