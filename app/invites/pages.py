"""Invitation pages: the admin's list of a batch's links, and the sign-up page behind one.

Plain forms, no JavaScript needed. A new link is shown once, on the page that made it.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.auth.sessions import set_presession_cookie, set_session_cookie
from app.batches.models import Batch
from app.batches.service import get_batch
from app.core.cookies import PRESESSION_COOKIE, SESSION_COOKIE
from app.core.templating import render
from app.db import DbSession, utcnow
from app.errors import DomainError, Invalid
from app.invites import service

router = APIRouter(tags=["pages"], include_in_schema=False)

EXPIRY_CHOICES = {"": None, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


def _admin_page(
    request: Request,
    session: DbSession,
    batch: Batch,
    *,
    new_url: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    now = utcnow()
    invites = [(i, service.state(i, now)) for i in service.list_invites(session, batch)]
    ctx = {"batch": batch, "invites": invites, "new_url": new_url, "error": error}
    response = render(request, "invites.html", ctx, status_code=status_code)
    if new_url is not None:
        response.headers["Cache-Control"] = "no-store"  # the link is shown this once
    return response


@router.get("/batches/{batch_id}/invites")
@allow("admin")
def invites_page(
    request: Request, batch_id: int, session: DbSession, _admin: AdminUser
) -> Response:
    return _admin_page(request, session, get_batch(session, batch_id))


@router.post("/batches/{batch_id}/invites")
@allow("admin")
def create_invite_form(
    request: Request,
    batch_id: int,
    session: DbSession,
    admin: AdminUser,
    max_uses: Annotated[str, Form(max_length=10)] = "1",
    expires: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    batch = get_batch(session, batch_id)
    try:
        uses = int(max_uses.strip() or "1")
    except ValueError:
        uses = 0
    if not 1 <= uses <= service.MAX_USES:
        error = f"max_uses: a whole number from 1 to {service.MAX_USES}"
        return _admin_page(request, session, batch, error=error, status_code=422)
    if expires not in EXPIRY_CHOICES:
        error = "expires: choose never, 1 day, 7 days or 30 days"
        return _admin_page(request, session, batch, error=error, status_code=422)
    _, plain = service.create_invite(
        session, batch, max_uses=uses, expires_in_seconds=EXPIRY_CHOICES[expires], by=admin
    )
    url = str(request.base_url).rstrip("/") + service.join_url(plain)
    return _admin_page(request, session, batch, new_url=url, status_code=201)


@router.post("/batches/{batch_id}/invites/{invite_id}/revoke")
@allow("admin")
def revoke_invite_form(
    batch_id: int, invite_id: int, session: DbSession, _admin: AdminUser
) -> Response:
    invite = service.get_invite(session, get_batch(session, batch_id), invite_id)
    service.revoke_invite(session, invite)
    return RedirectResponse(f"/batches/{batch_id}/invites", status_code=303)


def _gone(request: Request, detail: str) -> Response:
    return render(request, "join.html", {"gone": detail}, status_code=410)


@router.get("/join/{token}")
@allow("public")
def join_page(request: Request, token: str, session: DbSession) -> Response:
    try:
        found = service.joinable(session, token)
    except service.InviteGone as gone:
        return _gone(request, gone.detail)
    seed = None
    if not request.cookies.get(SESSION_COOKIE) and not request.cookies.get(PRESESSION_COOKIE):
        # The form's CSRF token is bound to this cookie, as on the login page.
        seed = secrets.token_urlsafe(32)
        request.state.csrf_cookies = {PRESESSION_COOKIE: seed}
    ctx = {"token": token, "batch_name": found.batch_name, "error": None}
    response = render(request, "join.html", ctx)
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    if seed is not None:
        set_presession_cookie(response, seed)
    return response


@router.post("/join/{token}")
@allow("public")
def join(
    request: Request,
    token: str,
    session: DbSession,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    password_confirm: Annotated[str, Form(max_length=1024)],
) -> Response:
    try:
        if password != password_confirm:
            raise Invalid("password_confirm: the two passwords differ")
        user = service.join(session, token, username.strip(), password)
    except service.InviteGone as gone:
        session.rollback()
        return _gone(request, gone.detail)
    except DomainError as exc:
        session.rollback()  # the use is given back
        try:
            found = service.joinable(session, token)
        except service.InviteGone as gone:
            return _gone(request, gone.detail)
        ctx = {
            "token": token,
            "batch_name": found.batch_name,
            "error": exc.detail,
            "username": username,
        }
        return render(request, "join.html", ctx, status_code=exc.status_code)
    redirect = RedirectResponse("/", status_code=303)
    set_session_cookie(redirect, user)
    return redirect
