"""`safepref export` as a user runs it: a subprocess against a database on each backend."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app import migrate
from app.cli import main
from app.config import Settings
from app.db import make_engine
from app.exports.formats import PKU_SAFERLHF_KEYS
from tests.support.consensus_factory import SAFE, annotate, build, payload, unsafe, user


def run(url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "SAFEPREF_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "export", *args],
        capture_output=True,
        env=env,
        timeout=120,
    )


def run_on_terminal(url: str, *args: str) -> tuple[int, bytes]:
    """Runs with standard error on a pseudo-terminal; returns (exit code, what it showed)."""
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "SAFEPREF_DATABASE_URL": url}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "export", *args],
            stdout=subprocess.DEVNULL,
            stderr=child_fd,
            env=env,
            timeout=120,
        )
        os.close(child_fd)
        shown = b""
        while True:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:  # EIO once the terminal has nothing more
                break
            if not chunk:
                break
            shown += chunk
        return done.returncode, shown
    finally:
        os.close(main_fd)


def seeded(databases: Any) -> tuple[str, str, int, list[str]]:
    """A database with 4 unanimous items and 1 item with a helpfulness dissent."""
    url = str(databases.new_url())
    engine = make_engine(Settings(database_url=url))
    migrate.upgrade(engine)
    with Session(engine) as db, db.begin():
        built = build(db, 5)
        for k, item in enumerate(built.items):
            ids = built.ids(item)
            body = payload(ids, [SAFE, unsafe("moderate", "Violence")])
            bodies = [
                body,
                body,
                payload(ids, [SAFE, unsafe("moderate", "Violence")], helpful=(1, 0)),
            ]
            for b in bodies if k == 4 else [body] * 3:
                annotate(db, built, item, user(db), b)
        name, batch_id = built.project.name, built.batch.id
        prompts = [item.prompt for item in built.items]
    engine.dispose()
    return url, name, batch_id, prompts


def test_export_to_a_file_and_to_stdout_with_filters(databases: Any, tmp_path: Path) -> None:
    url, project, batch_id, prompts = seeded(databases)
    out = tmp_path / "train.jsonl"
    done = run(url, "--format", "pku-saferlhf", "--project", project, "-o", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [x["prompt"] for x in lines] == prompts
    assert all(tuple(x) == PKU_SAFERLHF_KEYS for x in lines)
    assert not (tmp_path / "train.jsonl.partial").exists()
    # Not a terminal: no progress bar on standard error; on a terminal, a bar up to 5 items.
    assert done.stderr == b""
    code, shown = run_on_terminal(url, "--format", "dpo-helpful", "--project", project)
    assert code == 0 and b"5/5 (100%)" in shown

    # Worker processes give the same bytes as one process, pages in order (pages of 2 items).
    small = ("--format", "pku-saferlhf", "--project", project, "--page-size", "2")
    one = run(url, *small, "--jobs", "1")
    two = run(url, *small, "--jobs", "2")
    assert one.returncode == two.returncode == 0, two.stderr
    assert two.stdout == one.stdout == out.read_bytes()

    strict = run(url, "--format", "pku-saferlhf", "--batch", str(batch_id), "--min-agreement", "1")
    assert strict.returncode == 0, strict.stderr
    assert [json.loads(x)["prompt"] for x in strict.stdout.splitlines()] == prompts[:4]
    relaxed = run(
        url, "--format", "dpo-harmless", "--batch", str(batch_id),
        "--min-agreement", "1", "--dimensions", "harmlessness", "is_safe",
    )  # fmt: skip
    assert len(relaxed.stdout.splitlines()) == 5


def test_export_errors_name_the_problem(databases: Any) -> None:
    url, _, _, _ = seeded(databases)
    done = run(url, "--format", "pku-saferlhf", "--project", "no-such-project")
    assert done.returncode == 2 and b"no-such-project" in done.stderr


def test_bad_dimension_is_refused_before_reading_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Checked while parsing the arguments: no database is opened (none is configured here).
    assert main(["export", "--format", "pku-saferlhf", "--dimensions", "kindness"]) == 2
    assert "kindness" in capsys.readouterr().err
