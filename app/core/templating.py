"""Jinja2 environment: autoescaping on, templates from the top-level templates/ folder."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from app.core.csrf_tokens import CSRF_FIELD, csrf_token_for
from app.core.json_text import repaired, text_problem
from app.migrate import resource_path

templates = Jinja2Templates(directory=str(resource_path("templates")))


def _servable(value: Any) -> Any:
    # A string stored before the input rules (app/core/json_text.py) may hold an unpaired
    # surrogate, which would make encoding the whole page fail: it is shown as U+FFFD.
    if isinstance(value, str) and not value.isascii() and text_problem(value):
        fixed = repaired(value)
        return Markup(fixed) if isinstance(value, Markup) else fixed
    return value


templates.env.finalize = _servable


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
