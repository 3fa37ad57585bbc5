"""`streaming auth hash-password` as a child process: only the hash reaches stdout, so
``HASH=$(streaming auth hash-password < file)`` works; prompts and errors go to stderr."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest
from pydantic import SecretStr

from streaming.config import SecuritySettings
from streaming.security import SecureHasher

PEPPER = "process-pepper-0123456789abcdef"
PASSWORD = "Vivid-Lantern-Orbit-42"
ENV = {**os.environ, "SECURITY_PASSWORD_PEPPER": PEPPER}
COMMAND = [sys.executable, "-m", "streaming", "auth", "hash-password"]


def _run(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        COMMAND, input=stdin, capture_output=True, text=True, env=ENV, timeout=60, check=False
    )


def _assert_only_the_hash(stdout: str, password: str = PASSWORD) -> None:
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    hasher = SecureHasher(SecuritySettings(password_pepper=SecretStr(PEPPER)))
    assert hasher.verify_password(password, lines[0])


@pytest.mark.parametrize("stdin", [f"{PASSWORD}\n", f"{PASSWORD}\n{PASSWORD}\n", PASSWORD])
def test_piped_stdin_prints_only_the_hash_without_getpass_warnings(stdin: str) -> None:
    done = _run(stdin)
    assert done.returncode == 0, done.stderr
    _assert_only_the_hash(done.stdout)
    assert "Warning" not in done.stderr and "password" not in done.stdout.lower()


def test_a_second_line_that_differs_is_refused() -> None:
    done = _run(f"{PASSWORD}\nsomething-else\n")
    assert (done.returncode, done.stdout) == (1, "")
    assert "does not repeat" in done.stderr and PASSWORD not in done.stderr


def test_empty_stdin_is_a_usage_error() -> None:
    done = _run("")
    assert (done.returncode, done.stdout) == (2, "")
    assert "stdin" in done.stderr


def test_a_weak_piped_password_is_refused_on_stderr() -> None:
    done = _run("password1\n")
    assert (done.returncode, done.stdout) == (1, "")
    assert "too common" in done.stderr


def _read_until(fd: int, marker: bytes, deadline: float) -> bytes:
    seen = b""
    while marker not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} on stderr; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"stderr closed before {marker!r}; got {seen!r}"
            seen += chunk
    return seen


def test_on_a_terminal_both_prompts_go_to_stderr() -> None:
    """stdin is a pseudo-terminal (and there is no controlling /dev/tty), so getpass
    prompts without echo; stdout still carries the hash alone."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        COMMAND,
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        deadline = time.monotonic() + 60
        _read_until(proc.stderr.fileno(), b"password: ", deadline)
        os.write(controller, f"{PASSWORD}\n".encode())
        _read_until(proc.stderr.fileno(), b"confirmation: ", deadline)
        os.write(controller, f"{PASSWORD}\n".encode())
        stdout = proc.stdout.read().decode()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    _assert_only_the_hash(stdout)
