"""Jinja2 environment: autoescaping on, templates from the top-level templates/ folder."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from app.migrate import resource_path
from app.web.csrf import CSRF_FIELD, CSRF_HEADER, token_for_cookies

templates = Jinja2Templates(directory=str(resource_path("templates")))
__all__ = ["CSRF_FIELD", "CSRF_HEADER", "csrf_token_for", "render", "templates"]


def csrf_token_for(request: Request) -> str:
    """The CSRF token of this browser session: an HMAC of its session cookie.

    Stateless, the same in every server process, and useless without the cookie it is bound
    to. Before login it is bound to the pre-session cookie (see app/web/csrf.py); a page that
    sets new cookies puts them in `request.state.csrf_cookies` so its forms match them.
    """
    cookies = getattr(request.state, "csrf_cookies", None) or request.cookies
    return token_for_cookies(cookies)


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
