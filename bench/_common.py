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
import subprocess
import sys
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
    """Starts a private PostgreSQL 15 server; yields the SQLAlchemy URL of its `safepref` db."""
    pgdir = workdir / "pg"
    if pgdir.exists():
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "stop", str(pgdir)], check=False)
        shutil.rmtree(pgdir)
    env = {**os.environ, "PG_FSYNC": "on" if fsync else "off"}
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/pg.sh"), "start", str(pgdir)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    try:
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

    def last_json(self) -> dict[str, Any]:
        """The last stdout line that is a JSON object (child scripts report that way)."""
        for line in reversed(self.output.splitlines()):
            if line.startswith("{"):
                parsed: dict[str, Any] = json.loads(line)
                return parsed
        raise ValueError(f"no JSON report in the output:\n{self.output}")


def run_measured(argv: Sequence[str], *, env: dict[str, str] | None = None) -> Measured:
    """Runs argv to completion; wall time and the child's own peak RSS (ru_maxrss)."""
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
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{output}")
    # Linux reports ru_maxrss in KiB.
    return Measured(seconds, usage.ru_maxrss / 1024, output)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
