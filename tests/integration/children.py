"""Real child processes for tests: start one, check it is alive, kill it hard or stop it
gracefully, and never leave it behind; or run one to the end and keep its output."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def child(command: Sequence[str], env: Mapping[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` running for the block; killed on the way out if it is still alive."""
    proc = subprocess.Popen(
        list(command), env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def assert_alive(proc: subprocess.Popen[bytes]) -> None:
    """Fail with the child's stderr if it died on its own."""
    if proc.poll() is not None:
        detail = proc.stderr.read().decode() if proc.stderr else ""
        raise AssertionError(f"child exited with {proc.returncode}: {detail}")


def kill_hard(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL: no cleanup, no flush, no goodbye."""
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def stop_gracefully(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """SIGTERM and expect a clean exit 0."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=timeout_s) == 0


async def run_to_end(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout_s: float
) -> tuple[int, str, str]:
    """Run ``argv`` to completion: (exit code, stdout, stderr); killed after ``timeout_s``."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
