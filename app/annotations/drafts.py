"""Answers that arrive after the session ended, kept so that logging in again loses nothing.

The submit that brings them is unauthenticated, so it cannot be trusted to say whose answers
they are. A draft is therefore bound twice: to a random token that only the posting browser
holds (an HttpOnly cookie; the database keeps its hash) and to the assignment, whose owner
alone sees the answers again, after logging in, on that assignment's page. Only same-origin
posts are kept, so another site cannot plant answers in someone's form. Drafts fill the form
and nothing more: the annotator still reviews and submits them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from fastapi import Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from app.annotations.models import Draft
from app.batches.models import Assignment
from app.config import get_settings
from app.core.cookies import DRAFT_COOKIE
from app.db import utcnow

LIFETIME = timedelta(hours=2)
# The annotation form's own fields; anything else posted is not worth keeping.
FIELD = re.compile(r"r\d+_(safe|cat|sev)|[a-z]+_\d+|rationale|suggestion_viewed|duration_ms")
MAX_FIELDS = 1000
MAX_VALUE = 20_000


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_origin(request: Request) -> bool:
    """Whether the browser says the post came from one of our own pages."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    return origin is not None and origin == f"{request.url.scheme}://{request.url.netloc}"


def keep(
    session: Session, request: Request, response: Response, assignment_id: int, form: FormData
) -> bool:
    """Stores the posted answers and sets the draft cookie; False when nothing may be kept."""
    if not same_origin(request) or session.get(Assignment, assignment_id) is None:
        return False
    fields = [
        [name, value]
        for name, value in form.multi_items()
        if isinstance(value, str) and FIELD.fullmatch(name) and len(value) <= MAX_VALUE
    ][:MAX_FIELDS]
    if not fields:
        return False
    now = utcnow()
    session.execute(delete(Draft).where(Draft.created_at < now - LIFETIME))
    token = request.cookies.get(DRAFT_COOKIE) or secrets.token_urlsafe(32)
    session.add(
        Draft(assignment_id=assignment_id, token_hash=_hash(token), fields=fields, created_at=now)
    )
    session.flush()
    response.set_cookie(
        DRAFT_COOKIE,
        token,
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=get_settings().cookie_secure,
    )
    return True


def restore(session: Session, request: Request, assignment_id: int) -> FormData | None:
    """The newest fresh draft this browser left for the assignment (the caller checks that
    the logged-in user owns it), as the form it was posted as."""
    token = request.cookies.get(DRAFT_COOKIE)
    if not token:
        return None
    fields = session.scalar(
        select(Draft.fields)
        .where(
            Draft.assignment_id == assignment_id,
            Draft.token_hash == _hash(token),
            Draft.created_at >= utcnow() - LIFETIME,
        )
        .order_by(Draft.id.desc())
        .limit(1)
    )
    if fields is None:
        return None
    return FormData([(str(name), str(value)) for name, value in fields])


def discard(session: Session, request: Request, assignment_id: int) -> None:
    """Once the assignment's answers are saved, its drafts have served (only a browser that
    holds a draft cookie can have left any: the hot path pays nothing otherwise)."""
    if request.cookies.get(DRAFT_COOKIE):
        session.execute(delete(Draft).where(Draft.assignment_id == assignment_id))
