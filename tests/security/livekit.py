"""A live server with a batch, two annotators and an admin, for the security tests that need
the real `safepref serve` (its own event loop, gate and temp directory)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.service import create_token
from tests.queue.test_queue_concurrency import migrated
from tests.support.live_server import app_server
from tests.support.queue_load import seed

SECRET = "security-" + uuid.uuid4().hex


@dataclass
class Live:
    base: str
    url: str
    batch_id: int
    annotators: list[str]  # bearer tokens
    admin: str
    project_id: int
    tmpdir: Path

    def headers(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def process(self) -> psutil.Process:
        """The server's worker (one worker: the process listening on the port)."""
        port = int(self.base.rsplit(":", 1)[1])
        for process in psutil.process_iter():
            try:
                for conn in process.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                        return process
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        raise AssertionError(f"nothing listens on {port}")

    def lease(self, token: str) -> tuple[int, list[int]]:
        """(assignment id, response ids) of a lease for the annotator with `token`."""
        r = httpx.post(
            f"{self.base}/api/v1/batches/{self.batch_id}/next",
            headers=self.headers(token),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        return body["assignment_id"], sorted(x["id"] for x in body["item"]["responses"])


def _admin_token(url: str) -> str:
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            # No password (cannot log in): the token is enough here.
            admin = User(
                username=f"sec-admin-{uuid.uuid4().hex[:6]}", role="admin", password_hash="!"
            )
            session.add(admin)
            session.flush()
            return create_token(session, admin)[1]
    finally:
        engine.dispose()


@contextmanager
def live_server(database_url: str, tmpdir: Path, env: Mapping[str, str]) -> Iterator[Live]:
    """Serves a freshly migrated database (one worker) with TMPDIR set to `tmpdir`."""
    url = migrated(database_url)
    seeded = seed(url, items=6, overlap=1, annotators=2, lease_seconds=3600)
    admin = _admin_token(url)
    with app_server(url, workers=1, secret=SECRET, env={"TMPDIR": str(tmpdir), **env}) as base:
        project = httpx.post(
            f"{base}/api/v1/projects",
            json={"name": f"uploads-{uuid.uuid4().hex[:6]}"},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=60,
        )
        assert project.status_code == 201, project.text
        yield Live(base, url, seeded.batch_id, seeded.tokens, admin, project.json()["id"], tmpdir)
