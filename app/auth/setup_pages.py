"""The first-run page: `/setup/{token}` creates the first admin, then logs them in."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.auth.access import allow
from app.auth.first_run import GONE, complete_setup, setup_token_valid
from app.auth.sessions import set_presession_cookie, set_session_cookie
from app.core.cookies import PRESESSION_COOKIE, SESSION_COOKIE
from app.core.templating import render
from app.db import DbSession
from app.errors import DomainError, Invalid

router = APIRouter(tags=["pages"], include_in_schema=False)


def _gone(request: Request) -> Response:
    return render(request, "setup.html", {"gone": GONE}, status_code=404)


@router.get("/setup/{token}")
@allow("public")
def setup_page(request: Request, token: str, session: DbSession) -> Response:
    if not setup_token_valid(session, token):
        return _gone(request)
    seed = None
    if not request.cookies.get(SESSION_COOKIE) and not request.cookies.get(PRESESSION_COOKIE):
        # The form's CSRF token is bound to this cookie, as on the login page.
        seed = secrets.token_urlsafe(32)
        request.state.csrf_cookies = {PRESESSION_COOKIE: seed}
    response = render(request, "setup.html", {"token": token, "error": None})
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    if seed is not None:
        set_presession_cookie(response, seed)
    return response


@router.post("/setup/{token}")
@allow("public")
def setup(
    request: Request,
    token: str,
    session: DbSession,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    repeat_password: Annotated[str, Form(max_length=1024)],
) -> Response:
    try:
        if password != repeat_password:
            raise Invalid("repeat_password: the two passwords differ")
        admin = complete_setup(session, token, username.strip(), password)
    except DomainError as exc:
        session.rollback()  # the link stays usable after a refused form
        if not setup_token_valid(session, token):
            return _gone(request)
        ctx = {"token": token, "error": exc.detail, "username": username}
        return render(request, "setup.html", ctx, status_code=exc.status_code)
    redirect = RedirectResponse("/", status_code=303)
    set_session_cookie(redirect, admin)
    return redirect
