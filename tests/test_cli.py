"""The `safepref` command as a user runs it: a subprocess against a fresh database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app import migrate
from app.auth.models import User
from app.auth.security import verify_password
from app.batches.models import Batch, BatchItem, BatchMember
from app.config import Settings
from app.db import make_engine
from app.items.models import Item, ReferenceLabel
from app.projects.models import Project
from tests.support.samples import jsonl, pku_pair

SAFEPREF = [sys.executable, "-m", "app.cli"]


def run(url: str, *args: str, stdin: str = "", cwd: Path | None = None) -> Any:
    env = {**os.environ, "SAFEPREF_DATABASE_URL": url}
    return subprocess.run(
        [*SAFEPREF, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def count(url: str, model: Any) -> int:
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(model)) or 0
    finally:
        engine.dispose()


def migrated(databases: Any) -> str:
    url = databases.new_url()
    engine = make_engine(Settings(database_url=url))
    migrate.upgrade(engine)
    engine.dispose()
    return str(url)


def test_import_then_reimport(databases: Any, tmp_path: Path) -> None:
    url = migrated(databases)
    data = tmp_path / "pairs.jsonl"
    data.write_bytes(jsonl([pku_pair(i) for i in range(5)]))
    first = run(url, "import", str(data), "--project", "cli", "--labels-as", "reference")
    assert first.returncode == 0, first.stderr
    assert "format pku-saferlhf: 5 items created, 0 duplicates" in first.stdout
    second = run(url, "import", str(data), "--project", "cli")
    assert second.returncode == 0, second.stderr
    assert "0 items created, 5 duplicates skipped" in second.stdout
    assert count(url, Item) == 5
    assert count(url, ReferenceLabel) == 5


def test_bad_import_names_the_line_and_leaves_no_trace(databases: Any, tmp_path: Path) -> None:
    url = migrated(databases)
    rows = [pku_pair(1), pku_pair(2), {**pku_pair(3), "response_0": ["not", "text"]}]
    data = tmp_path / "bad.jsonl"
    data.write_bytes(jsonl(rows))
    result = run(url, "import", str(data), "--project", "new-project")
    assert result.returncode == 2
    assert "error: line 3: field 'response_0': expected a string, got array" in result.stderr
    # The project the command would have created is rolled back with the items.
    assert count(url, Item) == 0
    assert count(url, Project) == 0


def test_import_missing_file(databases: Any, tmp_path: Path) -> None:
    result = run(migrated(databases), "import", str(tmp_path / "nope.jsonl"), "--project", "p")
    assert result.returncode == 2 and "no such file" in result.stderr


def test_create_user_reads_password_from_stdin(databases: Any) -> None:
    url = migrated(databases)
    result = run(url, "create-user", "carol", "--role", "annotator", stdin="long-password-1\n")
    assert result.returncode == 0, result.stderr
    engine = make_engine(Settings(database_url=url))
    with engine.connect() as conn:
        row = conn.execute(select(User.role, User.password_hash).where(User.username == "carol"))
        role, password_hash = row.one()
    engine.dispose()
    assert role == "annotator"
    assert verify_password(password_hash, "long-password-1")
    again = run(url, "create-user", "carol", "--role", "admin", "--password", "another-pass")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_create_user_rejects_short_password(databases: Any) -> None:
    result = run(migrated(databases), "create-user", "dave", "--role", "admin", "--password", "x")
    assert result.returncode == 2 and "at least 8 characters" in result.stderr


def test_migrate_is_idempotent(databases: Any) -> None:
    url = databases.new_url()
    for _ in range(2):
        result = run(url, "migrate")
        assert result.returncode == 0, result.stderr
    assert count(url, Item) == 0


def test_demo_builds_a_fresh_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    for _ in range(2):  # a second run starts over instead of failing or doubling
        result = run(url, "demo")
        assert result.returncode == 0, result.stderr
    assert "alice" in result.stdout and "password:" in result.stdout
    assert count(url, User) == 3
    assert count(url, Item) == 30
    assert count(url, BatchItem) == 30
    assert count(url, BatchMember) == 2
    engine = make_engine(Settings(database_url=url))
    with engine.connect() as conn:
        assert conn.scalar(select(Batch.overlap)) == 2
    engine.dispose()


def test_demo_refuses_a_non_empty_postgres_without_reset(databases: Any) -> None:
    if databases.backend != "postgresql":
        return
    url = migrated(databases)
    result = run(url, "demo")
    assert result.returncode == 2 and "--reset" in result.stderr
    result = run(url, "demo", "--reset")
    assert result.returncode == 0, result.stderr
    assert count(url, Item) == 30
