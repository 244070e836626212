"""The session cookie: signed, HttpOnly, SameSite=Lax, Secure when configured."""

from __future__ import annotations

import secrets

from fastapi import Response

from app.auth.models import User
from app.auth.security import sign_session
from app.config import get_settings
from app.core.cookies import PRESESSION_COOKIE, SESSION_COOKIE


def set_session_cookie(response: Response, user: User) -> None:
    """Signs the user's id with their session_version: bumping it ends every such cookie."""
    settings = get_settings()
    # The nonce makes every login's cookie, and so its CSRF token, unique.
    data = {"uid": user.id, "v": user.session_version, "n": secrets.token_urlsafe(12)}
    value = sign_session(settings.resolved_secret_key(), data)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    response.delete_cookie(PRESESSION_COOKIE)


def set_presession_cookie(response: Response, value: str) -> None:
    settings = get_settings()
    response.set_cookie(
        PRESESSION_COOKIE, value, httponly=True, samesite="lax", secure=settings.cookie_secure
    )


def clear_session_cookie(response: Response) -> None:
    settings = get_settings()
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=settings.cookie_secure
    )
