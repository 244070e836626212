"""Logging in as a browser does: fetch the form (and its CSRF token), then post it."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from app.core.cookies import SESSION_COOKIE

PASSWORD = "password-123"  # what conftest's make_user gives every account
_TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_from(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD, next: str = "/") -> Any:
    form = client.get("/login")
    assert form.status_code == 200
    data = {
        "username": username,
        "password": password,
        "next": next,
        "csrf_token": csrf_from(form.text),
    }
    return client.post("/login", data=data, follow_redirects=False)


def logged_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Logs in and returns this browser's CSRF token (read from a page, like a form would)."""
    response = login(client, username, password)
    assert response.status_code == 303, response.text
    assert client.cookies.get(SESSION_COOKIE)
    return csrf_from(client.get("/account/password").text)
