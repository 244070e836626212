"""One set of handlers: JSON `{"detail"}` for the API, a page (or HTMX fragment) otherwise."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.core.htmx import is_htmx
from app.core.templating import render
from app.errors import DomainError, Unauthorized

log = logging.getLogger("safepref")


# Read by programs (a metrics scraper, a load balancer), not people: errors as JSON too.
MACHINE_PATHS = frozenset({"/metrics", "/readyz"})


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path in MACHINE_PATHS


def _error_page(request: Request, status: int, detail: str) -> Response:
    name = "fragments/error.html" if is_htmx(request) else "error.html"
    return render(request, name, {"status": status, "detail": detail}, status_code=status)


def domain_response(request: Request, exc: DomainError) -> Response:
    """The answer to a domain error: JSON for the API, the login redirect for a page that
    needs an account, an error page otherwise. Also used by middleware (app/web/bodies.py)."""
    if isinstance(exc, Unauthorized) and not wants_json(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"/login?next={quote(target)}"
        if is_htmx(request):
            # An HTMX call (e.g. a dashboard refresh) would swap the login page into a
            # fragment; HX-Redirect makes the browser load it as a whole page instead.
            return Response(status_code=204, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)
    if wants_json(request):
        body: dict[str, Any] = {"detail": exc.detail}
        body.update({k: v for k, v in exc.extra.items() if v is not None})
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(body, status_code=exc.status_code, headers=headers)
    return _error_page(request, exc.status_code, exc.detail)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        return domain_response(request, exc)

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        # A lost or unreachable database is the server's problem, not the caller's: answer
        # fast with 503 so clients retry, instead of hanging or a bare 500.
        log.warning("database unavailable: %s", exc.__class__.__name__)
        detail = "database unavailable, retry shortly"
        if wants_json(request):
            return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "2"})
        return _error_page(request, 503, detail)

    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)

    async def out_of_range(request: Request, exc: Exception) -> Response:
        # A value the database cannot hold (an id past PostgreSQL's int4 or SQLite's int8, for
        # example): the caller's mistake, and no object can have it. Found by the fuzz run.
        log.warning("value out of range for the database: %s", exc.__class__.__name__)
        detail = "a value in the request is out of range"
        if wants_json(request):
            return JSONResponse({"detail": detail}, status_code=422)
        return _error_page(request, 422, detail)

    app.add_exception_handler(DataError, out_of_range)
    # SQLite's driver raises this itself when binding an integer past 64 bits.
    app.add_exception_handler(OverflowError, out_of_range)
