"""Engine, declarative base and the one-session-per-request dependency."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, ClassVar, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeDecorator

from app.config import Settings, get_settings
from app.files import make_private

T = TypeVar("T")

# Execution option (and Session.info key) of read-only work; see `_configure_sqlite`.
READ_ONLY = "safepref_read_only"
BACKGROUND = "safepref_background"
READ_METHODS = frozenset({"GET", "HEAD"})

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
        # A read-only transaction (`reading`) is deferred: it takes no lock, and in WAL mode it
        # neither waits for writers nor holds them up. Everything else takes the write lock up
        # front (IMMEDIATE), waiting for it under busy_timeout.
        #
        # Why no path can get "database is locked" from a deferred transaction: that error
        # comes from a deferred transaction that has read and then tries to write after
        # another connection committed (its snapshot is stale, so SQLite fails it at once
        # instead of waiting). `query_only` makes any write in a read-only transaction fail on
        # every run, whatever the timing, so a read path that writes is caught by the first
        # test that takes it, never by a race in production. A read request that must record
        # something does it apart, in a short write transaction of its own (`write_apart`).
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("PRAGMA query_only = ON")
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("PRAGMA query_only = OFF")
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(settings: Settings) -> Engine:
    url = settings.database_url
    if settings.is_sqlite:
        path = settings.sqlite_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Before SQLite creates it (with the umask's mode), and its -wal and -shm after it.
            for part in (
                path,
                path.with_name(path.name + "-wal"),
                path.with_name(path.name + "-shm"),
            ):
                if part == path or part.exists():
                    make_private(part)
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
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args={"connect_timeout": settings.db_connect_timeout_seconds, "options": options},
    )
    background_ms = settings.db_background_statement_timeout_ms

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Local to the transaction: the pooled connection keeps the request timeout after it.
        if conn.get_execution_options().get(BACKGROUND):
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {background_ms}")

    return engine


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings())


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    """Sessions that may write (on SQLite: BEGIN IMMEDIATE)."""
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@lru_cache
def get_read_sessionmaker() -> sessionmaker[Session]:
    """Sessions that only read (on SQLite: a deferred, query-only transaction; elsewhere the
    same sessions as `get_sessionmaker`)."""
    engine = get_engine()
    if engine.dialect.name != "sqlite":
        return get_sessionmaker()
    return sessionmaker(bind=reading(engine), expire_on_commit=False, info={READ_ONLY: True})


def reading(engine: Engine) -> Engine:
    """`engine` for read-only work: on SQLite its transactions are deferred and refuse writes
    (see `_configure_sqlite`); elsewhere it is `engine` itself."""
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(**{READ_ONLY: True})


def background(engine: Engine) -> Engine:
    """`reading(engine)` for work in a background thread: on PostgreSQL its transactions run
    under `db_background_statement_timeout_ms` instead of the request timeout."""
    return reading(engine).execution_options(**{BACKGROUND: True})


def write_apart(session: Session, statement: Executable) -> None:
    """Runs a small write that a read request has to make (a token's last use): in `session`
    when it may write, else in a short write transaction of its own, so that the request's
    read transaction never turns into a write (see `_configure_sqlite`)."""
    if not session.info.get(READ_ONLY):
        session.execute(statement)
        return
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    with Session(bind.execution_options(**{READ_ONLY: False})) as writer, writer.begin():
        writer.execute(statement)


@contextmanager
def writing(session: Session) -> Iterator[Session]:
    """A session that may write, for a read request whose visit must create something (a
    crowd participant's account): `session` itself when it may write, else a write
    transaction of its own, committed on leaving the block (objects read through `session`
    before the block are then expired: read again through the writer)."""
    if not session.info.get(READ_ONLY):
        yield session
        return
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    # The read transaction ends first, giving its connection back: a request never holds two
    # pooled connections (with every request in the gate doing so, the pool would run dry).
    session.rollback()
    writer = Session(bind.execution_options(**{READ_ONLY: False}), expire_on_commit=False)
    with writer, writer.begin():
        yield writer


def _transaction(maker: sessionmaker[Session]) -> Iterator[Session]:
    session = maker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_session(request: Request) -> Iterator[Session]:
    """One session per request. Services flush; this commits, or rolls back on any error.

    GET and HEAD requests read only: on SQLite they get a deferred transaction, and take no
    write lock (`get_read_sessionmaker`). Every other method may write and begins with the
    write lock."""
    read_only = request.method in READ_METHODS
    yield from _transaction(get_read_sessionmaker() if read_only else get_sessionmaker())


@contextmanager
def _write_transaction() -> Iterator[Session]:
    yield from _transaction(get_sessionmaker())


# scope="function": the commit happens before the response leaves, so an acknowledged write
# is a committed write.
DbSession = Annotated[Session, Depends(get_session, scope="function")]


async def run_in_session(request: Request, work: Callable[[Session], T]) -> T:
    """Runs `work` with a write session (or the override of `get_session`) in one worker
    thread, committing before it returns: what an async endpoint
    does instead of a `DbSession` parameter. The hot endpoints use it, because each sync
    dependency or endpoint is a thread hop of its own, and those hops cost more CPU than the
    queue's work does."""
    override = request.app.dependency_overrides.get(get_session)
    scope = contextmanager(override)() if override else _write_transaction()

    def run() -> T:
        with scope as session:
            return work(session)

    return await run_in_threadpool(run)
