"""First run without a terminal: a one-time link that creates the first admin.

When the database holds no admin, `safepref serve` issues a setup token and prints the link.
Only its sha256 is stored. Issuing a token retires every older unused one, so at most one link
is valid at a time, and using it is a single conditional UPDATE on that row: of two submits
racing on the same link, exactly one sees the row unused (the other waits for its lock, then
sees it used), so one admin is created.
"""

from __future__ import annotations

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from app.auth.models import SetupToken, User
from app.auth.security import new_api_token, token_digest
from app.auth.service import create_user
from app.db import utcnow
from app.errors import NotFound

SETUP_PATH = "/setup/"
GONE = "this setup link is unknown or was already used; log in instead"


def has_admin(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(User.role == "admin"))))


def issue_setup_token(session: Session) -> str | None:
    """A new setup token (plain, to print once), or None when an admin already exists."""
    if has_admin(session):
        return None
    now = utcnow()
    session.execute(update(SetupToken).where(SetupToken.used_at.is_(None)).values(used_at=now))
    plain = new_api_token()
    session.add(SetupToken(token_hash=token_digest(plain), created_at=now))
    session.flush()
    return plain


def setup_token_valid(session: Session, plain: str) -> bool:
    row = session.scalar(
        select(SetupToken.id).where(
            SetupToken.token_hash == token_digest(plain), SetupToken.used_at.is_(None)
        )
    )
    return row is not None and not has_admin(session)


def complete_setup(session: Session, plain: str, username: str, password: str) -> User:
    """Uses the token and creates the first admin; NotFound if the link is spent or unknown.

    On any error the caller rolls back, which leaves the link usable."""
    if has_admin(session):
        raise NotFound(GONE)
    used = session.execute(
        update(SetupToken)
        .where(SetupToken.token_hash == token_digest(plain), SetupToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound(GONE)
    return create_user(session, username, password, "admin")
