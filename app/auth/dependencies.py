"""Who is calling: a bearer token or a signed session cookie."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.security import read_session, token_digest
from app.auth.service import user_for_token
from app.config import get_settings
from app.core.cookies import SESSION_COOKIE
from app.db import DbSession
from app.errors import Forbidden, Unauthorized


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


@dataclass(frozen=True)
class Credentials:
    """What a request presents: an API token's digest, or a signed session's user id and
    session version. Neither is checked against the database yet."""

    token_hash: str | None = None
    uid: int | None = None
    version: int | None = None


def credentials(request: Request) -> Credentials | None:
    """The caller's credentials (a bearer token wins over a cookie); None without any, or
    with a session cookie whose signature or age is wrong."""
    token = _bearer(request)
    if token is not None:
        request.state.auth_via = "token"
        return Credentials(token_hash=token_digest(token))
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    settings = get_settings()
    data = read_session(settings.resolved_secret_key(), cookie, settings.session_max_age_seconds)
    if data is None or not isinstance(data.get("uid"), int):
        return None
    version = data.get("v")
    request.state.auth_via = "cookie"
    request.state.session_data = data
    return Credentials(uid=data["uid"], version=version if isinstance(version, int) else None)


def required_credentials(request: Request) -> Credentials:
    """The caller's credentials, or Unauthorized: the hot path checks them in the database."""
    found = credentials(request)
    if found is None:
        raise Unauthorized("not authenticated")
    return found


def resolve_user(request: Request, session: Session) -> User | None:
    found = credentials(request)
    if found is None:
        return None
    if found.token_hash is not None:
        return user_for_token(session, found.token_hash)
    user = session.get(User, found.uid)
    if user is None or not user.is_active or user.session_version != found.version:
        return None
    return user


@dataclass(frozen=True)
class UserSnapshot:
    """What pages show of the caller, copied when they authenticate.

    Templates get this rather than the ORM row: when a request fails, its session rolls back
    and closes, which detaches the row, and an error page reading it would itself fail."""

    id: int
    username: str
    role: str
    is_active: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def remember_caller(request: Request, user: User | None) -> None:
    request.state.user = (
        None if user is None else UserSnapshot(user.id, user.username, user.role, user.is_active)
    )


def authenticated(request: Request, session: Session) -> User:
    """The caller, or Unauthorized: `current_user` for code that holds a session already."""
    user = resolve_user(request, session)
    if user is None:
        raise Unauthorized("not authenticated")
    remember_caller(request, user)
    return user


def current_user(request: Request, session: DbSession) -> User:
    return authenticated(request, session)


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("admins only")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]


def optional_user(request: Request, session: DbSession) -> User | None:
    """The caller if logged in (pages such as the login form that anyone may see)."""
    user = resolve_user(request, session)
    remember_caller(request, user)
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
