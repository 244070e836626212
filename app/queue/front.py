"""The queue's one entry point: every router, page and service goes through here.

The backend is chosen here and nowhere else (`_hot_pool` for a request, `_on_postgresql` for a
session): PostgreSQL runs the functions of app/queue/sql/ (app/queue/postgres.py), SQLite the
ORM implementation (app/queue/orm.py). Skip, member removal and exclusion (re-exported from
app/queue/exclusion.py) run the ORM implementation on both: they are rare, and their row locks
follow the same lock order (app/queue/__init__.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from fastapi import Request
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.annotations.schemas import AnnotationIn
from app.annotations.validation import validate_annotation
from app.auth.dependencies import authenticated, required_credentials
from app.auth.models import User
from app.batches.models import Assignment, Batch, BatchMember
from app.db import get_session, run_in_session, utcnow
from app.queue import messages, orm, postgres, qualification, targets
from app.queue.exclusion import exclude_annotations as exclude_annotations
from app.queue.exclusion import exclude_member as exclude_member
from app.queue.exclusion import include_annotations as include_annotations
from app.queue.exclusion import include_member as include_member
from app.queue.order import claim_draws
from app.queue.results import (
    Lease,
    LeaseView,
    SkipResult,
    Stored,
    SubmitResult,
    lease_view,
    reload_lease,
    stored,
)

T = TypeVar("T")


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _identified(request: Request) -> Callable[[int | None], None]:
    """Records the caller that the database identified from the request's credentials, for
    the request log (the hot path loads no User that would say it)."""

    def remember(user_id: int | None) -> None:
        request.state.user_id = user_id

    return remember


async def _hot_pool(request: Request) -> AsyncConnectionPool | None:
    """The hot path's pool on PostgreSQL; None on SQLite or while `get_session` is
    overridden (then the request's session serves, through `run_in_session`)."""
    pool: postgres.HotPool | None = getattr(request.app.state, "hot_pool", None)
    if pool is None or get_session in request.app.dependency_overrides:
        return None
    return await pool.get()


# ---------------------------------------------------------------- next


def next_assignment(
    session: Session,
    batch: Batch,
    user: User,
    now: datetime | None = None,
    *,
    admin_hint: bool = False,
) -> Lease | None:
    """The caller's next assignment in `batch`, or None when nothing is left for them.

    1. the caller's current lease (renewed for another lease period), if they hold one;
    2. otherwise a claim of the first free item in the order of work that the caller has
       neither done nor skipped (an item of theirs whose lease expired may come back to them,
       with the same display order). Expired leases are swept before claiming (at most once a
       second per process and batch, and always before answering that nothing is left).
    NotFound for a non-member (with a hint for admins when `admin_hint`), Conflict when the
    batch is closed. Flushes only; the caller commits.
    """
    now = now or utcnow()
    if not _on_postgresql(session):
        return orm.next_lease(session, batch, user, now, admin_hint=admin_hint)
    steps = postgres.next_steps(
        batch.id, user.id, now, claim_draws(batch.id), admin_hint=admin_hint
    )
    view = postgres.run(session, steps)
    return None if view is None else reload_lease(session, view.assignment_id, resumed=view.resumed)


def next_in_batch(session: Session, batch_id: int, user: User) -> Lease | None:
    """`next_assignment` for a batch id (the pages' "next item" button): 404 for a batch
    that does not exist or of which the caller is not a member (an admin is told why)."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise messages.no_batch(batch_id)
    return next_assignment(session, batch, user, admin_hint=True)


async def next_for_request(request: Request, batch_id: int) -> LeaseView | None:
    """The API's `next` for the request's caller."""
    pool = await _hot_pool(request)
    if pool is None:
        return await run_in_session(request, partial(_next_in_session, request, batch_id))
    # PostgreSQL's hot path, in the event loop: one call checks the credentials and leases.
    caller = required_credentials(request)
    steps = postgres.next_steps(
        batch_id,
        caller,
        utcnow(),
        claim_draws(batch_id),
        admin_hint=True,
        identified=_identified(request),
    )
    return await postgres.run_async(pool, steps)


def _next_in_session(request: Request, batch_id: int, session: Session) -> LeaseView | None:
    if _on_postgresql(session):
        # As on the hot path, in the request's session (tests: their rolled-back transaction).
        caller = required_credentials(request)
        steps = postgres.next_steps(
            batch_id,
            caller,
            utcnow(),
            claim_draws(batch_id),
            admin_hint=True,
            identified=_identified(request),
        )
        return postgres.run(session, steps)
    user = authenticated(request, session)
    lease = next_in_batch(session, batch_id, user)
    return None if lease is None else lease_view(lease, caller_is_admin=user.is_admin)


# ---------------------------------------------------------------- submit


def _validator(body: AnnotationIn) -> Callable[[postgres.SubmitContext], dict[str, Any]]:
    return lambda context: validate_annotation(context, context.response_ids, body)


def _submit_steps(
    assignment_id: int,
    caller: postgres.Caller,
    body: AnnotationIn,
    now: datetime,
    identified: postgres.Identified = None,
) -> postgres.Steps[Stored]:
    return postgres.submit_steps(
        assignment_id,
        caller,
        now,
        _validator(body),
        body.duration_ms,
        body.suggestion_viewed,
        identified,
    )


def submit(
    session: Session,
    assignment_id: int,
    user: User,
    body: AnnotationIn,
    now: datetime | None = None,
) -> SubmitResult:
    """Submits or revises the caller's annotation of an assignment.

    - a live lease (or one past its time that no sweep has reclaimed yet: its slot is still
      held) becomes 'submitted' with revision 1;
    - an expired lease is re-taken if the item still has a free slot, else Conflict (409) that
      says the work was not saved;
    - an already submitted assignment is revised (revision + 1, the previous one kept in
      annotation_revisions) unless the payload is identical, which changes nothing;
    - a skipped assignment, or a closed batch, is a Conflict. Invalid payloads raise Invalid
      (422) naming the field, before anything is written. Flushes only.
    """
    now = now or utcnow()
    if not _on_postgresql(session):
        return orm.submit(session, assignment_id, user, body, now)
    done = postgres.run(session, _submit_steps(assignment_id, user.id, body, now))
    assignment = session.scalars(
        select(Assignment)
        .where(Assignment.id == assignment_id)
        .execution_options(populate_existing=True)
    ).one()
    annotation = session.scalars(
        select(Annotation)
        .where(Annotation.id == done.annotation_id)
        .execution_options(populate_existing=True)
    ).one()
    return SubmitResult(assignment, annotation, done.outcome, done.check_gold_floor)


async def submit_for_request(request: Request, assignment_id: int, body: AnnotationIn) -> Stored:
    """The API's submit for the request's caller."""
    pool = await _hot_pool(request)
    if pool is None:
        return await run_in_session(
            request, partial(_submit_in_session, request, assignment_id, body)
        )
    caller = required_credentials(request)
    steps = _submit_steps(assignment_id, caller, body, utcnow(), _identified(request))
    return await postgres.run_async(pool, steps)


def _submit_in_session(
    request: Request, assignment_id: int, body: AnnotationIn, session: Session
) -> Stored:
    if _on_postgresql(session):
        # As on the hot path, in the request's session (tests: their rolled-back transaction).
        caller = required_credentials(request)
        steps = _submit_steps(assignment_id, caller, body, utcnow(), _identified(request))
        return postgres.run(session, steps)
    user = authenticated(request, session)
    return stored(orm.submit(session, assignment_id, user, body, utcnow()))


# ---------------------------------------------------------------- skip, members, sweeps


def skip(session: Session, assignment_id: int, user: User, reason: str | None = None) -> SkipResult:
    """Skips the caller's assignment: its slot goes back to the queue for other annotators
    and the item never comes back to this one. Repeating a skip changes nothing; skipping a
    submitted assignment or in a closed batch is a Conflict. Flushes only."""
    return orm.skip(session, assignment_id, user, reason)


def unskip(
    session: Session, assignment_id: int, user: User, now: datetime | None = None
) -> Assignment:
    """Undoes the caller's skip: the assignment is leased to them again if its item still has
    a free slot (someone may have taken the slot the skip gave back: then a Conflict). Undoing
    twice changes nothing. Flushes only."""
    return orm.unskip(session, assignment_id, user, now or utcnow())


def remove_member(session: Session, batch: Batch, user: User) -> None:
    """Removes the member and gives their live leases back to the queue. Their submitted
    annotations stay."""
    if session.get(BatchMember, (batch.id, user.id)) is None:
        return
    orm.release_member(session, batch.id, user.id)
    member = session.get(BatchMember, (batch.id, user.id))
    if member is not None:
        session.delete(member)
    session.flush()


def sweep_expired(session: Session, batch_id: int, now: datetime) -> int:
    """Reclaims up to a sweep's worth of expired leases of the batch now; how many."""
    return orm.sweep_expired(session, batch_id, now)


# ---------------------------------------------------------------- adaptive overlap, quotas


def refresh_targets(session: Session, batch_id: int, item_ids: Iterable[int] | None = None) -> None:
    """Recomputes how many annotations these items of the batch (None: all) are served up to,
    after their included annotations or the batch's overlap options changed (app/queue/
    targets.py). Flushes only."""
    targets.refresh_targets(session, batch_id, item_ids)


def quota_reached(session: Session, batch: Batch, user: User) -> int | None:
    """The member's quota when they have reached it (the queue serves them nothing more in
    this batch), else None."""
    if orm.at_quota(session, batch, user.id):
        return batch.max_items_per_annotator
    return None


# ---------------------------------------------------------------- qualification


def lock_member(session: Session, batch_id: int, user_id: int) -> BatchMember | None:
    """The caller's membership, locked (first in the lock order) and read afresh; None for a
    non-member."""
    return qualification.lock_member(session, batch_id, user_id)


def qualification_lease(
    session: Session, batch: Batch, user: User, item_ids: list[int], now: datetime | None = None
) -> Lease | None:
    """The member's lease on their next qualification item (app/queue/qualification.py); None
    once they answered every one of `item_ids`. Call with the membership locked."""
    return qualification.lease(session, batch, user.id, item_ids, now or utcnow())


def forget_qualification(session: Session, batch_id: int, user_id: int) -> int:
    """Deletes a member's qualification answers so that they can qualify again."""
    return qualification.forget(session, batch_id, user_id)
