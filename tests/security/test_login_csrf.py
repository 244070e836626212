"""Login CSRF and cross-site requests, on a live server.

A forged login (a page on another site posting a known account's credentials) must not log a
victim in: the login form's token is bound to a random cookie that only the login page sets,
a login without that cookie is refused, and browsers' `Sec-Fetch-Site` / `Origin` headers are
checked on every cookie-authenticated unsafe request.
"""

from __future__ import annotations

import re

import httpx
import pytest

from app.core.cookies import SESSION_COOKIE
from tests.security.conftest import PASSWORD, Site, csrf_in, page_token

# Each test here talks to the real server.
pytestmark = pytest.mark.live

_HX_TOKEN = re.compile(r'"X-CSRF-Token": "([0-9a-f]*)"')


def _login_data(username: str, token: str) -> dict[str, str]:
    return {"username": username, "password": PASSWORD, "csrf_token": token}


def test_a_page_shown_without_cookies_carries_no_usable_token(site: Site) -> None:
    alice = site.account()
    # What an attacker's own cookie-less client sees on any page but the login form.
    page = httpx.get(f"{site.url}/no/such/page", timeout=30)
    found = _HX_TOKEN.search(page.text)
    assert found is not None
    assert found.group(1) == ""
    # Whatever it is, a login posted without the login page's cookie is refused, with a page
    # that says what to do.
    for token in (found.group(1), "0" * 64):
        forged = httpx.post(
            f"{site.url}/login", data=_login_data(alice.username, token), timeout=30
        )
        assert forged.status_code == 403
        assert "Reload the login page" in forged.text and "allow cookies" in forged.text
        assert SESSION_COOKIE not in forged.cookies


def test_a_login_without_the_presession_cookie_is_refused_even_with_a_valid_token(
    site: Site,
) -> None:
    alice = site.account()
    form = httpx.get(f"{site.url}/login", timeout=30)
    token = csrf_in(form.text)
    bare = httpx.post(f"{site.url}/login", data=_login_data(alice.username, token), timeout=30)
    assert bare.status_code == 403 and SESSION_COOKIE not in bare.cookies


def test_each_login_form_has_its_own_token(site: Site) -> None:
    alice = site.account()
    victim, attacker = site.browser(), site.browser()
    victim_token = csrf_in(victim.get("/login").text)
    attacker_token = csrf_in(attacker.get("/login").text)
    assert victim_token != attacker_token
    # The attacker's token is worthless with the victim's cookie.
    forged = victim.post("/login", data=_login_data(alice.username, attacker_token))
    assert forged.status_code == 403 and SESSION_COOKIE not in victim.cookies
    assert victim.post("/login", data=_login_data(alice.username, victim_token)).status_code == 303


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
    ],
    ids=["fetch-cross-site", "fetch-same-site", "origin-other", "origin-null"],
)
def test_cross_site_requests_are_refused_even_with_the_token(
    site: Site, headers: dict[str, str]
) -> None:
    alice = site.account()
    # The login form itself.
    browser = site.browser()
    token = csrf_in(browser.get("/login").text)
    refused = browser.post("/login", data=_login_data(alice.username, token), headers=headers)
    assert refused.status_code == 403 and "cross-site request refused" in refused.text
    assert SESSION_COOKIE not in browser.cookies
    # A logged-in form: changing the password.
    browser = site.logged_in(alice)
    token = page_token(browser)
    change = {
        "csrf_token": token,
        "current_password": PASSWORD,
        "new_password": "a brand new secret",
        "repeat_password": "a brand new secret",
    }
    refused = browser.post("/account/password", data=change, headers=headers)
    assert refused.status_code == 403 and "cross-site request refused" in refused.text
    # Nothing changed: the old password still logs in.
    site.logged_in(alice)


def test_same_origin_and_header_less_clients_pass_with_the_token(site: Site) -> None:
    alice = site.account()
    host = site.url.removeprefix("http://")
    for headers in (
        {"Sec-Fetch-Site": "same-origin", "Origin": site.url},
        {"Origin": site.url, "Host": host},
        {},
    ):
        browser = site.browser()
        token = csrf_in(browser.get("/login").text)
        answer = browser.post("/login", data=_login_data(alice.username, token), headers=headers)
        assert answer.status_code == 303, (headers, answer.text[:300])
        # Logged in: a cookie POST with the session's token works, without the token it does not.
        session_token = page_token(browser)
        assert (
            browser.post("/logout", headers={**headers, "X-CSRF-Token": session_token}).status_code
            == 303
        )
    # Bearer requests are not cookie-authenticated (a browser never adds the header cross-site):
    # their Origin does not matter.
    changed = site.api(
        "PUT",
        "/api/v1/me/password",
        alice.token,
        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        json={"current_password": PASSWORD, "new_password": "another fine secret"},
    )
    assert changed.status_code == 204, changed.text
