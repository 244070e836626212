"""CSRF against the real server (`safepref serve`, real cookies): a logged-in browser's PUT,
PATCH and DELETE need the token, and an Authorization header without a bearer token (sent as
bytes on the wire, where the server's HTTP parser sees it) does not exempt the request."""

from __future__ import annotations

import re
import socket
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.auth.service import create_user

pytestmark = pytest.mark.live

PASSWORD = "password-123"
REFUSAL = "CSRF token missing or invalid"
_TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def _log_in(base: str, username: str, password: str) -> tuple[httpx.Client, str]:
    """A browser-like client logged in through the form, and its CSRF token."""
    client = httpx.Client(base_url=base, timeout=30)
    form = client.get("/login")
    found = _TOKEN.search(form.text)
    assert found, form.text[:300]
    data = {"username": username, "password": password, "csrf_token": found.group(1)}
    response = client.post("/login", data=data)
    assert response.status_code == 303, response.text[:300]
    page = client.get("/account/password")
    found = _TOKEN.search(page.text)
    assert found, page.text[:300]
    return client, found.group(1)


def _raw_put(base: str, cookie_header: str, authorization: bytes, body: bytes) -> int:
    """A PUT written byte by byte, so the header's trailing spaces really go on the wire."""
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None
    request = (
        b"PUT /api/v1/me/password HTTP/1.1\r\n"
        b"Host: " + parts.netloc.encode() + b"\r\n"
        b"Cookie: " + cookie_header.encode() + b"\r\n"
        b"Authorization: " + authorization + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + body
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_live_put_patch_delete_need_the_token_and_empty_bearer_does_not_exempt(
    live_server: Any,
) -> None:
    name = "csrf-" + uuid.uuid4().hex[:8]
    with live_server.session() as s:
        create_user(s, name, PASSWORD, "annotator")
    browser, token = _log_in(live_server.url, name, PASSWORD)
    new_password = "changed-" + uuid.uuid4().hex
    body = {"current_password": PASSWORD, "new_password": new_password}
    cookies = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())

    try:
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic eDp5"}):
            response = browser.put("/api/v1/me/password", json=body, headers=headers)
            assert response.status_code == 403 and REFUSAL in response.text, headers
        for authorization in (b"Bearer ", b"Bearer    ", b"Bearer \t "):
            raw = httpx.Request("PUT", "/", json=body).content
            assert _raw_put(live_server.url, cookies, authorization, raw) == 403, authorization
        # PATCH and DELETE on routes that exist for an annotator too: refused before routing.
        assert browser.patch("/api/v1/batches/1", json={"name": "x"}).status_code == 403
        assert browser.delete("/api/v1/batches/1/members/" + name).status_code == 403

        # Nothing changed: the old password still logs in, the new one does not.
        _log_in(live_server.url, name, PASSWORD)[0].close()
        with httpx.Client(base_url=live_server.url, timeout=30) as other:
            form = other.get("/login")
            found = _TOKEN.search(form.text)
            assert found
            data = {"username": name, "password": new_password, "csrf_token": found.group(1)}
            assert other.post("/login", data=data).status_code == 401

        # With the token the same request changes the password: the refusals were CSRF's.
        changed = browser.put("/api/v1/me/password", json=body, headers={"X-CSRF-Token": token})
        assert changed.status_code == 204, changed.text
    finally:
        browser.close()
    _log_in(live_server.url, name, new_password)[0].close()
