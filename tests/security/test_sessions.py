"""Sessions end on the server: after logout, a password change or a deactivation, a copy of
the old cookie no longer works anywhere (pages, the API, the queue's hot path)."""

from __future__ import annotations

import httpx
import pytest

from app.core.cookies import SESSION_COOKIE
from tests.security.conftest import PASSWORD, Site, page_token

# Each test here talks to the real server.
pytestmark = pytest.mark.live


def _copy(site: Site, browser: httpx.Client) -> httpx.Client:
    """Another client holding the same session cookie (a stolen or copied cookie)."""
    thief = site.browser()
    thief.cookies.set(SESSION_COOKIE, browser.cookies[SESSION_COOKIE])
    return thief


def _works(client: httpx.Client, batch: int, token: str) -> dict[str, int]:
    """What the cookie gets: a page, the API, and the queue's `next` (a POST with the token)."""
    return {
        "page": client.get("/account/password").status_code,
        "api": client.get("/api/v1/me").status_code,
        "next": client.post(
            f"/api/v1/batches/{batch}/next", headers={"X-CSRF-Token": token}
        ).status_code,
    }


ALIVE = {"page": 200, "api": 200, "next": 200}
DEAD = {"page": 303, "api": 401, "next": 401}


def test_logout_ends_the_session_for_every_copy_of_the_cookie(site: Site) -> None:
    alice = site.account()
    batch = site.batch([alice])
    browser = site.logged_in(alice)
    token = page_token(browser)
    thief = _copy(site, browser)
    assert _works(thief, batch, token) == ALIVE
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 303
    assert SESSION_COOKIE not in browser.cookies
    assert _works(thief, batch, token) == DEAD
    # Her API token is a separate credential and still works; she can log in again.
    assert site.api("GET", "/api/v1/me", alice.token).status_code == 200
    again = site.logged_in(alice)
    assert again.get("/account/password").status_code == 200


def _change_password(browser: httpx.Client, new: str) -> httpx.Response:
    return browser.post(
        "/account/password",
        data={
            "csrf_token": page_token(browser),
            "current_password": PASSWORD,
            "new_password": new,
            "repeat_password": new,
        },
    )


def test_a_password_change_ends_the_other_sessions_but_keeps_this_one(site: Site) -> None:
    alice = site.account()
    batch = site.batch([alice])
    here, elsewhere = site.logged_in(alice), site.logged_in(alice)
    old_token = page_token(here)
    copy_of_here, elsewhere_token = _copy(site, here), page_token(elsewhere)
    changed = _change_password(here, "a new and better secret")
    assert changed.status_code == 303
    assert here.get("/account/password").status_code == 200
    assert _works(elsewhere, batch, elsewhere_token) == DEAD
    # The cookie this browser had before the change died too (it was given a new one).
    assert _works(copy_of_here, batch, old_token) == DEAD


def test_a_password_change_through_the_api_with_a_cookie_ends_the_old_cookie(site: Site) -> None:
    alice = site.account()
    browser = site.logged_in(alice)
    token = page_token(browser)
    thief = _copy(site, browser)
    answer = browser.put(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "yet another secret"},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status_code == 204, answer.text
    assert browser.get("/api/v1/me").status_code == 200
    assert thief.get("/api/v1/me").status_code == 401


def test_deactivation_ends_sessions_and_tokens(site: Site) -> None:
    admin, alice = site.account("admin"), site.account()
    batch = site.batch([alice])
    browser = site.logged_in(alice)
    token = page_token(browser)
    assert _works(browser, batch, token) == ALIVE
    deactivated = site.api("POST", f"/api/v1/users/{alice.username}/deactivate", admin.token)
    assert deactivated.status_code == 200
    assert _works(browser, batch, token) == DEAD
    assert site.api("GET", "/api/v1/me", alice.token).status_code == 401
