"""Qualification leases: how the qualification flow (app/qualification/flow.py) hands a
pending member their qualification items.

A qualification answer is an ordinary assignment of a gold item (so the annotation page, the
API submit and their checks all apply unchanged) flagged `is_qualification`. Gold items have no
overlap limit, so such a lease never takes a slot from anyone; it still counts in the gold
item's `taken` like every live or submitted assignment, so the counters' rules hold.
Plain ORM on both backends: qualifying is rare, and the locks follow the queue's order
(app/queue/__init__.py): membership, assignments, batch items.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.batches.models import Assignment, AssignmentStatus, Batch, BatchItem, BatchMember
from app.queue.results import Lease, load_item, ordered_responses, reload_lease

_rng = random.SystemRandom()  # display orders


def lock_member(session: Session, batch_id: int, user_id: int) -> BatchMember | None:
    """The caller's membership row, locked (the per-annotator lock) and read afresh."""
    return session.scalars(
        select(BatchMember)
        .where(BatchMember.batch_id == batch_id, BatchMember.user_id == user_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).first()


def lease(
    session: Session, batch: Batch, user_id: int, item_ids: Sequence[int], now: datetime
) -> Lease | None:
    """The caller's qualification lease: their open one (renewed), else a new one on the first
    of `item_ids` they have no assignment of; None once every one is answered. The caller
    holds the membership lock (`lock_member`)."""
    until = now + timedelta(seconds=batch.lease_seconds)
    open_ = session.scalars(
        select(Assignment)
        .where(
            Assignment.batch_id == batch.id,
            Assignment.annotator_id == user_id,
            Assignment.is_qualification.is_(True),
            Assignment.status.in_((AssignmentStatus.LEASED, AssignmentStatus.EXPIRED)),
        )
        .order_by(Assignment.id)
        .limit(1)
        .with_for_update()
    ).first()
    if open_ is not None:
        if open_.status == AssignmentStatus.EXPIRED:  # a sweep gave its count back
            _count(session, batch.id, open_.item_id)
        open_.status = AssignmentStatus.LEASED
        open_.leased_until = until
        session.flush()
        return reload_lease(session, open_.id, resumed=True)
    done = set(
        session.scalars(
            select(Assignment.item_id).where(
                Assignment.batch_id == batch.id, Assignment.annotator_id == user_id
            )
        )
    )
    todo = [item_id for item_id in item_ids if item_id not in done]
    if not todo:
        return None
    _count(session, batch.id, todo[0])
    item = load_item(session, todo[0])
    display = [r.id for r in item.responses]
    _rng.shuffle(display)
    assignment = Assignment(
        batch_id=batch.id,
        item_id=item.id,
        annotator_id=user_id,
        status=AssignmentStatus.LEASED,
        leased_until=until,
        display_order=display,
        is_gold=True,
        is_qualification=True,
        created_at=now,
    )
    session.add(assignment)
    session.flush()
    return Lease(assignment, item, ordered_responses(item, assignment), resumed=False)


def forget(session: Session, batch_id: int, user_id: int) -> int:
    """Deletes the member's qualification answers (a reset lets them qualify again), giving
    back their counts; how many were deleted."""
    answers = session.scalars(
        select(Assignment)
        .where(
            Assignment.batch_id == batch_id,
            Assignment.annotator_id == user_id,
            Assignment.is_qualification.is_(True),
        )
        .order_by(Assignment.id)
        .with_for_update()
    ).all()
    for answer in sorted(answers, key=lambda a: a.item_id):
        counted = answer.status in (AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED)
        submitted = answer.status == AssignmentStatus.SUBMITTED
        if counted:
            session.execute(
                update(BatchItem)
                .where(BatchItem.batch_id == batch_id, BatchItem.item_id == answer.item_id)
                .values(
                    taken=BatchItem.taken - 1,
                    submitted=BatchItem.submitted - int(submitted),
                )
            )
        session.delete(answer)
    session.flush()
    return len(answers)


def _count(session: Session, batch_id: int, item_id: int) -> None:
    session.execute(
        update(BatchItem)
        .where(BatchItem.batch_id == batch_id, BatchItem.item_id == item_id)
        .values(taken=BatchItem.taken + 1)
    )
