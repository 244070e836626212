"""Test fixtures: every database test runs on SQLite and on a real PostgreSQL server.

The schema is built with the migrations; each test runs inside a transaction that is rolled
back, and the app's session is swapped in through `dependency_overrides`.
PostgreSQL comes from SAFEPREF_TEST_POSTGRES_URL (scripts/test.sh and .ci/run start one);
under CI=true a missing server or browser fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

os.environ.setdefault("SAFEPREF_SECRET_KEY", "test-" + uuid.uuid4().hex * 2)
os.environ.setdefault("SAFEPREF_ENVIRONMENT", "development")
# argon2 at its lowest cost (development only): accounts are created by the hundred in tests.
os.environ.setdefault("SAFEPREF_PASSWORD_HASH_COST", "minimal")

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.orm import Session

from app import migrate
from app.config import Settings
from app.db import get_session, make_engine
from app.main import create_app

BACKENDS = ("sqlite", "postgresql")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip locally; under CI a missing dependency is a failure, never a silent skip."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required)", pytrace=False)
    pytest.skip(reason)


def postgres_admin_url() -> str | None:
    return os.environ.get("SAFEPREF_TEST_POSTGRES_URL") or None


class DatabaseFactory:
    """Makes empty databases on one backend; drops the PostgreSQL ones at the end."""

    def __init__(self, backend: str, tmp_dir: str) -> None:
        self.backend = backend
        self.tmp_dir = tmp_dir
        self.created: list[str] = []

    def new_url(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp_dir}/{name}.db"
        admin = postgres_admin_url()
        assert admin is not None
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        self.created.append(name)
        return make_url(admin).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        admin = postgres_admin_url()
        if not self.created or admin is None:
            return
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self.created:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgresql" and postgres_admin_url() is None:
        missing("PostgreSQL not available: set SAFEPREF_TEST_POSTGRES_URL")
    return name


@pytest.fixture(scope="session")
def databases(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(backend, str(tmp_path_factory.mktemp(f"db-{backend}")))
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def engine(databases: DatabaseFactory) -> Iterator[Engine]:
    eng = make_engine(Settings(database_url=databases.new_url()))
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test; commits become savepoints."""
    conn = engine.connect()
    outer = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        conn.close()


@pytest.fixture
def app(db: Session) -> FastAPI:
    application = create_app()

    def session_override() -> Iterator[Session]:
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise

    application.dependency_overrides[get_session] = session_override
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def make_user(db: Session) -> Callable[..., tuple[object, str]]:
    """make_user("alice", "annotator") -> (user, bearer token)."""
    from app.auth.service import create_token, create_user

    def factory(username: str | None = None, role: str = "annotator") -> tuple[object, str]:
        user = create_user(db, username or f"u{uuid.uuid4().hex[:8]}", "password-123", role)
        _, token = create_token(db, user)
        # Committed (a savepoint release): a request that fails and rolls back keeps the user.
        db.commit()
        return user, token

    return factory


@pytest.fixture
def admin_headers(make_user: Callable[..., tuple[object, str]]) -> dict[str, str]:
    _, token = make_user("admin-" + uuid.uuid4().hex[:6], "admin")
    return {"Authorization": f"Bearer {token}"}
