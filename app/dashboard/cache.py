"""Per-batch snapshots of expensive figures, reused while the batch's data is unchanged.

Agreement metrics and the disagreement list read every annotation of a batch (seconds at the
scale of the public dataset), while the dashboard refreshes every few seconds. A snapshot is
kept per (database, batch) with a *fingerprint* of the data it was computed from (cheap
aggregate queries, see `service.fingerprint`); a request whose fingerprint matches gets the
snapshot as it is.

When the data has changed and the last computation was slow, the old snapshot is served
(marked stale, with its time) while one background thread recomputes it, at most once per
`min_interval` or twice the last duration: an admin watching a busy batch costs a bounded
share of one core, never a computation per refresh. A first computation that `expensive`
predicts to be slow (from the fingerprint) is started in the background too when the caller
can show a placeholder (`wait=False`: `get` then answers None). Anything else (a fast
computation, a snapshot older than `max_stale`) is done in the request. Background work needs
its own connection, so it only happens when the session is bound to an Engine (not inside the
test suite's rolled-back transaction).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from app.db import background, utcnow

log = logging.getLogger("safepref.dashboard")
T = TypeVar("T")


@dataclass(frozen=True)
class Cached(Generic[T]):
    value: T
    fingerprint: Hashable
    computed_at: datetime
    seconds: float
    fresh: bool = True


@dataclass
class _Entry(Generic[T]):
    cached: Cached[T]
    refreshing: bool = False
    last_refresh: float = 0.0


def engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


class SnapshotCache(Generic[T]):
    def __init__(
        self,
        compute: Callable[[Session, int], T],
        fingerprint: Callable[[Session, int], Hashable],
        *,
        expensive: Callable[[Hashable], bool] = lambda fp: False,
        sync_limit: float = 0.5,
        max_stale: float = 600.0,
        min_interval: float = 5.0,
        size: int = 128,
    ) -> None:
        self.compute = compute
        self.fingerprint = fingerprint
        self.expensive = expensive
        self.sync_limit = sync_limit
        self.max_stale = max_stale
        self.min_interval = min_interval
        self.size = size
        self._entries: OrderedDict[tuple[str, int], _Entry[T]] = OrderedDict()
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._pending: set[tuple[str, int]] = set()
        self._guard = threading.Lock()

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()

    def get(self, session: Session, batch_id: int, *, wait: bool = True) -> Cached[T] | None:
        """The batch's snapshot; None (computing in the background) only when `wait` is
        False, there is no snapshot yet and the computation is expected to be slow."""
        engine = engine_of(session)
        key = (engine.url.render_as_string(hide_password=True), batch_id)
        fp = self.fingerprint(session, batch_id)
        entry = self._entry(key)
        if entry is not None and entry.cached.fingerprint == fp:
            return entry.cached
        deferrable = isinstance(session.get_bind(), Engine)
        if entry is not None and deferrable and self._may_serve_stale(entry.cached):
            self._maybe_refresh(engine, key, batch_id, entry)
            c = entry.cached
            return Cached(c.value, c.fingerprint, c.computed_at, c.seconds, fresh=False)
        if entry is None and deferrable and not wait and self.expensive(fp):
            self._start_first(engine, key, batch_id)
            return None
        return self._compute_now(session, key, batch_id, fp)

    def require(self, session: Session, batch_id: int) -> Cached[T]:
        found = self.get(session, batch_id)
        assert found is not None  # wait=True always computes
        return found

    def _compute_now(
        self, session: Session, key: tuple[str, int], batch_id: int, fp: Hashable
    ) -> Cached[T]:
        with self._lock_for(key):
            entry = self._entry(key)  # another request may have computed it meanwhile
            if entry is not None and entry.cached.fingerprint == fp:
                return entry.cached
            return self._store(key, self._run(session, batch_id, fp))

    def _may_serve_stale(self, cached: Cached[T]) -> bool:
        age = (utcnow() - cached.computed_at).total_seconds()
        return cached.seconds >= self.sync_limit and age <= self.max_stale

    def _run(self, session: Session, batch_id: int, fp: Hashable) -> Cached[T]:
        started, at = time.perf_counter(), utcnow()
        value = self.compute(session, batch_id)
        return Cached(value, fp, at, time.perf_counter() - started)

    def _entry(self, key: tuple[str, int]) -> _Entry[T] | None:
        with self._guard:
            return self._entries.get(key)

    def _store(self, key: tuple[str, int], cached: Cached[T]) -> Cached[T]:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(cached)
            elif cached.computed_at >= entry.cached.computed_at:  # never replace a newer one
                entry.cached = cached
            else:
                cached = entry.cached
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return cached

    def _lock_for(self, key: tuple[str, int]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _start_first(self, engine: Engine, key: tuple[str, int], batch_id: int) -> None:
        with self._guard:
            if key in self._pending:
                return
            self._pending.add(key)

        def work() -> None:
            try:
                # No per-key lock here: a request computing the same key in the meantime may
                # hold SQLite's write lock while waiting for it.
                with Session(background(engine), expire_on_commit=False) as session:
                    fp = self.fingerprint(session, batch_id)
                    self._store(key, self._run(session, batch_id, fp))
            except Exception:
                log.exception("dashboard snapshot of batch %s failed", batch_id)
            finally:
                with self._guard:
                    self._pending.discard(key)

        threading.Thread(target=work, name=f"dashboard-{batch_id}", daemon=True).start()

    def _maybe_refresh(
        self, engine: Engine, key: tuple[str, int], batch_id: int, entry: _Entry[T]
    ) -> None:
        now = time.monotonic()
        with self._guard:
            interval = max(self.min_interval, 2 * entry.cached.seconds)
            if entry.refreshing or now - entry.last_refresh < interval:
                return
            entry.refreshing, entry.last_refresh = True, now

        def work() -> None:
            try:
                with Session(background(engine), expire_on_commit=False) as session:
                    fp = self.fingerprint(session, batch_id)
                    self._store(key, self._run(session, batch_id, fp))
            except Exception:  # a failed refresh keeps the old snapshot; the next one retries
                log.exception("dashboard snapshot of batch %s failed", batch_id)
            finally:
                with self._guard:
                    entry.refreshing = False

        threading.Thread(target=work, name=f"dashboard-{batch_id}", daemon=True).start()
