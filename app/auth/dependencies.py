"""Who is calling: a bearer token or a signed session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.security import SESSION_COOKIE, read_session
from app.auth.service import user_for_token
from app.config import get_settings
from app.db import DbSession
from app.errors import Forbidden, Unauthorized


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def resolve_user(request: Request, session: Session) -> User | None:
    token = _bearer(request)
    if token is not None:
        request.state.auth_via = "token"
        return user_for_token(session, token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    settings = get_settings()
    data = read_session(settings.resolved_secret_key(), cookie, settings.session_max_age_seconds)
    if data is None or not isinstance(data.get("uid"), int):
        return None
    user = session.get(User, data["uid"])
    if user is None or not user.is_active or user.session_version != data.get("v"):
        return None
    request.state.auth_via = "cookie"
    request.state.session_data = data
    return user


def current_user(request: Request, session: DbSession) -> User:
    user = resolve_user(request, session)
    if user is None:
        raise Unauthorized("not authenticated")
    request.state.user = user
    return user


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("admins only")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]


def optional_user(request: Request, session: DbSession) -> User | None:
    """The caller if logged in (pages such as the login form that anyone may see)."""
    user = resolve_user(request, session)
    request.state.user = user
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
