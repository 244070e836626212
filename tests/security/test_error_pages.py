"""Error pages on a live server: every error a browser can meet is a page (or an HTMX fragment)
with its own status, for logged-in callers too, and the API keeps answering JSON.

Logged-in error pages used to be 500s: the failed request's session rolled back, which
detached the caller's row, and the page header then failed reading it. The in-process tests
could not see this (their session outlives the request), hence a real server here.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, make_url

from app import migrate
from app.auth.models import LoginFailure
from app.config import Settings
from app.db import make_engine, utcnow
from tests.conftest import DatabaseFactory, missing, postgres_admin_url
from tests.security.conftest import Site, page_token
from tests.support.live_server import app_server

# Each test here talks to the real server.
pytestmark = pytest.mark.live

HTMX = {"HX-Request": "true"}


def assert_page(answer: httpx.Response, status: int, *, who: str | None, htmx: bool) -> None:
    """An HTML error page (whole, or a fragment for HTMX) with the status in it."""
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    assert f"<h1>{status}</h1>" in answer.text
    whole = "<html" in answer.text
    assert whole is not htmx
    if who is not None and not htmx:
        # The header names the logged-in caller: the page was rendered with their account.
        assert who in answer.text


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_annotator_error_pages(site: Site, htmx: bool) -> None:
    alice, bob = site.account(), site.account()
    batch = site.batch([alice, bob])
    lease = site.api("POST", f"/api/v1/batches/{batch}/next", bob.token)
    assert lease.status_code == 200, lease.text
    bobs = lease.json()["assignment_id"]
    browser = site.logged_in(alice)
    headers = HTMX if htmx else {}

    # Someone else's assignment does not exist for her.
    assert_page(
        browser.get(f"/assignments/{bobs}", headers=headers), 404, who=alice.username, htmx=htmx
    )
    # Admin pages are forbidden.
    assert_page(browser.get("/users", headers=headers), 403, who=alice.username, htmx=htmx)
    # A path that matches no route, and a method that a route does not take.
    assert_page(browser.get("/no/such/page", headers=headers), 404, who=alice.username, htmx=htmx)
    assert_page(browser.get("/logout", headers=headers), 405, who=alice.username, htmx=htmx)
    # A path parameter of the wrong type is a 422 page, not JSON.
    bad = browser.get("/assignments/abc", headers=headers)
    assert_page(bad, 422, who=alice.username, htmx=htmx)
    assert "assignment_id" in bad.text


def test_skip_after_the_batch_closed_is_a_409_page(site: Site) -> None:
    admin, alice = site.account("admin"), site.account()
    batch = site.batch([alice])
    browser = site.logged_in(alice)
    lease = site.api("POST", f"/api/v1/batches/{batch}/next", alice.token).json()
    token = page_token(browser, f"/assignments/{lease['assignment_id']}")
    assert site.api("POST", f"/api/v1/batches/{batch}/close", admin.token).status_code == 200
    for headers in ({}, HTMX):
        skip = browser.post(
            f"/assignments/{lease['assignment_id']}/skip",
            data={"csrf_token": token, "reason": "unclear"},
            headers=headers,
        )
        assert_page(skip, 409, who=alice.username, htmx=bool(headers))


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_admin_error_pages(site: Site, htmx: bool) -> None:
    admin = site.account("admin")
    batch = site.batch([])
    browser = site.logged_in(admin)
    headers = HTMX if htmx else {}
    assert_page(browser.get("/batches/999999", headers=headers), 404, who=admin.username, htmx=htmx)
    assert_page(
        browser.get("/users/nobody-here", headers=headers), 404, who=admin.username, htmx=htmx
    )
    bad = browser.get(f"/batches/{batch}/dashboard?min_agreement=abc", headers=headers)
    assert_page(bad, 422, who=admin.username, htmx=htmx)
    assert "min_agreement" in bad.text
    # A query parameter the framework validates (an int) is a page too, naming the parameter.
    bad = browser.get(f"/batches/{batch}/mine?before=abc", headers=headers)
    assert_page(bad, 422, who=admin.username, htmx=htmx)
    assert "before" in bad.text and "abc" not in bad.text


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_logged_out_error_pages(site: Site, htmx: bool) -> None:
    browser = site.browser()
    headers = HTMX if htmx else {}
    assert_page(browser.get("/no/such/page", headers=headers), 404, who=None, htmx=htmx)
    assert_page(browser.get("/logout", headers=headers), 405, who=None, htmx=htmx)
    # A page that needs an account sends the browser to the login form (HTMX: HX-Redirect).
    answer = browser.get("/users", headers=headers)
    if htmx:
        assert answer.status_code == 204 and answer.headers["hx-redirect"] == "/login?next=/users"
    else:
        assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/users"
    # A wrong password is a 401 login page.
    form = browser.get("/login")
    wrong = browser.post(
        "/login",
        data={"username": "nobody", "password": "wrong-password", "csrf_token": _csrf(form)},
    )
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text


def _csrf(page: httpx.Response) -> str:
    from tests.security.conftest import csrf_in

    return csrf_in(page.text)


def test_too_many_attempts_is_a_429_page_for_a_logged_in_user(site: Site) -> None:
    alice = site.account()
    browser = site.logged_in(alice)
    token = page_token(browser)
    # Her username is under attack and this address has failed for it: locked (app/auth/throttle).
    with site.session() as s:
        now = utcnow() - timedelta(seconds=5)
        s.add_all(
            LoginFailure(username=alice.username, client=f"10.9.0.{i}", created_at=now)
            for i in range(10)
        )
        s.add(LoginFailure(username=alice.username, client="127.0.0.1", created_at=now))
    answer = browser.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current_password": "wrong wrong wrong",
            "new_password": "another good one",
            "repeat_password": "another good one",
        },
    )
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) > 0
    assert alice.username in answer.text and "Too many failed attempts" in answer.text


def test_api_errors_stay_json(site: Site) -> None:
    alice = site.account()
    for path, status in (
        ("/api/v1/no/such", 404),
        ("/api/v1/users", 403),
        ("/api/v1/batches/abc", 422),
    ):
        answer = site.api("GET", path, alice.token)
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/json"
        assert "detail" in answer.json()
    logged_out = site.api("GET", "/api/v1/me")
    assert logged_out.status_code == 401 and logged_out.json()["detail"]
    wrong_method = site.api("DELETE", "/api/v1/me", alice.token)
    assert wrong_method.status_code == 405 and wrong_method.json()["detail"]


def test_database_unavailable_is_a_503_page_and_json(tmp_path: Path) -> None:
    """PostgreSQL refusing connections: pages and fragments get a 503 page, the API JSON; all
    come back once it accepts them again. PostgreSQL only (SQLite has no server that could
    refuse), on a server and database of its own."""
    if postgres_admin_url() is None:
        missing("PostgreSQL not available: set SAFEPREF_TEST_POSTGRES_URL")
    databases = DatabaseFactory("postgresql", str(tmp_path))
    engine = None
    try:
        url = make_url(databases.new_url())
        engine = make_engine(Settings(database_url=url.render_as_string(hide_password=False)))
        migrate.upgrade(engine)
        with app_server(
            url.render_as_string(hide_password=False), workers=1, secret=uuid.uuid4().hex * 2
        ) as base:
            site = Site(base, "postgresql", url.render_as_string(hide_password=False), engine)
            alice = site.account()
            browser = site.logged_in(alice)
            admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")

            def allow(yes: bool) -> None:
                with admin.connect() as conn:
                    conn.exec_driver_sql(
                        f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS {str(yes).lower()}'
                    )
                    if not yes:
                        conn.exec_driver_sql(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            f"WHERE datname = '{url.database}' AND pid <> pg_backend_pid()"
                        )

            try:
                allow(False)
                assert_page(browser.get("/account/password"), 503, who=None, htmx=False)
                assert_page(
                    browser.get("/account/password", headers=HTMX), 503, who=None, htmx=True
                )
                api = site.api("GET", "/api/v1/me", alice.token)
                assert api.status_code == 503 and api.json()["detail"]
                assert api.headers["retry-after"]
            finally:
                allow(True)
                admin.dispose()
            assert browser.get("/account/password").status_code == 200
    finally:
        if engine is not None:
            engine.dispose()
        databases.drop_all()
