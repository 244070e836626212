"""A real server for end-to-end tests: uvicorn worker processes in a child process, and a
throwaway PostgreSQL server (scripts/pg.sh) that a test may stop and start at will."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
PG_SH = ROOT / "scripts" / "pg.sh"


START_TIMEOUT = 120


def listeners(port: int) -> dict[int, int]:
    """pid -> inode of the socket it listens on at `port` (one per worker)."""
    found: dict[int, int] = {}
    for process in psutil.process_iter():
        try:
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                    link = os.readlink(f"/proc/{process.pid}/fd/{conn.fd}")
                    found[process.pid] = int(link.removeprefix("socket:[").rstrip("]"))
        except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
            continue
    return found


def migrated(url: str) -> str:
    """The database at `url` upgraded to the latest schema; returns the URL."""
    from app import migrate
    from app.config import Settings
    from app.db import make_engine

    engine = make_engine(Settings(database_url=url))
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def app_server(
    database_url: str,
    *,
    workers: int,
    secret: str,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    request_log: bool = False,
) -> Iterator[str]:
    """Serves the app with `safepref serve --workers N`; yields the base URL once it answers.

    The server's output goes to `log_path` when given (tests show its tail on failure); `env`
    adds to its environment (settings, TMPDIR); `request_log` turns its JSON line per request
    on."""
    port = free_port()
    env = {
        **os.environ,
        "SAFEPREF_DATABASE_URL": database_url,
        "SAFEPREF_SECRET_KEY": secret,
        "SAFEPREF_ENVIRONMENT": "development",
        **(env or {}),
    }
    # Lives as long as the server.
    log = log_path.open("w+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            *([] if request_log else ["--no-access-log"]),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Generous: starting worker processes on a loaded machine can take many seconds.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"server exited:\n{log.read().decode(errors='replace')}")
            try:
                # Every worker listens on a socket of its own (app/serving.py): wait for all of
                # them, not for a guess at how long they take, then for an answer.
                if len(listeners(port)) >= workers and (
                    httpx.get(f"{base}/healthz", timeout=5).status_code == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start within {START_TIMEOUT} s")
            time.sleep(0.1)
        yield base
    finally:
        # The whole session we started: the supervisor and its workers.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


class PostgresServer:
    """A private PostgreSQL server started with scripts/pg.sh (as the postgres user)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = ""

    def start(self) -> str:
        out = subprocess.run(
            ["bash", str(PG_SH), "start", str(self.directory)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        self.url = out.strip().splitlines()[-1]
        return self.url

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl = shutil.which("pg_ctl") or "/usr/lib/postgresql/15/bin/pg_ctl"
        cmd = [pg_ctl, "-D", str(self.directory / "data"), *args]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def stop_server(self) -> None:
        """Stops the server (fast shutdown: open connections are cut)."""
        self._pg_ctl("stop", "-m", "fast", "-w")

    def restart(self) -> None:
        """Starts it again on the same port (pg_ctl restart reuses the recorded options)."""
        self._pg_ctl("restart", "-m", "fast", "-w", "-l", str(self.directory / "server.log"))

    def remove(self) -> None:
        subprocess.run(["bash", str(PG_SH), "stop", str(self.directory)], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def pg_binaries_available() -> bool:
    return shutil.which("pg_ctl") is not None or Path("/usr/lib/postgresql/15/bin/pg_ctl").exists()
