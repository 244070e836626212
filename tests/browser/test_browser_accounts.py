"""Accounts in a real browser: admin pages, a token shown once, password change, cookie flags,
and a forged cross-origin form that the CSRF check stops."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from app.auth.models import User
from tests.support.browserkit import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.live]


def test_admin_creates_an_account_and_a_token_then_the_user_changes_password(
    open_page: Any, live_server: Any
) -> None:
    name = "br-" + uuid.uuid4().hex[:6]
    page = open_page()
    login(page, "admin")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["safepref_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Lax"
    assert session["secure"] is False  # SAFEPREF_COOKIE_SECURE is not set here

    page.click("nav >> text=Users")
    screenshot(page, "users", live_server.backend)
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", "first-password")
    with page.expect_navigation():
        page.click("form[action='/users'] button[type=submit]")
    assert page.url.endswith(f"/users/{name}?done=created")
    assert page.locator("[role=status]").inner_text() == "Account created."

    page.fill("input[name=name]", "laptop script")
    with page.expect_navigation():
        page.click(f"form[action='/users/{name}/tokens'] button[type=submit]")
    token = page.locator("#new-token").inner_text()
    assert token.startswith("sp_")
    screenshot(page, "token-shown-once", live_server.backend)
    page.goto(f"/users/{name}")
    assert page.locator("#new-token").count() == 0 and token not in page.content()
    assert page.locator("td", has_text="laptop script").count() == 1

    # The new user, JavaScript off: log in, change the password through the plain form.
    plain = open_page(js=False)
    login(plain, name, "first-password")
    plain.click(f"text={name}")
    plain.fill("input[name=current_password]", "first-password")
    plain.fill("input[name=new_password]", "second-password")
    plain.fill("input[name=repeat_password]", "second-password")
    with plain.expect_navigation():
        plain.click("form[action='/account/password'] button[type=submit]")
    assert "Your password was changed" in plain.locator("[role=status]").inner_text()
    with plain.expect_navigation():
        plain.click("text=Log out")
    assert "/login" in plain.url
    login(plain, name, "second-password")


class _Attacker(BaseHTTPRequestHandler):
    """Another origin on the same site (127.0.0.1, another port): cookies still go along."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form method="post" action="{self.target}/users">'
            '<input name="username" value="{user}"><input name="password" value="pwned-pass1">'
            '<input name="role" value="admin"><button id="go">win a prize</button></form>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body.replace(b"{user}", self.path.strip("/").encode()))

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def attacker(live_server: Any) -> Iterator[str]:
    _Attacker.target = live_server.url
    server = HTTPServer(("127.0.0.1", 0), _Attacker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_forged_form_from_another_origin_is_refused(
    open_page: Any, live_server: Any, attacker: str
) -> None:
    victim = "forged-" + uuid.uuid4().hex[:6]
    page = open_page(allow_status=(403,))
    login(page, "admin")
    page.goto(f"{attacker}/{victim}")
    with page.expect_navigation():
        page.click("#go")
    assert page.url.startswith(live_server.url + "/users")
    # Refused before its token is looked at: the browser says it comes from another site.
    assert "cross-site request refused" in page.content()
    with live_server.session() as s:
        assert s.scalar(select(User.id).where(User.username == victim)) is None
