"""Login, logout, change-own-password and the admin pages for accounts and tokens.

Plain forms that work without JavaScript: POST, then a 303 redirect (except the page that
shows a new token, which is rendered once and never stored).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from app.auth import bulk, service, throttle
from app.auth.access import allow
from app.auth.dependencies import AdminUser, CurrentUser, OptionalUser
from app.auth.models import ROLES, User
from app.auth.security import (
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from app.auth.sessions import clear_session_cookie, set_presession_cookie, set_session_cookie
from app.config import get_settings
from app.core.cookies import PRESESSION_COOKIE, SESSION_COOKIE
from app.core.templating import render
from app.db import DbSession
from app.errors import DomainError, Invalid

router = APIRouter(tags=["pages"], include_in_schema=False)

Username = Annotated[str, Form(max_length=64)]
Password = Annotated[str, Form(max_length=1024)]
NOTICES = {
    "created": "Account created.",
    "deactivated": "Account deactivated: its sessions and tokens no longer work.",
    "reactivated": "Account reactivated. Tokens revoked at deactivation stay revoked.",
    "password": "Password reset: the user's open sessions have ended.",
    "revoked": "Token revoked.",
    "changed": "Your password was changed. Other sessions have been logged out.",
}


def safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would turn the login page into a phishing aid.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _too_many(wait: int) -> str:
    return f"Too many failed attempts. Try again in about {max(1, round(wait / 60))} minute(s)."


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/login")
@allow("public")
def login_page(
    request: Request, _user: OptionalUser, next: str = "/", expired: str = ""
) -> Response:
    seed = None
    if not request.cookies.get(SESSION_COOKIE) and not request.cookies.get(PRESESSION_COOKIE):
        # The login form's CSRF token is bound to this cookie (see app/core/csrf_tokens.py).
        seed = secrets.token_urlsafe(32)
        request.state.csrf_cookies = {PRESESSION_COOKIE: seed}
    ctx = {"next": safe_next(next), "error": None, "expired": expired == "1"}
    response = render(request, "login.html", ctx)
    if seed is not None:
        set_presession_cookie(response, seed)
    return response


@router.post("/login")
@allow("public")
def login(
    request: Request,
    session: DbSession,
    username: Username,
    password: Password,
    next: Annotated[str, Form(max_length=2000)] = "/",
    expired: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    settings = get_settings()
    client = throttle.client_address(request)
    ctx = {"next": safe_next(next), "username": username, "expired": expired == "1"}
    wait = throttle.retry_after(session, settings, username, client)
    if wait is not None:
        response = render(request, "login.html", {**ctx, "error": _too_many(wait)}, 429)
        response.headers["Retry-After"] = str(wait)
        return response
    user = session.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else dummy_hash(), password)
    if user is None or not ok or not user.is_active:
        throttle.record_failure(session, settings, username, client)
        error = "Wrong username or password."
        return render(request, "login.html", {**ctx, "error": error}, status_code=401)
    throttle.clear_failures(session, username, client)
    if needs_rehash(user.password_hash):
        # Hashing parameters were raised since this password was set: upgrade it now.
        user.password_hash = hash_password(password)
    redirect = _redirect(safe_next(next))
    set_session_cookie(redirect, user)
    return redirect


@router.post("/logout")
@allow("public")
def logout(session: DbSession, user: OptionalUser) -> Response:
    if user is not None:
        # Ends the session on the server, not only in this browser: a copy of the cookie
        # stops working too. The session version is per account, so this logs the account
        # out of every browser.
        service.end_sessions(session, user)
    response = _redirect("/login")
    clear_session_cookie(response)
    return response


@router.get("/account/password")
@allow("authenticated")
def password_page(request: Request, _user: CurrentUser, done: str = "") -> Response:
    ctx = {"notice": NOTICES.get(done), "error": None}
    return render(request, "account_password.html", ctx)


@router.post("/account/password")
@allow("authenticated")
def change_password(
    request: Request,
    session: DbSession,
    user: CurrentUser,
    current_password: Password,
    new_password: Password,
    repeat_password: Password,
) -> Response:
    settings = get_settings()
    client = throttle.client_address(request)
    wait = throttle.retry_after(session, settings, user.username, client)
    if wait is not None:
        ctx = {"notice": None, "error": _too_many(wait)}
        response = render(request, "account_password.html", ctx, status_code=429)
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        if new_password != repeat_password:
            raise Invalid("repeat_password: the two new passwords differ")
        service.change_own_password(session, user, current_password, new_password)
    except DomainError as exc:
        if isinstance(exc, service.WrongPassword):
            throttle.record_failure(session, settings, user.username, client)
        ctx = {"notice": None, "error": exc.detail}
        return render(request, "account_password.html", ctx, status_code=422)
    done = _redirect("/account/password?done=changed")
    set_session_cookie(done, user)
    return done


@router.get("/users")
@allow("admin")
def users_page(request: Request, session: DbSession, _admin: AdminUser) -> Response:
    return _users_list(request, session)


def _users_list(
    request: Request,
    session: DbSession,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    ctx = {"users": service.list_users(session), "roles": ROLES, "error": error, "form": form}
    return render(request, "users.html", ctx, status_code=status_code)


MAX_ACCOUNTS_FILE = 1024 * 1024


@router.post("/users/import")
@allow("admin")
def create_users_from_file(
    request: Request, session: DbSession, _admin: AdminUser, file: Annotated[UploadFile, File()]
) -> Response:
    """Accounts from a CSV file, all or none; generated passwords are shown on this page
    only (never stored in clear)."""
    data = file.file.read(MAX_ACCOUNTS_FILE + 1)
    try:
        if len(data) > MAX_ACCOUNTS_FILE:
            raise Invalid("file: at most 1 MiB of CSV")
        created = bulk.create_accounts(session, data)
    except DomainError as exc:
        session.rollback()
        return _users_list(request, session, exc.detail, status_code=exc.status_code)
    response = render(request, "users_created.html", {"created": created}, status_code=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/users")
@allow("admin")
def create_user(
    request: Request,
    session: DbSession,
    _admin: AdminUser,
    username: Username,
    password: Password,
    role: Annotated[str, Form(max_length=16)],
) -> Response:
    try:
        service.create_user(session, username.strip(), password, role)
    except DomainError as exc:
        form = {"username": username, "role": role}
        return _users_list(request, session, exc.detail, form, status_code=exc.status_code)
    return _redirect(f"/users/{username.strip()}?done=created")


def _user_page(
    request: Request,
    session: DbSession,
    account: User,
    *,
    notice: str | None = None,
    error: str | None = None,
    new_token: str | None = None,
    status_code: int = 200,
) -> Response:
    ctx = {
        "account": account,
        "tokens": service.list_tokens(session, account),
        "notice": notice,
        "error": error,
        "new_token": new_token,
    }
    response = render(request, "user.html", ctx, status_code=status_code)
    if new_token is not None:
        # The token is in this page only: keep it out of every cache.
        response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/users/{username}")
@allow("admin")
def user_page(
    request: Request, username: str, session: DbSession, _admin: AdminUser, done: str = ""
) -> Response:
    account = service.get_user(session, username)
    return _user_page(request, session, account, notice=NOTICES.get(done))


@router.post("/users/{username}/deactivate")
@allow("admin")
def deactivate(username: str, session: DbSession, admin: AdminUser) -> Response:
    service.deactivate_user(session, service.get_user(session, username), by=admin)
    return _redirect(f"/users/{username}?done=deactivated")


@router.post("/users/{username}/reactivate")
@allow("admin")
def reactivate(username: str, session: DbSession, _admin: AdminUser) -> Response:
    service.reactivate_user(session, service.get_user(session, username))
    return _redirect(f"/users/{username}?done=reactivated")


@router.post("/users/{username}/password")
@allow("admin")
def reset_password(
    request: Request, username: str, session: DbSession, _admin: AdminUser, password: Password
) -> Response:
    account = service.get_user(session, username)
    try:
        service.set_password(session, account, password)
    except DomainError as exc:
        return _user_page(request, session, account, error=exc.detail, status_code=422)
    return _redirect(f"/users/{username}?done=password")


@router.post("/users/{username}/tokens")
@allow("admin")
def create_token(
    request: Request,
    username: str,
    session: DbSession,
    _admin: AdminUser,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    account = service.get_user(session, username)
    _, plain = service.create_token(session, account, name)
    return _user_page(request, session, account, new_token=plain)


@router.post("/users/{username}/tokens/{token_id}/revoke")
@allow("admin")
def revoke_token(username: str, token_id: int, session: DbSession, _admin: AdminUser) -> Response:
    account = service.get_user(session, username)
    service.revoke_token(session, service.get_token(session, account, token_id))
    return _redirect(f"/users/{username}?done=revoked")
