"""Login, cookies, CSRF and login throttling, driven through the real pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import LoginFailure
from app.config import get_settings
from app.core.cookies import PRESESSION_COOKIE, SESSION_COOKIE
from app.db import utcnow
from tests.support.authkit import PASSWORD, csrf_from, logged_in, login

MakeUser = Callable[..., tuple[Any, str]]


@pytest.fixture
def secure_cookies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SAFEPREF_COOKIE_SECURE", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def set_cookie_headers(response: Any) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie") if "=" in h}


# --- login and cookies ---------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_lax(
    client: TestClient, make_user: MakeUser
) -> None:
    make_user("ann")
    response = login(client, "ann", next="/account/password")
    assert response.status_code == 303
    assert response.headers["location"] == "/account/password"
    cookie = set_cookie_headers(response)[SESSION_COOKIE].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie.replace("safepref_session", "")
    presession = set_cookie_headers(TestClient(client.app).get("/login"))
    assert "httponly" in presession[PRESESSION_COOKIE].lower()


def test_cookies_are_secure_when_configured(
    app: FastAPI, make_user: MakeUser, secure_cookies: None
) -> None:
    make_user("ben")
    # An https base URL so that the client sends Secure cookies back.
    client = TestClient(app, base_url="https://testserver")
    response = login(client, "ben")
    assert response.status_code == 303
    assert "; secure" in set_cookie_headers(response)[SESSION_COOKIE].lower()
    assert "max-age=31536000" in response.headers["strict-transport-security"]


def test_wrong_password_and_unknown_user_look_the_same(
    client: TestClient, make_user: MakeUser
) -> None:
    make_user("cy")
    wrong = login(client, "cy", "not-the-password")
    unknown = login(client, "nobody-here", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password." in wrong.text and "Wrong username" in unknown.text
    assert SESSION_COOKIE not in client.cookies


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_login_redirects_only_within_the_site(
    client: TestClient, make_user: MakeUser, target: str
) -> None:
    make_user("dee")
    response = login(client, "dee", next=target)
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_logout_ends_the_browser_session(client: TestClient, make_user: MakeUser) -> None:
    make_user("eve")
    csrf = logged_in(client, "eve")
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert SESSION_COOKIE not in client.cookies
    page = client.get("/account/password", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")


def test_an_expired_session_sends_htmx_calls_to_the_login_page(client: TestClient) -> None:
    # A fragment refresh must not swap the login page into part of a page.
    plain = client.get("/overview", follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == "/login?next=/overview"
    htmx = client.get("/overview", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 204
    assert htmx.headers["HX-Redirect"] == "/login?next=/overview"


# --- CSRF ------------------------------------------------------------------------------------


def test_cookie_post_without_the_token_is_refused_and_with_it_accepted(
    app: FastAPI, make_user: MakeUser
) -> None:
    make_user("fay", "admin")
    browser = TestClient(app)
    csrf = logged_in(browser, "fay")
    body = {"username": "u-csrf", "password": "password-9", "role": "annotator"}

    refused = browser.post("/api/v1/users", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    wrong = browser.post("/api/v1/users", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    accepted = browser.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 201

    form = {"username": "u-form", "password": "password-9", "role": "annotator"}
    page = browser.post("/users", data=form, follow_redirects=False)
    assert page.status_code == 403 and "CSRF" in page.text
    page = browser.post("/users", data={**form, "csrf_token": csrf}, follow_redirects=False)
    assert page.status_code == 303


def test_a_token_from_another_session_is_refused(app: FastAPI, make_user: MakeUser) -> None:
    make_user("gus", "admin")
    mine, theirs = TestClient(app), TestClient(app)
    logged_in(mine, "gus")
    their_csrf = logged_in(theirs, "gus")
    body = {"username": "u-other", "password": "password-9", "role": "annotator"}
    response = mine.post("/api/v1/users", json=body, headers={"X-CSRF-Token": their_csrf})
    assert response.status_code == 403


def test_bearer_requests_need_no_csrf_token(
    client: TestClient, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    make_user("hal")
    logged_in(client, "hal")  # a session cookie as well: the bearer token still decides
    body = {"username": "u-bearer", "password": "password-9", "role": "annotator"}
    assert client.post("/api/v1/users", json=body, headers=admin_headers).status_code == 201


def test_the_login_form_is_protected_too(app: FastAPI, make_user: MakeUser) -> None:
    make_user("ida")
    data = {"username": "ida", "password": PASSWORD}
    cold = TestClient(app)
    assert cold.post("/login", data=data).status_code == 403  # never saw the form
    attacker = TestClient(app)
    attacker_csrf = csrf_from(attacker.get("/login").text)
    victim = TestClient(app)
    victim.get("/login")
    forged = victim.post("/login", data={**data, "csrf_token": attacker_csrf})
    assert forged.status_code == 403
    assert login(TestClient(app), "ida").status_code == 303


def test_multipart_forms_carry_the_token_as_a_field(
    app: FastAPI, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    make_user("jo", "admin")
    browser = TestClient(app)
    csrf = logged_in(browser, "jo")
    project = browser.post(
        "/api/v1/projects", json={"name": "csrf-upload"}, headers={"X-CSRF-Token": csrf}
    )
    assert project.status_code == 201, project.text
    url = f"/api/v1/projects/{project.json()['id']}/imports"
    line = b'{"prompt": "p", "responses": ["a", "b"]}\n'
    files = {"file": ("d.jsonl", line * 3, "application/jsonl")}
    assert browser.post(url, files=files).status_code == 403
    accepted = browser.post(url, data={"csrf_token": csrf}, files=files)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["items_created"] == 1


# --- throttling ------------------------------------------------------------------------------


def from_address(app: FastAPI, address: str) -> TestClient:
    return TestClient(app, client=(address, 40000))


def test_ten_failures_lock_that_user_from_that_address_only(
    app: FastAPI, make_user: MakeUser, db: Session
) -> None:
    make_user("kay")
    attacker = from_address(app, "192.0.2.10")
    for _ in range(10):
        assert login(attacker, "kay", "guess-guess").status_code == 401
    locked = login(attacker, "kay")  # even the right password
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
    assert "Too many failed attempts" in locked.text
    # Another account from the same address (a colleague behind the same NAT) logs in...
    make_user("lou")
    assert login(attacker, "lou").status_code == 303
    # ...and so does the real user, elsewhere.
    assert login(from_address(app, "198.51.100.7"), "kay").status_code == 303
    count = db.scalar(select(func.count()).select_from(LoginFailure))
    assert count == 10  # refused attempts are not recorded, so hammering does not extend it


def test_an_address_spraying_many_accounts_is_locked_at_the_address_limit(
    app: FastAPI, make_user: MakeUser, db: Session
) -> None:
    limit = get_settings().login_address_max_failures
    assert limit > get_settings().login_max_failures
    make_user("rae")
    now = utcnow()
    # One failure each for many usernames: no pair, no username is near its own limit.
    db.add_all(
        LoginFailure(username=f"sprayed-{i}", client="192.0.2.11", created_at=now)
        for i in range(limit - 1)
    )
    db.commit()
    sprayer = from_address(app, "192.0.2.11")
    assert login(sprayer, "rae").status_code == 303  # below the limit: not locked
    assert login(sprayer, "sprayed-last", "guess-guess").status_code == 401  # the limit
    assert login(sprayer, "rae").status_code == 429  # now locked for every username
    assert login(from_address(app, "192.0.2.12"), "rae").status_code == 303


def test_distributed_guessing_locks_each_guessing_address_for_that_user(
    app: FastAPI, make_user: MakeUser, db: Session
) -> None:
    make_user("max")
    make_user("ned")
    now = utcnow()
    db.add_all(
        LoginFailure(username="max", client=f"203.0.113.{i}", created_at=now) for i in range(9)
    )
    db.commit()
    last = from_address(app, "203.0.113.9")
    assert login(last, "max", "guess-guess").status_code == 401  # the tenth failure
    for i in (0, 5, 9):
        assert login(from_address(app, f"203.0.113.{i}"), "max").status_code == 429
    # One failure does not lock an address for other accounts.
    assert login(from_address(app, "203.0.113.5"), "ned").status_code == 303
    # The real user from an address that never failed is not locked out.
    assert login(from_address(app, "198.51.100.20"), "max").status_code == 303


def test_failures_older_than_the_window_do_not_count(
    app: FastAPI, make_user: MakeUser, db: Session
) -> None:
    make_user("ola")
    old = utcnow() - timedelta(minutes=16)
    db.add_all(LoginFailure(username="ola", client="192.0.2.50", created_at=old) for _ in range(12))
    db.commit()
    browser = from_address(app, "192.0.2.50")
    assert login(browser, "ola", "wrong-wrong").status_code == 401
    # The failure above also cleared this address's expired rows.
    assert db.scalar(select(func.count()).select_from(LoginFailure)) == 1
    assert login(browser, "ola").status_code == 303


def test_a_successful_login_clears_its_own_failures(
    app: FastAPI, make_user: MakeUser, db: Session
) -> None:
    make_user("pat")
    browser = from_address(app, "192.0.2.60")
    for _ in range(3):
        login(browser, "pat", "wrong-wrong")
    other = LoginFailure(username="someone-else", client="192.0.2.60")
    db.add(other)
    db.commit()
    assert login(browser, "pat").status_code == 303
    left = db.scalars(select(LoginFailure.username)).all()
    assert left == ["someone-else"]


def test_guessing_the_current_password_counts_as_failed_logins(
    app: FastAPI, make_user: MakeUser, db: Session
) -> None:
    _, token = make_user("quinn")
    api = from_address(app, "192.0.2.70")
    auth = {"Authorization": f"Bearer {token}"}
    body = {"current_password": "guess-guess", "new_password": "quinn-new-password"}
    for _ in range(10):
        assert api.put("/api/v1/me/password", json=body, headers=auth).status_code == 422
    body["current_password"] = PASSWORD
    locked = api.put("/api/v1/me/password", json=body, headers=auth)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert login(from_address(app, "192.0.2.70"), "quinn").status_code == 429
    assert login(from_address(app, "198.51.100.70"), "quinn").status_code == 303
