"""Small process and network helpers shared by the local-stack services."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from streaming.errors import DevStackError

Progress = Callable[[str], None]


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` runs; zombies (exited, not yet reaped) count as dead."""
    if not pid:
        return False
    # Reap it if it is our exited child; not our child is fine too.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start a long-running process detached from our session; output goes to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    return proc.pid


def terminate(*pids: int | None, timeout_s: float = 20.0) -> None:
    """SIGTERM them all at once, wait up to ``timeout_s`` for clean exits, then SIGKILL."""
    running = [p for p in pids if p and pid_alive(p)]
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while running and time.monotonic() < deadline:
        running = [p for p in running if pid_alive(p)]
        if running:
            time.sleep(0.1)  # poll
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 5
    while running and time.monotonic() < kill_deadline:
        running = [p for p in running if pid_alive(p)]
        if running:
            time.sleep(0.05)  # poll


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    hint: str = "",
    interval_s: float = 0.2,
) -> None:
    """Poll ``condition`` until true or raise a DevStackError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)  # poll
    raise DevStackError(f"timed out after {timeout_s:.0f}s waiting for {what}{hint}")


def require_tool(name: str, fix: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DevStackError(f"{name} not found: {fix}")
    return path


def tail(path: Path, lines: int = 15) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(content[-lines:])


def docker_available(timeout_s: float = 2.0) -> bool:
    """True when a Docker engine (not just the client) answers within ``timeout_s``."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())
