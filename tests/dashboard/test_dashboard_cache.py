"""SnapshotCache against a real database with its own engine (as in production): reuse while
the fingerprint holds, a stale snapshot while a background thread recomputes, a placeholder
while a slow first one is computed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from app import migrate
from app.config import Settings
from app.dashboard.cache import Cached, SnapshotCache
from app.db import make_engine
from app.items.models import Item
from app.projects.models import Project


@pytest.fixture
def own_engine(databases: object) -> Iterator[Engine]:
    eng = make_engine(Settings(database_url=databases.new_url()))  # type: ignore[attr-defined]
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


def add_item(engine: Engine, n: int) -> None:
    with Session(engine) as s, s.begin():
        project = s.scalars(select(Project)).first()
        if project is None:
            project = Project(name="cache", taxonomy=["x"])
            s.add(project)
            s.flush()
        s.add(Item(project_id=project.id, prompt=f"p{n}", content_hash=f"h{n}"))


class Counter:
    """compute: counts items slowly (and records each call); fingerprint: the item count.

    While `gate` is clear, a computation waits for the test to set it: a `get` that answers
    meanwhile has provably not waited for the computation, whatever the machine's speed."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0
        self.finished = 0
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def compute(self, session: Session, batch_id: int) -> int:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        # Bounded, so that a cache that waits after all fails its assertion instead of hanging.
        self.gate.wait(timeout=60)
        count = int(session.scalar(select(func.count()).select_from(Item)) or 0)
        with self.lock:
            self.finished += 1
        return count

    def fingerprint(self, session: Session, batch_id: int) -> int:
        return int(session.scalar(select(func.count()).select_from(Item)) or 0)


def wait_for(cache: SnapshotCache[int], engine: Engine, want: int) -> Cached[int]:
    # Polls for the background thread's result; the bound only guards against a hang.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with Session(engine) as s:
            found = cache.get(s, 1, wait=False)
        if found is not None and found.fresh and found.value == want:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no fresh snapshot of {want}")


def test_reuse_stale_while_refreshing_and_placeholder_first(own_engine: Engine) -> None:
    counter = Counter(delay=0.3)
    cache: SnapshotCache[int] = SnapshotCache(
        counter.compute,
        counter.fingerprint,
        expensive=lambda fp: True,
        sync_limit=0.1,
        min_interval=0.0,
    )
    add_item(own_engine, 1)
    counter.gate.clear()
    with Session(own_engine) as s:
        assert cache.get(s, 1, wait=False) is None  # computing in the background
    assert counter.finished == 0  # answered while the computation was held back
    counter.gate.set()
    first = wait_for(cache, own_engine, 1)
    assert counter.calls == 1 and first.seconds >= 0.3

    with Session(own_engine) as s:
        assert cache.get(s, 1) is first  # unchanged data: the same snapshot, no computation
    assert counter.calls == 1

    add_item(own_engine, 2)
    counter.gate.clear()
    with Session(own_engine) as s:
        stale = cache.get(s, 1)
    assert counter.finished == 1  # the stale one came back without waiting for the refresh
    counter.gate.set()
    assert stale is not None and not stale.fresh and stale.value == 1
    assert wait_for(cache, own_engine, 2).fingerprint == 2
    assert counter.calls == 2


def test_fast_computations_and_waiting_callers_compute_in_the_request(own_engine: Engine) -> None:
    counter = Counter(delay=0.0)
    cache: SnapshotCache[int] = SnapshotCache(counter.compute, counter.fingerprint)
    add_item(own_engine, 1)
    with Session(own_engine) as s:
        got = cache.get(s, 7, wait=False)  # not expensive: computed at once
        assert got is not None and got.value == 1 and got.fresh
    add_item(own_engine, 2)
    with Session(own_engine) as s:
        got = cache.get(s, 7)  # fast last time: recomputed in the request, never stale
        assert got is not None and got.value == 2 and got.fresh
    assert counter.calls == 2


def test_snapshot_on_an_engine_matches_the_one_on_a_connection(own_engine: Engine) -> None:
    """With an Engine the label distributions run on their own connection, concurrently."""
    from app.dashboard.service import compute_snapshot
    from tests.support.dashboard_factory import build_campaign

    with Session(own_engine, expire_on_commit=False) as s, s.begin():
        batch_id = build_campaign(s).batch_id
    with Session(own_engine, expire_on_commit=False) as s:
        apart = compute_snapshot(s, batch_id)
    with own_engine.connect() as conn, Session(bind=conn, expire_on_commit=False) as s:
        together = compute_snapshot(s, batch_id)
    assert (
        apart.severity
        == together.severity
        == {
            "safe": 14,
            "minor": 1,
            "moderate": 1,
            "severe": 0,
        }
    )
    assert apart.categories == together.categories
    assert apart.categories["Insulting Behavior"] == 2
    assert apart.metrics.is_safe == together.metrics.is_safe


def test_background_computations_get_the_longer_statement_timeout(databases: object) -> None:
    """A snapshot computed in a background thread (first one and refresh) reads a whole batch;
    on PostgreSQL it runs under the background statement timeout, requests under theirs."""
    settings = Settings(
        database_url=databases.new_url(),  # type: ignore[attr-defined]
        db_statement_timeout_ms=4321,
        db_background_statement_timeout_ms=98765,
    )
    eng = make_engine(settings)
    migrate.upgrade(eng)
    postgres = eng.dialect.name == "postgresql"

    def observed(session: Session, batch_id: int) -> str:
        # What this session's transaction runs under: its timeout on PostgreSQL, and on
        # SQLite that it stays read-only.
        query = "SHOW statement_timeout" if postgres else "PRAGMA query_only"
        return str(session.execute(text(query)).scalar())

    items = Counter(delay=0.0)
    cache: SnapshotCache[str] = SnapshotCache(
        observed, items.fingerprint, expensive=lambda fp: True, sync_limit=0.0, min_interval=0.0
    )
    try:
        add_item(eng, 1)
        want = "98765ms" if postgres else "1"
        with Session(eng) as s:
            assert cache.get(s, 1, wait=False) is None  # first one: in the background
            assert observed(s, 1) == ("4321ms" if postgres else "0")  # the request's own
        first = _fresh(cache, eng)
        assert first.value == want
        add_item(eng, 2)
        with Session(eng) as s:
            assert cache.get(s, 1) is not None  # stale, refreshed in the background
        assert _fresh(cache, eng).value == want
    finally:
        eng.dispose()


def _fresh(cache: SnapshotCache[str], engine: Engine) -> Cached[str]:
    deadline = time.monotonic() + 120  # guards against a hang only
    while time.monotonic() < deadline:
        with Session(engine) as s:
            want = cache.fingerprint(s, 1)
            found = cache.get(s, 1, wait=False)
        if found is not None and found.fresh and found.fingerprint == want:
            return found
        time.sleep(0.05)
    raise AssertionError("no fresh snapshot")
