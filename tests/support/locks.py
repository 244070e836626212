"""Waiting, in a race test, until a second transaction is blocked on the first one's lock."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, text

_WAITING = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def wait_until_blocked(engine: Engine, worker: threading.Thread, limit: float = 30.0) -> None:
    """Until `worker` waits for a lock (PostgreSQL) or has finished; at most `limit` seconds.

    Not a timing assumption: the race tests' outcome holds either way; this only makes the
    PostgreSQL run take the path where the second transaction waits for the first. Each poll
    is its own transaction: PostgreSQL keeps one snapshot of pg_stat_activity per transaction,
    so polling inside one transaction would never see a wait that began after the first poll.
    On SQLite (one writer at a time) there is nothing to wait for."""
    if engine.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + limit
    with engine.connect() as conn:
        while worker.is_alive() and time.monotonic() < deadline:
            waiting = conn.execute(text(_WAITING)).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.05)
