"""Helpers shared by the bench/ scripts.

- `postgres_server()`: a throwaway PostgreSQL server of our own (scripts/pg.sh), durable by
  default (fsync on), so figures are not flattered by a server that never syncs.
- `fresh_database()`: an empty, migrated database on SQLite or on that server.
- `run_measured()`: runs a command as a child process and returns its wall time and its own
  peak RSS (from wait4, so the parent's memory never pollutes the figure).
- `print_table()`: a plain fixed-width table.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextmanager
def postgres_server(workdir: Path, *, fsync: bool = True) -> Iterator[str]:
    """Starts a private PostgreSQL 15 server; yields the SQLAlchemy URL of its `safepref` db.

    Each call gets its own new directory under `workdir`, so two scripts sharing a workdir
    never stop or delete each other's server.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    pgdir = Path(tempfile.mkdtemp(prefix="pg-", dir=workdir))
    env = {**os.environ, "PG_FSYNC": "on" if fsync else "off"}
    try:
        out = subprocess.run(
            ["bash", str(ROOT / "scripts/pg.sh"), "start", str(pgdir)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        yield out.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "stop", str(pgdir)], check=False)
        shutil.rmtree(pgdir, ignore_errors=True)


def fresh_database(backend: str, name: str, *, workdir: Path, server_url: str | None) -> str:
    """An empty database at the latest schema; returns its SQLAlchemy URL."""
    if backend == "sqlite":
        path = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        import psycopg

        assert server_url is not None, "a PostgreSQL server URL is needed"
        admin = server_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = server_url.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    return url


def migrate(url: str) -> None:
    from app import migrate as app_migrate
    from app.config import Settings
    from app.db import make_engine

    engine = make_engine(Settings(database_url=url))
    try:
        app_migrate.upgrade(engine)
    finally:
        engine.dispose()


def psycopg_url(url: str) -> str:
    """The libpq form of a SQLAlchemy postgresql+psycopg URL."""
    return url.replace("postgresql+psycopg://", "postgresql://")


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    output: str
    cpu_seconds: float = 0.0  # the child's own user + system time

    def last_json(self) -> dict[str, Any]:
        """The last stdout line that is a JSON object (child scripts report that way)."""
        for line in reversed(self.output.splitlines()):
            if line.startswith("{"):
                parsed: dict[str, Any] = json.loads(line)
                return parsed
        raise ValueError(f"no JSON report in the output:\n{self.output}")


def run_measured(argv: Sequence[str], *, env: dict[str, str] | None = None) -> Measured:
    """Runs argv to completion: wall time, the child's own peak RSS, its CPU time.

    Peak RSS is the child's VmHWM, sampled from /proc while it runs. Not ru_maxrss: Linux
    carries the parent's high-water mark into a forked child across exec, so ru_maxrss of a
    child is never below the RSS its parent had when it started the child.
    """
    child_env = {**os.environ, **(env or {})}
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak_kib = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_kib
        while not done.wait(0.02):
            peak_kib = max(peak_kib, vm_hwm_kib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    output = proc.stdout.read()
    done.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{output}")
    # A child may report its own final VmHWM (the most exact figure) as "vm_hwm_kib" in JSON.
    for line in output.splitlines():
        if line.startswith("{") and "vm_hwm_kib" in line:
            peak_kib = max(peak_kib, int(json.loads(line)["vm_hwm_kib"]))
    return Measured(seconds, peak_kib / 1024, output, usage.ru_utime + usage.ru_stime)


def vm_hwm_kib(pid: int | str = "self") -> int:
    """Peak resident set size of a live process in KiB (0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a local process (e.g. a PostgreSQL backend), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        padded = [
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(padded))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin_token(url: str) -> str:
    """A new admin account on the database at `url`, and an API token for it."""
    from sqlalchemy.orm import Session

    from app.auth.service import create_token, create_user
    from app.config import Settings
    from app.db import make_engine

    engine = make_engine(Settings(database_url=url))
    with Session(engine) as session, session.begin():
        user = create_user(session, "bench-admin", "bench-password-123", "admin")
        _, token = create_token(session, user)
    engine.dispose()
    return token
