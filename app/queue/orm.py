"""The queue in SQLAlchemy: all of it on SQLite; on PostgreSQL, skip and member removal.

The rules, the order of work and the lock order are described once in app/queue/__init__.py;
app/queue/sql/ holds the same steps as PostgreSQL functions. On SQLite the write transaction
(`BEGIN IMMEDIATE`, app/db.py) serialises writers and the row locks below are no-ops; on
PostgreSQL they are real and taken in the queue's lock order.

Every function flushes only; the caller's session dependency commits.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Integer,
    Select,
    Update,
    bindparam,
    exists,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import set_committed_value

from app.annotations.models import Annotation, AnnotationRevision
from app.annotations.schemas import AnnotationIn
from app.annotations.validation import validate_annotation
from app.auth.models import User
from app.batches.models import Assignment, AssignmentStatus, Batch, BatchItem, BatchMember
from app.core.json_text import require_storable
from app.db import UTCDateTime
from app.items.models import Response
from app.projects.models import Project
from app.queue import messages, order
from app.queue.order import SWEEP_LIMIT, rotation_start, sweep_due
from app.queue.results import (
    Lease,
    SkipResult,
    SubmitResult,
    load_item,
    ordered_responses,
    reload_lease,
)

LEASED = AssignmentStatus.LEASED
SUBMITTED = AssignmentStatus.SUBMITTED
SKIPPED = AssignmentStatus.SKIPPED
EXPIRED = AssignmentStatus.EXPIRED

_rng = random.SystemRandom()  # display orders


def lock_membership(session: Session, batch_id: int, user_id: int) -> bool:
    """Row-locks the caller's membership (the per-annotator lock, first in the lock order);
    False if they are not a member."""
    return lock_standing(session, batch_id, user_id) is not None


def lock_standing(session: Session, batch_id: int, user_id: int) -> bool | None:
    """`lock_membership` that also tells whether the member is excluded from the batch:
    None if not a member, else True for an excluded member."""
    found = session.execute(_membership(), {"batch_id": batch_id, "user_id": user_id}).first()
    return None if found is None else found[1] is not None


def next_lease(
    session: Session, batch: Batch, user: User, now: datetime, *, admin_hint: bool
) -> Lease | None:
    """The caller's next assignment in `batch` (app/queue/front.py `next_assignment`)."""
    standing = lock_standing(session, batch.id, user.id)
    if standing is None:
        refusal = (
            messages.Refusal.NOT_MEMBER_ADMIN if user.is_admin else messages.Refusal.NOT_MEMBER
        )
        raise messages.next_refused(refusal, batch.id, admin_hint=admin_hint)
    if standing:
        raise messages.excluded(batch.id)
    if not batch.is_open:
        raise messages.closed(batch.id)
    # A statement of its own, after the lock: under READ COMMITTED its snapshot then sees
    # whatever my previous, concurrent request committed while this one waited.
    current = session.scalar(_my_lease(), {"batch_id": batch.id, "user_id": user.id})
    lease_until = now + timedelta(seconds=batch.lease_seconds)
    if current is not None and _renew(session, current, LEASED, lease_until):
        # Still 'leased' means no sweep took it back: its slot is still counted in `taken`.
        return reload_lease(session, current, resumed=True)
    swept = sweep_due(batch.id)
    if swept:
        sweep_expired(session, batch.id, now)
    claimed = _claim(session, batch, user.id)
    if claimed is None and not swept and sweep_expired(session, batch.id, now):
        claimed = _claim(session, batch, user.id)
    if claimed is None:
        return None
    if batch.gold_rate > 0 and order.gold_rng.random() < batch.gold_rate:
        claimed = _claim_gold(session, batch.id, user.id) or claimed
    item_id, is_gold, mine = claimed
    session.execute(_taken_delta(), {"p_batch": batch.id, "p_item": item_id, "p_delta": 1})
    if mine is not None:  # my own expired lease of this item, revived as it was
        _renew(session, mine, EXPIRED, lease_until)
        return reload_lease(session, mine, resumed=False)
    item = load_item(session, item_id)
    display = [r.id for r in item.responses]
    _rng.shuffle(display)
    assignment = Assignment(
        batch_id=batch.id,
        item_id=item_id,
        annotator_id=user.id,
        status=LEASED,
        leased_until=lease_until,
        display_order=display,
        is_gold=is_gold,
        created_at=now,
    )
    session.add(assignment)
    session.flush()
    return Lease(assignment, item, ordered_responses(item, assignment), resumed=False)


