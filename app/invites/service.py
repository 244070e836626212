"""Invitation links: create, list, revoke, and sign up through one.

Only the sha256 of a link's token is stored. A sign-up claims one use with a single
conditional UPDATE (uses < max_uses, not revoked, not expired): when two people race for the
last use, the second UPDATE waits for the first one's row lock and then finds no use left, so
exactly one account is created. A refused sign-up rolls back, which gives its use back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.security import new_api_token, token_digest
from app.auth.service import create_user
from app.batches.models import Batch
from app.batches.service import add_member
from app.db import utcnow
from app.errors import DomainError, NotFound
from app.invites.models import Invite

JOIN_PATH = "/join/"
MAX_USES = 100_000
MAX_EXPIRY_SECONDS = 366 * 24 * 3600


class InviteGone(DomainError):
    """The link is unknown, revoked, expired or used up: it cannot be used any more."""

    status_code = 410


def join_url(token: str) -> str:
    return JOIN_PATH + token


def create_invite(
    session: Session,
    batch: Batch,
    *,
    max_uses: int = 1,
    expires_in_seconds: int | None = None,
    by: User | None = None,
) -> tuple[Invite, str]:
    """The new invite and its plain token (shown once, in its URL)."""
    plain = new_api_token()
    expires_at = None
    if expires_in_seconds is not None:
        expires_at = utcnow() + timedelta(seconds=expires_in_seconds)
    invite = Invite(
        batch_id=batch.id,
        token_hash=token_digest(plain),
        max_uses=max_uses,
        expires_at=expires_at,
        created_by=by.id if by else None,
    )
    session.add(invite)
    session.flush()
    return invite, plain


def list_invites(session: Session, batch: Batch) -> list[Invite]:
    query = select(Invite).where(Invite.batch_id == batch.id).order_by(Invite.id.desc())
    return list(session.scalars(query))


def get_invite(session: Session, batch: Batch, invite_id: int) -> Invite:
    invite = session.get(Invite, invite_id)
    if invite is None or invite.batch_id != batch.id:
        raise NotFound(f"no invite {invite_id} in batch {batch.id}")
    return invite


def revoke_invite(session: Session, invite: Invite) -> None:
    if invite.revoked_at is None:
        invite.revoked_at = utcnow()
        session.flush()


def state(invite: Invite, now: datetime | None = None) -> str:
    """active, revoked, expired or used up."""
    now = now or utcnow()
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at is not None and invite.expires_at <= now:
        return "expired"
    if invite.uses >= invite.max_uses:
        return "used up"
    return "active"


GONE = {
    "unknown": "This invitation link is not valid. Check that you copied all of it, or ask "
    "for a new one.",
    "revoked": "This invitation link was withdrawn by the person who made it. Ask them for a "
    "new one.",
    "expired": "This invitation link has expired. Ask the person who sent it for a new one.",
    "used up": "This invitation link has already been used as many times as it allows. Ask "
    "the person who sent it for a new one.",
}


@dataclass(frozen=True)
class Joinable:
    invite: Invite
    batch_name: str


def joinable(session: Session, plain: str) -> Joinable:
    """The invite behind a link if it can still be used, else InviteGone saying why."""
    invite = session.scalar(select(Invite).where(Invite.token_hash == token_digest(plain)))
    if invite is None:
        raise InviteGone(GONE["unknown"])
    why = state(invite)
    if why != "active":
        raise InviteGone(GONE[why])
    name = session.scalar(select(Batch.name).where(Batch.id == invite.batch_id)) or ""
    return Joinable(invite, name)


def join(session: Session, plain: str, username: str, password: str) -> User:
    """Uses one of the link's uses: a new annotator, member of the invite's batch."""
    invite = joinable(session, plain).invite
    now = utcnow()
    claimed = session.execute(
        update(Invite)
        .where(
            Invite.id == invite.id,
            Invite.uses < Invite.max_uses,
            Invite.revoked_at.is_(None),
            or_(Invite.expires_at.is_(None), Invite.expires_at > now),
        )
        .values(uses=Invite.uses + 1)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(invite)
        raise InviteGone(GONE[state(invite, now) if state(invite, now) != "active" else "used up"])
    session.expire(invite)  # its use count changed under it
    user = create_user(session, username, password, "annotator")
    batch = session.get(Batch, invite.batch_id)
    assert batch is not None  # the invite's foreign key cascades
    add_member(session, batch, user)
    return user
