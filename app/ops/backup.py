"""`safepref backup FILE` and `safepref restore FILE`, for both backends.

SQLite: the online backup API copies the database in one step, a consistent snapshot taken
while the server keeps serving (WAL: writers are not held up). PostgreSQL: pg_dump's custom
format (a snapshot too: whatever was committed when it started, nothing after), restored with
pg_restore. Either way the file holds everything, the annotator pseudonym key included, so a
restored installation names annotators as the original did.

A restore goes into an empty database only: merging a backup into live data is not a restore.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect, make_url

from app.config import Settings
from app.db import make_engine
from app.errors import DomainError

SQLITE_HEADER = b"SQLite format 3\x00"
PG_DUMP_HEADER = b"PGDMP"


class BackupError(DomainError):
    """A backup or restore that cannot be done; the message says why."""


def backup(settings: Settings, target: Path) -> str:
    """Writes a backup of the configured database to `target` (which must not exist)."""
    if target.exists():
        raise BackupError(f"{target}: already exists; choose a new file name")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such directory")
    if settings.is_sqlite:
        return _sqlite_backup(settings, target)
    return _pg_dump(settings, target)


def restore(settings: Settings, source: Path) -> str:
    """Restores `source` (a file of `backup`) into the configured, empty database."""
    if not source.is_file():
        raise BackupError(f"{source}: no such file")
    with source.open("rb") as fp:
        head = fp.read(16)
    if head.startswith(SQLITE_HEADER):
        kind = "SQLite"
    elif head.startswith(PG_DUMP_HEADER):
        kind = "PostgreSQL"
    else:
        raise BackupError(f"{source}: not a safepref backup (neither SQLite nor pg_dump format)")
    wanted = "SQLite" if settings.is_sqlite else "PostgreSQL"
    if kind != wanted:
        raise BackupError(
            f"{source} is a {kind} backup but the configured database is {wanted}; "
            "restore it into a database of the same kind"
        )
    _require_empty(settings)
    if settings.is_sqlite:
        return _sqlite_restore(settings, source)
    return _pg_restore(settings, source)


def _require_empty(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        tables = inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"the database {_shown(settings)} is not empty ({len(tables)} tables); "
            "restore into a new, empty database"
        )


def _shown(settings: Settings) -> str:
    return make_url(settings.database_url).render_as_string(hide_password=True)


def _sqlite_source(settings: Settings) -> Path:
    path = settings.sqlite_path
    if path is None:
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return path


def _sqlite_backup(settings: Settings, target: Path) -> str:
    source = _sqlite_source(settings)
    if not source.is_file():
        raise BackupError(f"{source}: no such database file")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=-1)  # one step: a consistent snapshot
    finally:
        dst.close()
        src.close()
    return f"backed up {source} to {target}"


def _sqlite_restore(settings: Settings, source: Path) -> str:
    target = _sqlite_source(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=WAL")
    finally:
        dst.close()
        src.close()
    return f"restored {source} into {target}"


def pg_tool(name: str, settings: Settings) -> str:
    """The path of pg_dump or pg_restore: SAFEPREF_PG_BIN_DIR, the PATH, then Debian's
    /usr/lib/postgresql/N/bin (newest first); a clear error when none has it."""
    if settings.pg_bin_dir:
        candidate = Path(settings.pg_bin_dir) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
        raise BackupError(f"{candidate}: not found (SAFEPREF_PG_BIN_DIR)")
    found = shutil.which(name)
    if found:
        return found
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise BackupError(
        f"{name} not found: install PostgreSQL's client programs (Debian: postgresql-client) "
        "or set SAFEPREF_PG_BIN_DIR to the directory that holds them"
    )


def _libpq(settings: Settings) -> tuple[str, dict[str, str]]:
    """The database as a libpq URL without its password, and the environment that carries
    the password (not on the command line, where any local user could read it)."""
    url = make_url(settings.database_url).set(drivername="postgresql")
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return url.set(password=None).render_as_string(hide_password=False), env


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip() or done.returncode}")


def _pg_dump(settings: Settings, target: Path) -> str:
    tool = pg_tool("pg_dump", settings)
    url, env = _libpq(settings)
    partial = target.with_name(target.name + ".partial")
    try:
        _run([tool, "--format=custom", f"--file={partial}", f"--dbname={url}"], env, "pg_dump")
        partial.rename(target)  # the file appears complete or not at all
    finally:
        partial.unlink(missing_ok=True)
    return f"backed up {_shown(settings)} to {target}"


def _pg_restore(settings: Settings, source: Path) -> str:
    tool = pg_tool("pg_restore", settings)
    url, env = _libpq(settings)
    _run(
        [
            tool,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={url}",
            str(source),
        ],
        env,
        "pg_restore",
    )
    return f"restored {source} into {_shown(settings)}"
