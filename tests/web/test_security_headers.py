"""Security headers on pages, JSON, errors and static files; no inline script anywhere."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.migrate import resource_path
from tests.support.authkit import logged_in

MakeUser = Callable[..., tuple[Any, str]]


def assert_hardened(response: Any, *, cacheable: bool = False) -> None:
    headers = response.headers
    csp = headers["content-security-policy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";")}
    assert directives["script-src"] == "script-src 'self'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    if not cacheable:
        assert headers["cache-control"] == "no-store"


def test_headers_on_html_json_and_error_responses(
    app: FastAPI, client: TestClient, make_user: MakeUser
) -> None:
    _, token = make_user("hd-admin", "admin")
    auth = {"Authorization": f"Bearer {token}"}
    cases = {
        "login page": client.get("/login"),
        "json": client.get("/api/v1/me", headers=auth),
        "openapi": client.get("/openapi.json"),
        "json 401": client.get("/api/v1/me"),
        "json 404": client.get("/api/v1/projects/999999", headers=auth),
        "json 422": client.post("/api/v1/users", json={}, headers=auth),
        "unknown route": client.get("/no/such/page"),
        "page redirect": client.get("/users", follow_redirects=False),
        "csrf refusal": client.post("/login", data={"username": "a", "password": "b"}),
    }
    browser = TestClient(app)
    logged_in(browser, "hd-admin")
    cases["html page"] = browser.get("/users")
    cases["html 404"] = browser.get("/users/nobody-at-all")
    expected = {
        "login page": 200,
        "json": 200,
        "openapi": 200,
        "json 401": 401,
        "json 404": 404,
        "json 422": 422,
        "unknown route": 404,
        "page redirect": 303,
        "csrf refusal": 403,
        "html page": 200,
        "html 404": 404,
    }
    for name, response in cases.items():
        assert response.status_code == expected[name], name
        assert_hardened(response)
    assert cases["html 404"].headers["content-type"].startswith("text/html")
    assert cases["json 404"].json() == {"detail": "no project 999999"}


def test_headers_on_static_files(client: TestClient) -> None:
    response = client.get("/static/app.css")
    assert response.status_code == 200
    assert_hardened(response, cacheable=True)
    assert "no-store" not in response.headers.get("cache-control", "")


def test_headers_on_an_unexpected_server_error() -> None:
    app = create_app()

    @app.get("/api/v1/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert_hardened(response)


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"""(href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)


def test_templates_have_no_inline_script_or_handlers() -> None:
    """CSP forbids inline script; this finds it before a browser silently ignores it."""
    offenders = []
    for path in sorted(resource_path("templates").rglob("*.html")):
        text = path.read_text()
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, JS_URL):
            offenders += [f"{path.name}: {m.group(0)[:60]}" for m in pattern.finditer(text)]
    assert not offenders, "\n".join(offenders)