def _renew(session: Session, assignment_id: int, status: AssignmentStatus, until: datetime) -> bool:
    """Sets a lease of mine in `status` to 'leased' until `until`; False if its status has
    changed meanwhile (a sweep got there first: the row lock makes that decision atomic)."""
    result = session.execute(
        _renew_statement(), {"p_id": assignment_id, "p_status": status, "p_until": until}
    )
    return bool(getattr(result, "rowcount", 0))


def sweep_expired(session: Session, batch_id: int, now: datetime, limit: int = SWEEP_LIMIT) -> int:
    """Marks up to `limit` expired leases of the batch 'expired' and frees their slots."""
    rows = session.execute(
        _expired_leases(), {"batch_id": batch_id, "now": now, "limit": limit}
    ).all()
    if not rows:
        return 0
    _release(session, batch_id, [(r.id, r.item_id) for r in rows])
    return len(rows)


def release_member(session: Session, batch_id: int, user_id: int) -> None:
    """Gives the member's live leases back to the queue (before they are removed from the
    batch), under their membership lock."""
    lock_membership(session, batch_id, user_id)
    leases = session.execute(
        select(Assignment.id, Assignment.item_id)
        .where(
            Assignment.batch_id == batch_id,
            Assignment.annotator_id == user_id,
            Assignment.status == LEASED,
        )
        .with_for_update(key_share=True)
    ).all()
    if leases:
        _release(session, batch_id, [(r.id, r.item_id) for r in leases])


def _release(session: Session, batch_id: int, leases: list[tuple[int, int]]) -> None:
    """Sets locked, live assignments (id, item id) 'expired' and gives their slots back."""
    session.execute(
        update(Assignment)
        .where(Assignment.id.in_([assignment_id for assignment_id, _ in leases]))
        .values(status=EXPIRED)
    )
    per_item = Counter(item_id for _, item_id in leases)
    for item_id in sorted(per_item):  # the lock order: batch items by item id
        params = {"p_batch": batch_id, "p_item": item_id, "p_delta": -per_item[item_id]}
        session.execute(_taken_delta(), params)


def _claim(session: Session, batch: Batch, user_id: int) -> tuple[int, bool, int | None] | None:
    """Locks the first free item in queue order that I have not done or skipped: its id,
    whether it is gold, and my expired assignment of it if I had one."""
    params: dict[str, int] = {"batch_id": batch.id, "user_id": user_id}
    for level in range(batch.overlap):
        params[f"start_{level}"] = rotation_start(batch.id, user_id, level)
    row = session.execute(_claim_statement(batch.overlap), params).first()
    return None if row is None else (row[0], row[1], row[2])


def _claim_branch(level: int | None, arc_start: str, upper: bool) -> Select[int, bool, int]:
    """One range scan of the queue order: the first unlocked batch item of one `taken` level
    (gold items: any level) on one arc of the caller's rotation that the caller has neither
    done nor skipped, with the caller's expired assignment of it if any."""
    user_id = bindparam("user_id", type_=Integer)
    mine = (
        (Assignment.batch_id == BatchItem.batch_id)
        & (Assignment.item_id == BatchItem.item_id)
        & (Assignment.annotator_id == user_id)
    )
    done_by_me = exists().where(mine, Assignment.status != EXPIRED)
    my_expired = select(Assignment.id).where(mine).scalar_subquery().label("mine")
    start = bindparam(arc_start, type_=Integer)
    arc = BatchItem.shuffle_key >= start if upper else BatchItem.shuffle_key < start
    conditions = [
        BatchItem.batch_id == bindparam("batch_id", type_=Integer),
        BatchItem.is_gold.is_(level is None),
        arc,
        ~done_by_me,
    ]
    if level is not None:
        conditions.append(BatchItem.taken == level)
    branch = (
        select(BatchItem.item_id, BatchItem.is_gold, my_expired)
        .where(*conditions)
        .order_by(BatchItem.shuffle_key)
        .limit(1)
        .with_for_update(skip_locked=True, key_share=True, of=BatchItem)
        .subquery()
    )
    return select(branch.c.item_id, branch.c.is_gold, branch.c.mine)


