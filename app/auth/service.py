"""Users and API tokens."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import ROLES, ApiToken, User
from app.auth.security import hash_password, new_api_token, token_digest, verify_password
from app.db import utcnow, write_apart
from app.errors import Conflict, Invalid, NotFound

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_LENGTH = 8
# Recording every use would turn each read into a write; once a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def validate_password(password: str) -> None:
    """The one password rule (CLI, API and pages): spaces around it do not count towards the
    length, so a blank or all-space password is refused like a short one."""
    if len(password.strip()) < MIN_PASSWORD_LENGTH:
        raise Invalid(
            f"password: must be at least {MIN_PASSWORD_LENGTH} characters, "
            "not counting spaces at either end"
        )
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
    add_users(session, [user])
    return user


def add_users(session: Session, users: list[User]) -> None:
    """Inserts new accounts in a savepoint: when another request took one of the usernames
    since it was checked (its insert waits for ours on the unique index), the answer is a
    409 and the request's transaction stays usable."""
    try:
        with session.begin_nested():
            session.add_all(users)
            session.flush()
    except IntegrityError:
        names = ", ".join(repr(u.username) for u in users[:3])
        raise Conflict(f"username: taken meanwhile by another request ({names})") from None


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def create_token(session: Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Returns the row and the plain token, which is shown once and never stored."""
    if not user.is_active:
        raise Conflict(f"user {user.username!r} is deactivated")
    plain = new_api_token()
    token = ApiToken(user_id=user.id, token_hash=token_digest(plain), name=name[:100])
    session.add(token)
    session.flush()
    return token, plain


def user_for_token(session: Session, digest: str) -> User | None:
    """The active user of the unrevoked token with this sha256 digest (`token_digest`)."""
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    token, user = row
    if not user.is_active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        # Also on a read request: apart from its read-only transaction (app/db.py).
        write_apart(
            session, update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
        )
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def _active_admins(session: Session) -> int:
    """How many admins are active, counted with their rows locked (PostgreSQL; SQLite's write
    lock is taken at BEGIN): two admins deactivating each other at the same moment are then
    decided one after the other, and the second sees that only one admin is left."""
    query = select(User.id).where(User.role == "admin", User.is_active).with_for_update()
    return len(session.scalars(query).all())


def deactivate_user(session: Session, user: User, *, by: User) -> None:
    """Locks the account out at once: sessions die (version bump) and tokens are revoked."""
    if user.id == by.id:
        raise Conflict("you cannot deactivate your own account")
    if user.is_admin and user.is_active and _active_admins(session) <= 1:
        raise Conflict("the last active admin cannot be deactivated")
    if user.is_active:
        user.is_active = False
        end_sessions(session, user)
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.flush()


def reactivate_user(session: Session, user: User) -> None:
    """Lets the person log in again; tokens revoked at deactivation stay revoked."""
    user.is_active = True
    session.flush()


def end_sessions(session: Session, user: User) -> None:
    """Every session cookie of the user stops working (API tokens are separate credentials)."""
    user.session_version += 1
    session.flush()


def set_password(session: Session, user: User, password: str) -> None:
    """New password; every open session of the user ends."""
    validate_password(password)
    user.password_hash = hash_password(password)
    end_sessions(session, user)


class WrongPassword(Invalid):
    """The current password given to change it is wrong (counts as a failed login)."""


def change_own_password(session: Session, user: User, current: str, new: str) -> None:
    if not verify_password(user.password_hash, current):
        raise WrongPassword("current_password: wrong password")
    if new == current:
        raise Invalid("new_password: must differ from the current password")
    set_password(session, user, new)


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    return list(session.scalars(query))


def get_token(session: Session, user: User, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound(f"no token {token_id} for user {user.username!r}")
    return token


def revoke_token(session: Session, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
