"""Users and API tokens."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import ROLES, ApiToken, User
from app.auth.security import hash_password, new_api_token, token_digest
from app.db import utcnow
from app.errors import Conflict, Invalid, NotFound

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_LENGTH = 8
# Recording every use would turn each read into a write; once a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password: must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise Invalid("password: must be at most 1024 characters")


def create_user(session: Session, username: str, password: str, role: str) -> User:
    if not USERNAME_RE.match(username):
        raise Invalid("username: 1-64 characters from letters, digits and _ . @ -")
    if role not in ROLES:
        raise Invalid(f"role: must be one of {', '.join(ROLES)}")
    validate_password(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(username=username, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def create_token(session: Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Returns the row and the plain token, which is shown once and never stored."""
    plain = new_api_token()
    token = ApiToken(user_id=user.id, token_hash=token_digest(plain), name=name[:100])
    session.add(token)
    session.flush()
    return token, plain


def user_for_token(session: Session, plain: str) -> User | None:
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_digest(plain), ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    token, user = row.tuple()
    if not user.is_active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
    return user
