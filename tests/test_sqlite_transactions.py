"""On SQLite, read-only work runs in a deferred transaction that takes no lock and refuses
writes; writers take the write lock when they begin (app/db.py)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app import migrate
from app.auth.models import ApiToken, User
from app.auth.service import create_token
from app.config import Settings
from app.db import make_engine, reading
from tests.support.live_server import app_server
from tests.support.queue_factory import quick_users


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    path = tmp_path / "t.db"
    engine = make_engine(Settings(database_url=f"sqlite:///{path}"))
    migrate.upgrade(engine)

    # Waiting for a lock fails after 0.2 s instead of 30: these tests show who waits at all.
    @event.listens_for(engine, "connect")
    def _short_wait(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout = 200")

    engine.dispose()
    yield path, engine
    engine.dispose()


def hold_write_lock(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_reads_do_not_wait_for_a_writer_and_writers_do(database: tuple[Path, Engine]) -> None:
    path, engine = database
    other = hold_write_lock(path)
    try:
        with Session(reading(engine)) as session:
            assert session.scalar(select(func.count()).select_from(User)) == 0
        with Session(engine) as session, pytest.raises(OperationalError, match="locked"):
            session.scalar(select(func.count()).select_from(User))
    finally:
        other.rollback()
        other.close()


def test_a_read_only_transaction_refuses_any_write(database: tuple[Path, Engine]) -> None:
    _, engine = database
    with Session(reading(engine)) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
        session.add(User(username="nope", role="annotator", password_hash="!"))
        with pytest.raises(OperationalError, match="readonly"):
            session.flush()
    # The same pooled connection writes again in a write transaction.
    with Session(engine) as session, session.begin():
        quick_users(session, 1)
    with Session(reading(engine)) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.slow
@pytest.mark.live
def test_get_requests_answer_while_a_writer_holds_the_lock(
    database: tuple[Path, Engine],
) -> None:
    path, engine = database
    with Session(engine) as session, session.begin():
        (user,) = quick_users(session, 1)
        row, token = create_token(session, user)
        token_id = row.id
    headers = {"Authorization": f"Bearer {token}"}
    with app_server(f"sqlite:///{path}", workers=1, secret=uuid.uuid4().hex) as base:
        # A GET records the token's first use, apart from its read-only transaction.
        assert httpx.get(f"{base}/api/v1/me", headers=headers, timeout=60).status_code == 200
        with Session(engine) as session:
            assert session.get_one(ApiToken, token_id).last_used_at is not None
        other = hold_write_lock(path)
        try:
            # The use was recorded a moment ago: this GET only reads, and needs no lock.
            answer = httpx.get(f"{base}/api/v1/me", headers=headers, timeout=20)
            assert answer.status_code == 200, answer.text
        finally:
            other.rollback()
            other.close()
