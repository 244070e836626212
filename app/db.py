"""Engine, declarative base and the one-session-per-request dependency."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, ClassVar, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event, make_url
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from app.config import Settings, get_settings

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: two deferred transactions that both read then write
        # would otherwise deadlock and one would fail with "database is locked".
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(settings: Settings) -> Engine:
    url = settings.database_url
    if settings.is_sqlite:
        path = settings.sqlite_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # A file database: as many pooled connections as worker threads (app/main.py), as on
        # PostgreSQL. (An in-memory one has a single connection: nothing to size.)
        pool = (
            {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow}
            if path is not None
            else {}
        )
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        _configure_sqlite(engine)
        return engine
    options = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args={"connect_timeout": settings.db_connect_timeout_seconds, "options": options},
    )


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings())


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def get_session() -> Iterator[Session]:
    """One session per request. Services flush; this commits, or rolls back on any error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": the commit happens before the response leaves, so an acknowledged write
# is a committed write.
DbSession = Annotated[Session, Depends(get_session, scope="function")]


async def run_in_session(request: Request, work: Callable[[Session], T]) -> T:
    """Runs `work` with the request's session (the `get_session` dependency, or its
    override) in one worker thread, committing before it returns: what an async endpoint
    does instead of a `DbSession` parameter. The hot endpoints use it, because each sync
    dependency or endpoint is a thread hop of its own, and those hops cost more CPU than the
    queue's work does."""
    provider = request.app.dependency_overrides.get(get_session, get_session)

    def run() -> T:
        with contextmanager(provider)() as session:
            return work(session)

    return await run_in_threadpool(run)


class HotPool:
    """PostgreSQL connections for the queue's hot path (`next` and the submit): psycopg's
    async pool in autocommit mode, used from the event loop. No worker thread, no ORM session,
    no BEGIN or COMMIT: one round trip per call of a queue function (app/batches/queue_pg.py).
    Opened on first use, in the loop that serves the app; closed with the app's lifespan.

    Not used while `get_session` is overridden: tests run each case in one transaction that is
    rolled back, which only the overriding session can see. The live-server tests
    (tests/queue/test_queue_concurrency.py, with a PostgreSQL restart) exercise this path.
    """

    def __init__(self, settings: Settings) -> None:
        url = make_url(settings.database_url).set(drivername="postgresql")
        self._pool = AsyncConnectionPool(
            url.render_as_string(hide_password=False),
            min_size=1,
            max_size=settings.db_hot_pool_size,
            # Waiting longer than a connect would take means the database is gone: 503.
            timeout=settings.db_connect_timeout_seconds,
            open=False,
            kwargs={
                "autocommit": True,
                "connect_timeout": settings.db_connect_timeout_seconds,
                "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
            },
        )
        self._opened = False

    async def get(self) -> AsyncConnectionPool:
        if not self._opened:
            self._opened = True
            await self._pool.open(wait=False)
        return self._pool

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()

    def stats(self) -> dict[str, int] | None:
        """The pool's sizes (psycopg_pool's `get_stats`), None before first use."""
        return self._pool.get_stats() if self._opened else None


async def hot_pool(request: Request) -> AsyncConnectionPool | None:
    """The hot path's pool on PostgreSQL; None on SQLite or while `get_session` is
    overridden (then the request's session serves, through `run_in_session`)."""
    pool: HotPool | None = getattr(request.app.state, "hot_pool", None)
    if pool is None or get_session in request.app.dependency_overrides:
        return None
    return await pool.get()
