"""`safepref backup` of a live database while annotations are submitted, and `safepref
restore` into a fresh one that then serves the queue; the refusals, with their messages."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from tests.conftest import DatabaseFactory
from tests.support.live_server import ROOT, app_server, migrated
from tests.support.queue_load import random_payload, seed

SECRET = "backup-test-" + uuid.uuid4().hex


def safepref(url: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAFEPREF_DATABASE_URL": url, **settings}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


class Submitter(threading.Thread):
    """An annotator that takes and submits items until told to stop, or until `limit`
    submits are acknowledged among all of them (work is left for the restored server, however
    slowly the backup starts); each acknowledged submit is recorded with the moment its answer
    arrived."""

    def __init__(self, base: str, token: str, batch_id: int, acked: list[Any], limit: int) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        self.batch_id = batch_id
        self.acked = acked
        self.limit = limit
        self.stop = threading.Event()
        self.rng = random.Random(token)
        self.error: str | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set() and len(self.acked) < self.limit:
                lease = self.http.post(f"/api/v1/batches/{self.batch_id}/next")
                if lease.status_code == 204:
                    return
                assert lease.status_code == 200, lease.text
                body = lease.json()
                ids = sorted(r["id"] for r in body["item"]["responses"])
                payload = random_payload(self.rng, ids)
                url = f"/api/v1/assignments/{body['assignment_id']}/annotation"
                done = self.http.put(url, json=payload)
                assert done.status_code == 200, done.text
                stored = {k: v for k, v in payload.items() if k != "duration_ms"}
                self.acked.append((time.monotonic(), body["assignment_id"], stored))
        except Exception as exc:  # reported by the test
            self.error = repr(exc)
        finally:
            self.http.close()


def stored_payloads(url: str) -> dict[int, Any]:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return {a.assignment_id: a.payload for a in session.scalars(select(Annotation))}
    finally:
        engine.dispose()


@pytest.mark.live
def test_backup_while_annotating_and_restore_into_a_fresh_database(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = migrated(databases.new_url())
    seeded = seed(url, items=400, overlap=1, annotators=4, lease_seconds=600)
    backup_file = tmp_path / "safepref.backup"
    acked: list[Any] = []
    with app_server(url, workers=2, secret=SECRET) as base:
        workers = [
            Submitter(base, token, seeded.batch_id, acked, limit=200) for token in seeded.tokens
        ]
        for worker in workers:
            worker.start()
        while len(acked) < 20:
            assert all(w.error is None for w in workers), [w.error for w in workers]
            time.sleep(0.05)
        began = time.monotonic()
        done = safepref(url, "backup", str(backup_file))
        ended = time.monotonic()
        during = len(acked)
        while len(acked) < during + 10 and all(w.is_alive() for w in workers):
            time.sleep(0.05)
        for worker in workers:
            worker.stop.set()
        for worker in workers:
            worker.join()
    assert done.returncode == 0, done.stderr
    assert all(w.error is None for w in workers), [w.error for w in workers]
    before = {aid: payload for at, aid, payload in acked if at < began}
    assert len(before) >= 20 and len(acked) > len(before)  # annotating went on around it
    print(f"backup took {ended - began:.2f} s while {len(acked)} submits were acknowledged")

    fresh = databases.new_url()
    restored = safepref(fresh, "restore", str(backup_file))
    assert restored.returncode == 0, restored.stderr
    found = stored_payloads(fresh)
    missing = [aid for aid in before if aid not in found]
    assert not missing, f"acknowledged before the backup but not restored: {missing}"
    assert all(found[aid] == payload for aid, payload in before.items())
    # Nothing the backup could not have seen: every restored one was acknowledged at some point.
    assert set(found) <= {aid for _, aid, _ in acked}

    with app_server(fresh, workers=1, secret=SECRET) as base:
        assert httpx.get(f"{base}/readyz").status_code == 200
        auth = {"Authorization": f"Bearer {seeded.tokens[0]}"}
        lease = httpx.post(f"{base}/api/v1/batches/{seeded.batch_id}/next", headers=auth)
        assert lease.status_code == 200, lease.text
        body = lease.json()
        assert body["assignment_id"] not in found
        ids = sorted(r["id"] for r in body["item"]["responses"])
        payload = random_payload(random.Random(1), ids)
        done_url = f"{base}/api/v1/assignments/{body['assignment_id']}/annotation"
        submitted = httpx.put(done_url, json=payload, headers=auth)
        assert submitted.status_code == 200 and submitted.json()["outcome"] == "created"


def test_refusals_name_the_problem_and_write_nothing(
    backend: str, databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = migrated(databases.new_url())
    existing = tmp_path / "taken.backup"
    existing.write_bytes(b"x")
    refused = safepref(url, "backup", str(existing))
    assert refused.returncode == 2 and "already exists" in refused.stderr
    assert existing.read_bytes() == b"x"

    garbage = tmp_path / "garbage.backup"
    garbage.write_bytes(b"not a backup at all")
    refused = safepref(databases.new_url(), "restore", str(garbage))
    assert refused.returncode == 2 and "not a safepref backup" in refused.stderr

    good = tmp_path / "good.backup"
    assert safepref(url, "backup", str(good)).returncode == 0
    refused = safepref(url, "restore", str(good))  # into the (non-empty) original
    assert refused.returncode == 2 and "is not empty" in refused.stderr

    if backend == "postgresql":
        missing = safepref(
            url, "backup", str(tmp_path / "x.backup"), SAFEPREF_PG_BIN_DIR=str(tmp_path)
        )
        assert missing.returncode == 2 and "pg_dump" in missing.stderr
        assert "not found" in missing.stderr
        assert not (tmp_path / "x.backup").exists()
        other = tmp_path / "other.sqlite"
        sqlite_url = migrated(f"sqlite:///{other}")
        sqlite_backup = tmp_path / "sqlite.backup"
        assert safepref(sqlite_url, "backup", str(sqlite_backup)).returncode == 0
        refused = safepref(databases.new_url(), "restore", str(sqlite_backup))
        assert refused.returncode == 2 and "is a SQLite backup" in refused.stderr


@pytest.mark.parametrize("name", ["pg_dump", "pg_restore"])
def test_postgres_tools_are_found_or_named(name: str, tmp_path: Path) -> None:
    from app.config import Settings
    from app.ops.backup import BackupError, pg_tool

    empty = Settings(database_url="postgresql://x@localhost/x", pg_bin_dir=str(tmp_path))
    with pytest.raises(BackupError, match=f"{name}: not found"):
        pg_tool(name, empty)
