"""The member's next assignment, qualification included: what the API's `next`, the "next
item" button and the page after a submit call.

The queue refuses regular work to a member who is to qualify (or failed to) with
QualificationRequired; only then does this module read the member's state and hand out their
next qualification item, grade them once all are answered, and let them through on a pass.
Members who need no qualification never reach it, so the queue's hot path is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from fastapi import Request
from sqlalchemy.orm import Session

from app.auth.dependencies import authenticated
from app.auth.models import User
from app.batches.models import Batch, QualificationState
from app.db import run_in_session
from app.qualification import service
from app.queue import front, messages
from app.queue.messages import QualificationRequired
from app.queue.results import Lease, LeaseView, lease_view


@dataclass(frozen=True)
class Failed:
    """The member did not reach the batch's threshold: their access to it has ended. A value,
    not an exception, so that the grade that led here is committed with the request."""

    batch_id: int
    detail: str


def failed(batch: Batch) -> Failed:
    threshold = round(100 * (batch.qualification_threshold or 0))
    return Failed(
        batch.id,
        f"batch {batch.id}: you did not pass its qualification (at least {threshold}% on every "
        "question was needed), so it has no work for you; an admin can let you try again",
    )


def next_lease(session: Session, batch: Batch, user: User) -> Lease | Failed | None:
    """The caller's next assignment: regular work, or while they qualify their next
    qualification item. None when nothing is left; Failed once they failed."""
    try:
        return front.next_assignment(session, batch, user, admin_hint=True)
    except QualificationRequired:
        pass
    member = front.lock_member(session, batch.id, user.id)
    if member is None:  # removed a moment ago
        raise messages.no_batch(batch.id)
    if member.qualification == QualificationState.FAILED:
        return failed(batch)
    if member.qualification == QualificationState.PENDING:
        lease = front.qualification_lease(session, batch, user, service.item_ids(session, batch.id))
        if lease is not None:
            return lease
        if service.grade(session, batch, member) == QualificationState.FAILED:
            return failed(batch)
    return front.next_assignment(session, batch, user, admin_hint=True)


def next_in_batch(session: Session, batch_id: int, user: User) -> Lease | Failed | None:
    """`next_lease` for a batch id (404 for a batch that does not exist)."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise messages.no_batch(batch_id)
    return next_lease(session, batch, user)


async def next_for_request(request: Request, batch_id: int) -> LeaseView | Failed | None:
    """The API's `next`: the queue's hot path, and the qualification flow when it refuses."""
    try:
        return await front.next_for_request(request, batch_id)
    except QualificationRequired:
        return await run_in_session(request, partial(_next_in_session, request, batch_id))


def _next_in_session(
    request: Request, batch_id: int, session: Session
) -> LeaseView | Failed | None:
    user = authenticated(request, session)
    lease = next_in_batch(session, batch_id, user)
    if lease is None or isinstance(lease, Failed):
        return lease
    return lease_view(lease, caller_is_admin=user.is_admin)
