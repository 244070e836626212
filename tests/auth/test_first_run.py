"""First run without a terminal: the one-time setup link creates the first admin."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app import migrate
from app.auth.first_run import complete_setup, issue_setup_token, setup_token_valid
from app.auth.models import SetupToken, User
from app.auth.security import token_digest
from app.config import Settings
from app.core.cookies import SESSION_COOKIE
from app.db import make_engine
from app.errors import NotFound
from tests.support.authkit import csrf_from
from tests.support.live_server import app_server
from tests.support.locks import wait_until_blocked

GOOD = {"username": "root", "password": "first-admin-pw", "repeat_password": "first-admin-pw"}


def admins(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(User.role == "admin")) or 0)


def test_setup_link_creates_the_first_admin_once(client: TestClient, db: Session) -> None:
    token = issue_setup_token(db)
    assert token is not None
    db.commit()
    stored = db.scalars(select(SetupToken.token_hash)).all()
    assert token_digest(token) in stored and token not in stored  # only the hash is kept

    page = client.get(f"/setup/{token}")
    assert page.status_code == 200 and "Create admin account" in page.text
    csrf = csrf_from(page.text)
    # Without its CSRF token the form is refused, and nothing is created.
    assert client.post(f"/setup/{token}", data=GOOD).status_code == 403
    # A refused form leaves the link usable.
    short = {**GOOD, "password": "short", "repeat_password": "short", "csrf_token": csrf}
    refused = client.post(f"/setup/{token}", data=short)
    assert refused.status_code == 422 and "at least 8" in refused.text
    differ = {**GOOD, "repeat_password": "other-password", "csrf_token": csrf}
    assert client.post(f"/setup/{token}", data=differ).status_code == 422
    assert admins(db) == 0 and setup_token_valid(db, token)

    done = client.post(f"/setup/{token}", data={**GOOD, "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303 and client.cookies.get(SESSION_COOKIE)
    assert client.get("/users").status_code == 200  # logged in as the new admin
    assert admins(db) == 1

    again = client.post(
        f"/setup/{token}", data={**GOOD, "username": "root2", "csrf_token": csrf_from(page.text)}
    )
    assert again.status_code in (403, 404)  # the session changed, then the link is spent
    client.cookies.clear()
    assert client.get(f"/setup/{token}").status_code == 404
    assert admins(db) == 1
    assert issue_setup_token(db) is None  # an admin exists: no new link


def test_unknown_link_and_a_newer_link_retires_the_older(client: TestClient, db: Session) -> None:
    assert client.get("/setup/not-a-token").status_code == 404
    first = issue_setup_token(db)
    second = issue_setup_token(db)
    assert first and second and first != second
    assert not setup_token_valid(db, first) and setup_token_valid(db, second)
    with pytest.raises(NotFound):
        complete_setup(db, first, "root", "first-admin-pw")


@pytest.fixture
def fresh_engine(databases) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    engine = make_engine(Settings(database_url=databases.new_url()))
    migrate.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def test_two_submits_of_one_link_create_one_admin(fresh_engine: Engine, backend: str) -> None:
    with Session(fresh_engine) as s, s.begin():
        token = issue_setup_token(s)
    assert token is not None
    first = Session(fresh_engine)
    complete_setup(first, token, "root", "first-admin-pw")  # not committed yet
    outcome: list[BaseException | None] = []

    def second() -> None:
        try:
            with Session(fresh_engine) as s, s.begin():
                complete_setup(s, token, "other", "other-admin-pw")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    if backend == "postgresql":
        # The second submit waits on the first's row lock, then finds the link used.
        thread = threading.Thread(target=second)
        thread.start()
        wait_until_blocked(fresh_engine, thread)
        first.commit()
        thread.join()
    else:
        # SQLite lets one writer in at a time: the second submit comes after the first.
        first.commit()
        second()
    first.close()
    assert len(outcome) == 1 and isinstance(outcome[0], NotFound)
    with Session(fresh_engine) as s:
        assert s.scalars(select(User.username).where(User.role == "admin")).all() == ["root"]


def test_serve_prints_a_working_setup_link(
    databases,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    url = databases.new_url()
    engine = make_engine(Settings(database_url=url))
    migrate.upgrade(engine)  # PostgreSQL is migrated by `safepref migrate`, not by serve
    log = tmp_path / "serve.log"
    try:
        with app_server(url, workers=1, secret="s" * 40, log_path=log) as base:
            found = re.search(r"http://\S+/setup/(\S+)", log.read_text())
            assert found, log.read_text()
            link = f"{base}/setup/{found.group(1)}"
            with httpx.Client() as browser:
                page = browser.get(link)
                assert page.status_code == 200
                assert page.headers["referrer-policy"] == "no-referrer"
                data = {**GOOD, "csrf_token": csrf_from(page.text)}
                created = browser.post(link, data=data, follow_redirects=False)
                assert created.status_code == 303 and browser.cookies.get(SESSION_COOKIE)
                assert browser.get(f"{base}/users").status_code == 200
            with httpx.Client() as other:
                assert other.get(link).status_code == 404
        with Session(engine) as s:
            assert admins(s) == 1
        # With an admin, serve prints no link.
        with app_server(url, workers=1, secret="s" * 40, log_path=log):
            assert "/setup/" not in log.read_text()
    finally:
        engine.dispose()