@cache
def _claim_statement(overlap: int) -> CompoundSelect[int, bool, int]:
    """The order of work (app/queue/__init__.py) as one statement per overlap value, built
    once (building it costs more than running it).

    A UNION ALL of one branch per (level, arc) in queue order, each an index range scan with
    `LIMIT 1 ... SKIP LOCKED`, under an outer `LIMIT 1`. The database runs the branches one
    after the other and stops at the first row, so only that row is locked and an empty
    level costs an index probe, not a round trip.
    """
    branches = [
        _claim_branch(level, f"start_{level}", upper)
        for level in range(overlap - 1, -1, -1)
        for upper in (True, False)
    ]
    return union_all(*branches).limit(1)


def _claim_gold(
    session: Session, batch_id: int, user_id: int
) -> tuple[int, bool, int | None] | None:
    """Locks a gold item of the batch I have not done or skipped (my own rotation of the
    shuffled order), with my expired assignment of it if I had one; no overlap limit."""
    params = {"batch_id": batch_id, "user_id": user_id}
    params["start"] = rotation_start(batch_id, user_id, -1)
    row = session.execute(_gold_claim_statement(), params).first()
    return None if row is None else (row[0], row[1], row[2])


@cache
def _gold_claim_statement() -> CompoundSelect[int, bool, int]:
    return union_all(*(_claim_branch(None, "start", upper) for upper in (True, False))).limit(1)


# ---------------------------------------------------------------- submit and skip


def _lock_own(
    session: Session, assignment_id: int, user: User
) -> tuple[Assignment, Batch, Project]:
    """The caller's own assignment with its batch and project, read after taking the caller's
    membership lock. 404 otherwise, also once the caller is no longer a member of the batch."""
    batch_id = session.scalar(_owner_batch(), {"assignment_id": assignment_id, "user_id": user.id})
    standing = None if batch_id is None else lock_standing(session, batch_id, user.id)
    if batch_id is None or standing is None:
        raise messages.no_assignment(assignment_id)
    if standing:  # an excluded member: their leases went back to the queue
        raise messages.excluded(batch_id)
    # Read in a statement that starts after the lock: under READ COMMITTED it sees what a
    # concurrent request of the same person committed while this one waited.
    row = session.execute(_own_with_context(), {"assignment_id": assignment_id}).one()
    return row[0], row[1], row[2]


def _move(
    session: Session,
    assignment: Assignment,
    old: AssignmentStatus,
    new: AssignmentStatus,
    **values: Any,
) -> bool:
    """Moves the assignment from status `old` to `new` unless it changed meanwhile (a sweep
    may expire a lease at any time: the row lock taken by this UPDATE settles who wins)."""
    params = {"p_id": assignment.id, "p_old": old, "p_new": new}
    params.update({f"v_{k}": v for k, v in values.items()})
    result = session.execute(_move_statement(tuple(sorted(values))), params)
    if not getattr(result, "rowcount", 0):
        return False
    for key, value in {"status": new, **values}.items():
        set_committed_value(assignment, key, value)
    return True


def _count(session: Session, assignment: Assignment, **deltas: int) -> None:
    params: dict[str, int] = {"p_batch": assignment.batch_id, "p_item": assignment.item_id}
    params.update({f"d_{k}": v for k, v in deltas.items()})
    session.execute(_count_statement(tuple(sorted(deltas))), params)


