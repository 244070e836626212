"""One set of handlers: JSON `{"detail"}` for the API, a page (or HTMX fragment) otherwise."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.auth.dependencies import remember_caller, resolve_user
from app.core.cookies import SESSION_COOKIE
from app.core.htmx import is_htmx
from app.core.templating import render
from app.db import run_in_session
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


def validation_summary(exc: RequestValidationError) -> str:
    """Which inputs are wrong and why, one clause each, without echoing what was sent."""
    clauses = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body", "path"))
        clauses.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(clauses) or "invalid request"


def slash_redirect(request: Request) -> Response | None:
    """For a path that matches no route but would with its trailing slash added or removed: a
    redirect there. The framework's own redirect names the host from the request's Host
    header, which anyone can set; this one gives a path only, and never one that a browser
    would read as another host ("//host")."""
    if request.method not in ("GET", "HEAD"):
        return None
    path = request.url.path
    other = path[:-1] if path.endswith("/") else path + "/"
    if not other.startswith("/") or other.startswith("//") or "\\" in other:
        return None
    scope = {**request.scope, "path": other}
    if not any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
        return None
    query = request.url.query
    return RedirectResponse(other + (f"?{query}" if query else ""), status_code=307)


async def _recognise_caller(request: Request) -> None:
    """For errors raised before the route's dependencies recognised the caller (unknown path,
    wrong method, a malformed parameter): looks the session cookie up, so that the page's
    header shows the account as every other page does."""
    if hasattr(request.state, "user") or not request.cookies.get(SESSION_COOKIE):
        return
    try:
        user = await run_in_session(request, lambda session: resolve_user(request, session))
        remember_caller(request, user)
    except Exception:  # an error page must not fail: shown as logged out instead
        log.warning("could not look the caller up for an error page", exc_info=True)


def install_error_handlers(app: FastAPI) -> None:
    # Unknown paths reach the 404 handler below, which redirects to a path only.
    app.router.redirect_slashes = False

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        # The framework's own errors (unknown path, wrong method): JSON for the API, a page
        # for browsers, like every domain error.
        if exc.status_code == 404 and (redirect := slash_redirect(request)) is not None:
            return redirect
        if wants_json(request) or exc.status_code < 400:
            return await http_exception_handler(request, exc)
        await _recognise_caller(request)
        page = _error_page(request, exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            page.headers[name] = value
        return page

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if wants_json(request):
            return await request_validation_exception_handler(request, exc)
        await _recognise_caller(request)
        return _error_page(request, 422, validation_summary(exc))

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
