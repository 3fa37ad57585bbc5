"""Bad input at the CLI edge: one actionable line and a meaningful exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