def submit(
    session: Session, assignment_id: int, user: User, body: AnnotationIn, now: datetime
) -> SubmitResult:
    """Submits or revises the caller's annotation (app/queue/front.py `submit`): the context
    read under the locks, the body validated against it, then the write."""
    assignment, batch, project = _lock_own(session, assignment_id, user)
    if not batch.is_open:
        raise messages.closed_for_submit(batch.id)
    response_ids = list(
        session.scalars(
            select(Response.id)
            .where(Response.item_id == assignment.item_id)
            .order_by(Response.position)
        )
    )
    payload = validate_annotation(project, response_ids, body)
    duration_ms, suggestion_viewed = body.duration_ms, body.suggestion_viewed

    if assignment.status == SUBMITTED:
        return _revise(session, assignment, batch, payload, duration_ms, suggestion_viewed, now)
    if assignment.status == SKIPPED:
        raise messages.skipped(assignment.id)
    was_live = _move(session, assignment, LEASED, SUBMITTED, submitted_at=now)
    if not was_live:  # expired, possibly a moment ago
        _retake(session, assignment, batch)
        _move(session, assignment, EXPIRED, SUBMITTED, submitted_at=now)
    annotation = Annotation(
        assignment_id=assignment.id,
        batch_id=batch.id,
        item_id=assignment.item_id,
        annotator_id=user.id,
        revision=1,
        payload=payload,
        duration_ms=duration_ms,
        suggestion_viewed=suggestion_viewed,
        created_at=now,
        updated_at=now,
    )
    session.add(annotation)
    session.flush()
    session.add(
        AnnotationRevision(
            annotation_id=annotation.id,
            revision=1,
            payload=payload,
            duration_ms=duration_ms,
            created_at=now,
        )
    )
    session.flush()
    if was_live:
        # Last, so that the batch item's row lock (the queue's hottest row under breadth-first
        # order) is held only until commit, not across the inserts above.
        _count(session, assignment, submitted=1)
    return SubmitResult(assignment, annotation, "created", _gold_floor_due(assignment, batch))


def _gold_floor_due(assignment: Assignment, batch: Batch) -> bool:
    return assignment.is_gold and batch.gold_floor is not None and batch.gold_floor_excludes


def _retake(session: Session, assignment: Assignment, batch: Batch) -> None:
    """Takes a slot again for an expired lease, under the batch item's row lock."""
    taken = session.scalar(
        select(BatchItem.taken)
        .where(BatchItem.batch_id == batch.id, BatchItem.item_id == assignment.item_id)
        .with_for_update(key_share=True)
    )
    # A gold item has no overlap limit: every member may answer it (issue 7).
    if taken is None or (taken >= batch.overlap and not assignment.is_gold):
        raise messages.gone(assignment.id, batch.overlap)
    _count(session, assignment, taken=1, submitted=1)


def _revise(
    session: Session,
    assignment: Assignment,
    batch: Batch,
    payload: dict[str, Any],
    duration_ms: int | None,
    suggestion_viewed: bool,
    now: datetime,
) -> SubmitResult:
    annotation = session.scalars(
        select(Annotation)
        .where(Annotation.assignment_id == assignment.id)
        .execution_options(populate_existing=True)
    ).one()
    if annotation.excluded_at is not None:
        raise messages.annotation_excluded(assignment.id)
    if suggestion_viewed and not annotation.suggestion_viewed:
        annotation.suggestion_viewed = True
    if annotation.payload == payload:
        session.flush()
        return SubmitResult(assignment, annotation, "unchanged")
    annotation.revision += 1
    annotation.payload = payload
    if duration_ms is not None:
        # Time spent on the item, all revisions together.
        annotation.duration_ms = (annotation.duration_ms or 0) + duration_ms
    annotation.updated_at = now
    session.add(
        AnnotationRevision(
            annotation_id=annotation.id,
            revision=annotation.revision,
            payload=payload,
            duration_ms=duration_ms,
            created_at=now,
        )
    )
    session.flush()
    return SubmitResult(assignment, annotation, "revised", _gold_floor_due(assignment, batch))


def skip(session: Session, assignment_id: int, user: User, reason: str | None) -> SkipResult:
    """Skips the caller's assignment (app/queue/front.py `skip`)."""
    assignment, batch, _ = _lock_own(session, assignment_id, user)
    if not batch.is_open:
        raise messages.closed(batch.id)
    if assignment.status == SKIPPED:
        return SkipResult(assignment, changed=False)
    if assignment.status == SUBMITTED:
        raise messages.already_submitted(assignment.id)
    note = require_storable("reason", (reason or "").strip()) or None
    if _move(session, assignment, LEASED, SKIPPED, skip_reason=note):
        _count(session, assignment, taken=-1)
    else:  # expired: its slot is already back in the queue
        _move(session, assignment, EXPIRED, SKIPPED, skip_reason=note)
    session.flush()
    return SkipResult(assignment, changed=True)


