"""Whether a request comes from htmx (which then expects a fragment, not a whole page)."""

from __future__ import annotations

from starlette.requests import Request


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
