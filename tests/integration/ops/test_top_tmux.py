"""``streaming top`` as a person sees it: a 200x50 tmux pane, read with capture-pane until
the lagging group shows, then quit with ``q`` or Ctrl-C and a clean exit 0."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streaming.config import KafkaSettings
from streaming.testing import eventually_sync
from tests.integration.ops.conftest import Behind, streaming_command, top_env

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Pane:
    """One detached tmux session on a private server (``-L``), so nothing else is touched."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "top")

    def alive(self) -> bool:
        args = ["tmux", "-L", self.socket, "has-session", "-t", "top"]
        return subprocess.run(args, env=self.env, capture_output=True, check=False).returncode == 0


@pytest.fixture
def pane(kafka_settings: KafkaSettings) -> Iterator[Pane]:
    pane = Pane(f"streaming-top-{uuid.uuid4().hex[:8]}", top_env(kafka_settings.bootstrap_servers))
    try:
        yield pane
    finally:
        subprocess.run(["tmux", "-L", pane.socket, "kill-server"], capture_output=True, check=False)


@pytest.mark.parametrize("quit_key", ["q", "C-c"])
def test_top_in_tmux_shows_the_lag_and_quits_cleanly(
    pane: Pane, behind: Behind, tmp_path: Path, quit_key: str
) -> None:
    status = tmp_path / "exit-status"
    command = shlex.join([*streaming_command(), "top", "--group", behind.group])
    shell = f"{command}; echo $? > {shlex.quote(str(status))}"
    pane.tmux("new-session", "-d", "-s", "top", "-x", "200", "-y", "50", shell)

    def lag_row(screen: str) -> bool:
        row = next((line for line in screen.splitlines() if behind.group in line), "")
        return behind.topic in row and " 100 " in row

    screen = eventually_sync(
        pane.screen, until=lag_row, timeout_s=30, what="the group's lag of 100 on screen"
    )
    assert "Audit chain" in screen and "DATABASE_URL is not set" in screen
    assert "(q or Ctrl-C quits)" in screen

    pane.tmux("send-keys", "-t", "top", quit_key)

    def exit_status() -> str:
        return status.read_text().strip() if status.exists() else ""

    assert eventually_sync(exit_status, timeout_s=15, what="top to exit") == "0"
    gone = eventually_sync(
        pane.alive, until=lambda alive: not alive, timeout_s=10, what="the session to end"
    )
    assert gone is False
