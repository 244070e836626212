"""Jinja2 environment: autoescaping on, templates from the top-level templates/ folder."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.migrate import resource_path

templates = Jinja2Templates(directory=str(resource_path("templates")))


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    ctx = {"user": getattr(request.state, "user", None), **(context or {})}
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
