"""The security suite: the real `safepref serve` on a fresh database of each backend, and
callers that behave like browsers (real cookies, the login form's CSRF token) or API clients.

One server per backend serves the whole suite; each test makes the accounts and batches it
needs, so tests that log out, change passwords or deactivate accounts affect nobody else.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app import migrate
from app.auth.models import User
from app.auth.service import create_token, create_user
from app.batches.service import add_member, create_batch
from app.config import Settings
from app.db import make_engine
from tests.support.live_server import ROOT, app_server
from tests.support.queue_factory import seed_project

__all__ = ["ROOT"]

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_in(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


@dataclass
class Account:
    id: int
    username: str
    token: str


@dataclass
class Site:
    """The running server and a way into its database."""

    url: str
    backend: str
    database_url: str
    engine: Engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            yield s

    def account(self, role: str = "annotator", password: str = PASSWORD) -> Account:
        with self.session() as s:
            user = create_user(s, f"{role[:3]}-{uuid.uuid4().hex[:10]}", password, role)
            _, token = create_token(s, user, "security tests")
            return Account(user.id, user.username, token)

    def batch(self, members: list[Account], items: int = 3) -> int:
        with self.session() as s:
            project, _ = seed_project(s, items)
            batch = create_batch(s, project, f"b-{uuid.uuid4().hex[:6]}", overlap=2)
            for member in members:
                user = s.get(User, member.id)
                assert user is not None
                add_member(s, batch, user)
            return batch.id

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def browser(self) -> httpx.Client:
        """A cookie jar that does not follow redirects (tests look at each answer)."""
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)

    def logged_in(self, account: Account, password: str = PASSWORD) -> httpx.Client:
        client = self.browser()
        form = client.get("/login")
        assert form.status_code == 200, form.text
        answer = client.post(
            "/login",
            data={
                "username": account.username,
                "password": password,
                "csrf_token": csrf_in(form.text),
            },
        )
        assert answer.status_code == 303, answer.text
        return client


@pytest.fixture(scope="session")
def site(databases: Any) -> Iterator[Site]:
    url = databases.new_url()
    engine = make_engine(Settings(database_url=url))
    migrate.upgrade(engine)
    secret = "security-" + uuid.uuid4().hex
    try:
        with app_server(url, workers=1, secret=secret) as base:
            yield Site(base, databases.backend, url, engine)
    finally:
        engine.dispose()


def page_token(client: httpx.Client, path: str = "/account/password") -> str:
    """The CSRF token of this browser's session, read from a page as a form would."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    return csrf_in(page.text)