def unskip(session: Session, assignment_id: int, user: User, now: datetime) -> Assignment:
    """Undoes the caller's skip (app/queue/front.py `unskip`)."""
    assignment, batch, _ = _lock_own(session, assignment_id, user)
    if not batch.is_open:
        raise messages.closed(batch.id)
    if assignment.status == LEASED:
        return assignment
    if assignment.status != SKIPPED:
        raise messages.not_skipped(assignment.id)
    # The slot the skip gave back may have gone to someone else: the same rule as a claim
    # (never more than `overlap` live-or-submitted assignments; gold items have no limit).
    taken = session.scalar(
        select(BatchItem.taken)
        .where(BatchItem.batch_id == batch.id, BatchItem.item_id == assignment.item_id)
        .with_for_update(key_share=True)
    )
    if taken is None or (taken >= batch.overlap and not assignment.is_gold):
        raise messages.skip_slot_taken(assignment.id)
    until = now + timedelta(seconds=batch.lease_seconds)
    if _move(session, assignment, SKIPPED, LEASED, leased_until=until, skip_reason=None):
        _count(session, assignment, taken=1)
    session.flush()
    return assignment


# Statements of the hot path, built once: building a statement costs more CPU than the
# database needs to run it. (An UPDATE's bind names must differ from its column names.)


@cache
def _membership() -> Select[int, datetime | None]:
    return (
        select(BatchMember.user_id, BatchMember.excluded_at)
        .where(
            BatchMember.batch_id == bindparam("batch_id"),
            BatchMember.user_id == bindparam("user_id"),
        )
        .with_for_update(key_share=True)
    )


@cache
def _my_lease() -> Select[int]:
    return (
        select(Assignment.id)
        .where(
            Assignment.batch_id == bindparam("batch_id"),
            Assignment.annotator_id == bindparam("user_id"),
            Assignment.status == LEASED,
        )
        .order_by(Assignment.id)
        .limit(1)
    )


@cache
def _renew_statement() -> Update:
    return (
        update(Assignment)
        .where(Assignment.id == bindparam("p_id"), Assignment.status == bindparam("p_status"))
        .values(status=LEASED, leased_until=bindparam("p_until", type_=UTCDateTime()))
        .execution_options(synchronize_session=False)
    )


@cache
def _expired_leases() -> Select[int, int]:
    return (
        select(Assignment.id, Assignment.item_id)
        .where(
            Assignment.batch_id == bindparam("batch_id"),
            Assignment.status == LEASED,
            Assignment.leased_until < bindparam("now"),
        )
        .order_by(Assignment.leased_until)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True, key_share=True)
    )


@cache
def _taken_delta() -> Update:
    return (
        update(BatchItem)
        .where(BatchItem.batch_id == bindparam("p_batch"), BatchItem.item_id == bindparam("p_item"))
        .values(taken=BatchItem.taken + bindparam("p_delta", type_=Integer))
        .execution_options(synchronize_session=False)
    )


@cache
def _owner_batch() -> Select[int]:
    return select(Assignment.batch_id).where(
        Assignment.id == bindparam("assignment_id"),
        Assignment.annotator_id == bindparam("user_id"),
    )


@cache
def _own_with_context() -> Select[Assignment, Batch, Project]:
    return (
        select(Assignment, Batch, Project)
        .join(Batch, Batch.id == Assignment.batch_id)
        .join(Project, Project.id == Batch.project_id)
        .where(Assignment.id == bindparam("assignment_id"))
        # Guidelines can be long and a submit never needs them.
        .options(defer(Project.guidelines))
        .execution_options(populate_existing=True)
    )


@cache
def _move_statement(columns: tuple[str, ...]) -> Update:
    values: dict[str, Any] = {"status": bindparam("p_new")}
    # Bind names must differ from column names in a SET clause.
    values.update({c: bindparam(f"v_{c}", type_=Assignment.__table__.c[c].type) for c in columns})
    return (
        update(Assignment)
        .where(Assignment.id == bindparam("p_id"), Assignment.status == bindparam("p_old"))
        .values(values)
        .execution_options(synchronize_session=False)
    )


@cache
def _count_statement(columns: tuple[str, ...]) -> Update:
    values = {c: getattr(BatchItem, c) + bindparam(f"d_{c}", type_=Integer) for c in columns}
    return (
        update(BatchItem)
        .where(BatchItem.batch_id == bindparam("p_batch"), BatchItem.item_id == bindparam("p_item"))
        .values(values)
        .execution_options(synchronize_session=False)
    )
