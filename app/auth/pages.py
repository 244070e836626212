"""Login and logout pages (plain forms; work without JavaScript)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from app.auth.models import User
from app.auth.security import (
    DUMMY_HASH,
    SESSION_COOKIE,
    sign_session,
    verify_password,
)
from app.config import get_settings
from app.db import DbSession
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would turn the login page into a phishing aid.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    user = session.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else DUMMY_HASH, password)
    if user is None or not ok or not user.is_active:
        ctx = {
            "next": safe_next(next),
            "error": "Wrong username or password.",
            "username": username,
        }
        return render(request, "login.html", ctx, status_code=401)
    settings = get_settings()
    cookie = sign_session(
        settings.resolved_secret_key(), {"uid": user.id, "v": user.session_version}
    )
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
