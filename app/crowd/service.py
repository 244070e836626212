"""Crowd entry: a batch's link for participants of a crowd platform (Prolific, MTurk...).

The platform sends each participant to `/enter/{slug}?{param}=ID`. The first visit of an id
creates a password-less annotator bound to it (the same id always comes back to the same
account); the participant becomes a batch member once they accept the batch's consent text
(at once when there is none). When the queue has nothing left for them, the batch's
completion code is shown, so that the platform can pay them.

Creating an account is throttled per client address. Twenty simultaneous first visits of one
id make one account: the first insert of the id's username wins, the others wait for it on the
unique index, fail, and resume the winner's account.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import User
from app.batches.models import Batch
from app.batches.service import add_member, is_archived
from app.config import Settings
from app.crowd.models import BatchEntry, BatchParticipant, Participant
from app.db import utcnow
from app.errors import Conflict, DomainError, Forbidden, Invalid

ENTER_PATH = "/enter/"
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
PARAM_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
USERNAME_PREFIX = "crowd-"
MAX_CONSENT = 50_000
# Not an argon2 hash: no password ever verifies against it (app/auth/security.py).
NO_PASSWORD = "!crowd-participant"


class TooManyAccounts(DomainError):
    status_code = 429


@dataclass(frozen=True)
class EntrySettings:
    param: str
    completion_code: str
    redirect_url: str | None = None
    consent: str | None = None


def entry_url(entry: BatchEntry) -> str:
    return ENTER_PATH + entry.slug


def check_settings(settings: EntrySettings) -> EntrySettings:
    """The settings cleaned up, or Invalid naming the field."""
    param = settings.param.strip()
    if not PARAM_RE.match(param):
        raise Invalid(
            "entry.param: the query parameter's name, 1-64 letters, digits or _ "
            "(for example PROLIFIC_PID)"
        )
    code = settings.completion_code.strip()
    if not CODE_RE.match(code):
        raise Invalid("entry.completion_code: 1-100 letters, digits, _ or -")
    redirect = (settings.redirect_url or "").strip() or None
    if redirect is not None:
        parts = urlsplit(redirect)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or len(redirect) > 2000
            or any(c.isspace() for c in redirect)
        ):
            raise Invalid(
                "entry.redirect_url: an absolute http(s) URL of at most 2000 characters "
                "without spaces"
            )
    consent = (settings.consent or "").strip() or None
    if consent is not None and len(consent) > MAX_CONSENT:
        raise Invalid(f"entry.consent: at most {MAX_CONSENT} characters")
    return EntrySettings(param, code, redirect, consent)


def get_entry(session: Session, batch_id: int) -> BatchEntry | None:
    return session.get(BatchEntry, batch_id)


def entries_of(session: Session, batch_ids: list[int]) -> dict[int, BatchEntry]:
    if not batch_ids:
        return {}
    rows = session.scalars(select(BatchEntry).where(BatchEntry.batch_id.in_(batch_ids)))
    return {e.batch_id: e for e in rows}


def set_entry(session: Session, batch: Batch, settings: EntrySettings | None) -> BatchEntry | None:
    """Enables or changes the batch's entry link (its URL stays the same), or turns it off
    (None): the old URL then stops working, and a new one is made if it is enabled again."""
    entry = get_entry(session, batch.id)
    if settings is None:
        if entry is not None:
            session.delete(entry)
            session.flush()
        return None
    clean = check_settings(settings)
    if entry is None:
        entry = BatchEntry(batch_id=batch.id, slug=secrets.token_urlsafe(18))
        session.add(entry)
    entry.param = clean.param
    entry.completion_code = clean.completion_code
    entry.redirect_url = clean.redirect_url
    entry.consent = clean.consent
    session.flush()
    return entry


def entry_by_slug(session: Session, slug: str) -> BatchEntry | None:
    if len(slug) > 64:
        return None
    return session.scalar(select(BatchEntry).where(BatchEntry.slug == slug))


def check_participant_id(raw: str | None, param: str) -> str:
    if raw is None or not raw.strip():
        raise Invalid(
            f"This link lacks your participant id: it must end with ?{param}=YOUR-ID. Open "
            "the study again from your crowd platform."
        )
    value = raw.strip()
    if not ID_RE.match(value):
        raise Invalid(
            f"The participant id in this link ({param}) is not valid: it must be 1 to 48 "
            "letters, digits, _ or -. Open the study again from your crowd platform."
        )
    return value


@dataclass(frozen=True)
class Entered:
    user: User
    consented: bool
    created: bool


def _throttle(session: Session, settings: Settings, client: str) -> None:
    since = utcnow() - timedelta(seconds=settings.entry_window_seconds)
    made = session.scalar(
        select(func.count())
        .select_from(Participant)
        .where(Participant.client == client[:64], Participant.created_at > since)
    )
    if (made or 0) >= settings.entry_max_accounts_per_address:
        raise TooManyAccounts(
            "Too many new participants from your network address. Try again later."
        )


def _participant(session: Session, external_id: str) -> Participant | None:
    return session.scalar(select(Participant).where(Participant.external_id == external_id))


def _create(session: Session, external_id: str, client: str) -> Participant | None:
    """A new account for the id; None when a concurrent visit of the same id made it first."""
    user = User(username=USERNAME_PREFIX + external_id, role="annotator", password_hash=NO_PASSWORD)
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
            participant = Participant(external_id=external_id, user_id=user.id, client=client[:64])
            session.add(participant)
            session.flush()
    except IntegrityError:
        return None
    return participant


def enter(
    session: Session, entry: BatchEntry, raw_id: str | None, client: str, settings: Settings
) -> Entered:
    """Creates or resumes the participant's account and records their entry into the batch."""
    external_id = check_participant_id(raw_id, entry.param)
    batch = session.get(Batch, entry.batch_id)
    assert batch is not None
    participant = _participant(session, external_id)
    created = False
    if participant is None:
        if not batch.is_open or is_archived(session, batch):
            raise Conflict("This study is closed: it takes no new participants.")
        _throttle(session, settings, client)
        participant = _create(session, external_id, client)
        if participant is None:
            participant = _participant(session, external_id)
            if participant is None:
                raise Conflict(
                    "An account with this participant id's name already exists and is not a "
                    "crowd participant: tell the study's researchers."
                )
        else:
            created = True
    user = session.get(User, participant.user_id)
    assert user is not None
    if not user.is_active:
        raise Forbidden("Your access to this study has been ended. Contact the researchers.")
    row = session.get(BatchParticipant, (batch.id, user.id))
    if row is None:
        try:
            with session.begin_nested():
                row = BatchParticipant(batch_id=batch.id, user_id=user.id)
                session.add(row)
                session.flush()
        except IntegrityError:  # the same id's concurrent visit recorded it
            row = session.get(BatchParticipant, (batch.id, user.id))
            assert row is not None
    if entry.consent is None and row.consented_at is None:
        consent(session, batch, user, row)
    return Entered(user, row.consented_at is not None, created)


def participation(session: Session, batch_id: int, user_id: int) -> BatchParticipant | None:
    return session.get(BatchParticipant, (batch_id, user_id))


def consent(session: Session, batch: Batch, user: User, row: BatchParticipant) -> None:
    """Records the participant's consent; only then may they work in the batch."""
    if row.consented_at is None:
        row.consented_at = utcnow()
    add_member(session, batch, user)
    session.flush()


@dataclass(frozen=True)
class Completion:
    code: str
    redirect_url: str | None


def completion_for(session: Session, batch_id: int, user_id: int) -> Completion | None:
    """The completion code to show a participant who entered the batch by its link."""
    row = participation(session, batch_id, user_id)
    if row is None or row.consented_at is None:
        return None
    entry = get_entry(session, batch_id)
    if entry is None:
        return None
    return Completion(entry.completion_code, entry.redirect_url)
