"""Jinja2 environment: autoescaping on, templates from the top-level templates/ folder."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from app.auth.security import SESSION_COOKIE
from app.config import get_settings
from app.migrate import resource_path

templates = Jinja2Templates(directory=str(resource_path("templates")))
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def csrf_token_for(request: Request) -> str:
    """The CSRF token of this browser session: an HMAC of its session cookie.

    Stateless, the same in every server process, and useless without the cookie it is bound
    to. Before login (no cookie) it is bound to the empty string.
    """
    cookie = request.cookies.get(SESSION_COOKIE, "")
    key = get_settings().resolved_secret_key().encode()
    return hmac.new(key, b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    token = csrf_token_for(request)
    ctx = {
        "user": getattr(request.state, "user", None),
        "csrf_token": token,
        # {{ csrf_field }} inside every POST form.
        "csrf_field": Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">'),
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
