"""Submitting, revising and skipping an assignment (the caller's own, while the batch is open).

On PostgreSQL a submit is two calls of the queue's functions (app/batches/queue_pg.py) that
keep the same rules and locks as the Python below, which SQLite uses.

Every function takes the caller's membership lock, then the assignment's row lock (through a
conditional UPDATE), then the batch item's: the queue's lock order (app/batches/queue.py). A
submit racing a sweep, a claim or a second submit of the same answer is serialised, never
lost or doubled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal

from sqlalchemy import Integer, Select, Update, bindparam, select, update
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import set_committed_value

from app.annotations.models import Annotation, AnnotationRevision
from app.annotations.schemas import AnnotationIn
from app.annotations.validation import validate_annotation
from app.auth.models import User
from app.batches import queue_pg
from app.batches.models import Assignment, Batch, BatchItem
from app.batches.queue import load_item, lock_membership, ordered_responses
from app.core.json_text import require_storable
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.items.models import Item, Response
from app.projects.models import Project

Outcome = Literal["created", "revised", "unchanged"]


@dataclass(frozen=True)
class SubmitResult:
    """`outcome`: "created" (first submit), "revised" (new revision kept) or "unchanged"
    (the same payload again: idempotent, no new revision)."""

    assignment: Assignment
    annotation: Annotation
    outcome: Outcome


@dataclass(frozen=True)
class SkipResult:
    assignment: Assignment
    # False when the assignment was already skipped (a repeated skip changes nothing).
    changed: bool


@dataclass(frozen=True)
class AssignmentView:
    assignment: Assignment
    batch: Batch
    project: Project
    item: Item
    responses: list[Response]  # in the assignment's display order
    annotation: Annotation | None


def _lock(session: Session, assignment_id: int, user: User) -> tuple[Assignment, Batch, Project]:
    """The caller's own assignment with its batch and project, read after taking the caller's
    membership lock (the queue's per-annotator lock). 404 otherwise, also once the caller is
    no longer a member of the batch."""
    batch_id = session.scalar(_owner_batch(), {"assignment_id": assignment_id, "user_id": user.id})
    if batch_id is None:
        raise NotFound(f"no assignment {assignment_id}")
    try:
        lock_membership(session, batch_id, user.id)
    except NotFound:
        raise NotFound(f"no assignment {assignment_id}") from None
    # Read in a statement that starts after the lock: under READ COMMITTED it sees what a
    # concurrent request of the same person committed while this one waited.
    row = session.execute(_own_with_context(), {"assignment_id": assignment_id}).one()
    return row[0], row[1], row[2]


def _move(session: Session, assignment: Assignment, old: str, new: str, **values: Any) -> bool:
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
    if queue_pg.is_postgresql(session):
        return _submit_on_postgresql(session, assignment_id, user, body, now)
    assignment, batch, project = _lock(session, assignment_id, user)
    if not batch.is_open:
        raise Conflict(f"batch {batch.id} is closed: annotations can no longer be submitted")
    response_ids = list(
        session.scalars(
            select(Response.id)
            .where(Response.item_id == assignment.item_id)
            .order_by(Response.position)
        )
    )
    payload = validate_annotation(project, response_ids, body)

    if assignment.status == "submitted":
        return _revise(session, assignment, payload, body, now)
    if assignment.status == "skipped":
        raise Conflict(f"assignment {assignment.id} was skipped; the item went to other annotators")
    was_live = _move(session, assignment, "leased", "submitted", submitted_at=now)
    if not was_live:  # expired, possibly a moment ago
        _retake(session, assignment, batch)
        _move(session, assignment, "expired", "submitted", submitted_at=now)
    annotation = Annotation(
        assignment_id=assignment.id,
        batch_id=batch.id,
        item_id=assignment.item_id,
        annotator_id=user.id,
        revision=1,
        payload=payload,
        duration_ms=body.duration_ms,
        suggestion_viewed=body.suggestion_viewed,
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
            duration_ms=body.duration_ms,
            created_at=now,
        )
    )
    session.flush()
    if was_live:
        # Last, so that the batch item's row lock (the queue's hottest row under breadth-first
        # order) is held only until commit, not across the inserts above.
        _count(session, assignment, submitted=1)
    return SubmitResult(assignment, annotation, "created")


def _submit_on_postgresql(
    session: Session, assignment_id: int, user: User, body: AnnotationIn, now: datetime
) -> SubmitResult:
    """`submit` as two calls of the queue's functions (app/batches/queue_pg.py)."""
    session.flush()
    context = queue_pg.submit_context(session, assignment_id, user.id, now)
    payload = validate_annotation(context, context.response_ids, body)
    row = queue_pg.submit(session, assignment_id, user.id, payload, body, now)
    queue_pg.expire_queue_rows(session)  # the function changed rows this session may hold
    assignment = session.scalars(
        select(Assignment)
        .where(Assignment.id == assignment_id)
        .execution_options(populate_existing=True)
    ).one()
    annotation = session.scalars(
        select(Annotation)
        .where(Annotation.id == row.annotation_id)
        .execution_options(populate_existing=True)
    ).one()
    outcome: Outcome = (
        "created"
        if row.outcome == "created"
        else ("revised" if row.outcome == "revised" else "unchanged")
    )
    return SubmitResult(assignment, annotation, outcome)


def _retake(session: Session, assignment: Assignment, batch: Batch) -> None:
    """Takes a slot again for an expired lease, under the batch item's row lock."""
    taken = session.scalar(
        select(BatchItem.taken)
        .where(BatchItem.batch_id == batch.id, BatchItem.item_id == assignment.item_id)
        .with_for_update(key_share=True)
    )
    # A gold item has no overlap limit: every member may answer it (issue 7).
    if taken is None or (taken >= batch.overlap and not assignment.is_gold):
        raise Conflict(
            f"assignment {assignment.id}: your lease expired and the item has since gone to "
            f"other annotators ({batch.overlap} of {batch.overlap} slots taken); this answer "
            "was not saved"
        )
    _count(session, assignment, taken=1, submitted=1)


def _revise(
    session: Session,
    assignment: Assignment,
    payload: dict[str, object],
    body: AnnotationIn,
    now: datetime,
) -> SubmitResult:
    annotation = session.scalars(
        select(Annotation)
        .where(Annotation.assignment_id == assignment.id)
        .execution_options(populate_existing=True)
    ).one()
    if body.suggestion_viewed and not annotation.suggestion_viewed:
        annotation.suggestion_viewed = True
    if annotation.payload == payload:
        session.flush()
        return SubmitResult(assignment, annotation, "unchanged")
    annotation.revision += 1
    annotation.payload = payload
    if body.duration_ms is not None:
        # Time spent on the item, all revisions together.
        annotation.duration_ms = (annotation.duration_ms or 0) + body.duration_ms
    annotation.updated_at = now
    session.add(
        AnnotationRevision(
            annotation_id=annotation.id,
            revision=annotation.revision,
            payload=payload,
            duration_ms=body.duration_ms,
            created_at=now,
        )
    )
    session.flush()
    return SubmitResult(assignment, annotation, "revised")


def skip(
    session: Session,
    assignment_id: int,
    user: User,
    reason: str | None = None,
    now: datetime | None = None,
) -> SkipResult:
    """Skips the caller's assignment: its slot goes back to the queue for other annotators
    and the item never comes back to this one. Repeating a skip changes nothing; skipping a
    submitted assignment or in a closed batch is a Conflict. Flushes only."""
    assignment, batch, _ = _lock(session, assignment_id, user)
    if not batch.is_open:
        raise Conflict(f"batch {batch.id} is closed")
    if assignment.status == "skipped":
        return SkipResult(assignment, changed=False)
    if assignment.status == "submitted":
        raise Conflict(
            f"assignment {assignment.id} is already submitted; revise it instead of skipping"
        )
    note = require_storable("reason", (reason or "").strip()) or None
    if _move(session, assignment, "leased", "skipped", skip_reason=note):
        _count(session, assignment, taken=-1)
    else:  # expired: its slot is already back in the queue
        _move(session, assignment, "expired", "skipped", skip_reason=note)
    session.flush()
    return SkipResult(assignment, changed=True)


def unskip(
    session: Session, assignment_id: int, user: User, now: datetime | None = None
) -> Assignment:
    """Undoes the caller's skip: the assignment is leased to them again, if its item still has
    a free slot (someone else may have taken the slot the skip gave back; then Conflict).
    Undoing twice changes nothing. Flushes only."""
    now = now or utcnow()
    assignment, batch, _ = _lock(session, assignment_id, user)
    if not batch.is_open:
        raise Conflict(f"batch {batch.id} is closed")
    if assignment.status == "leased":
        return assignment
    if assignment.status != "skipped":
        raise Conflict(f"assignment {assignment.id} is not skipped")
    taken = session.scalar(
        select(BatchItem.taken)
        .where(BatchItem.batch_id == batch.id, BatchItem.item_id == assignment.item_id)
        .with_for_update(key_share=True)
    )
    if taken is None or (taken >= batch.overlap and not assignment.is_gold):
        raise Conflict("the skipped item has gone to other annotators meanwhile, so the skip stays")
    until = now + timedelta(seconds=batch.lease_seconds)
    if _move(session, assignment, "skipped", "leased", leased_until=until, skip_reason=None):
        _count(session, assignment, taken=1)
    session.flush()
    return assignment


def assignment_view(session: Session, assignment_id: int, user: User) -> AssignmentView:
    """An assignment with its item (display order) and current annotation. Annotators see
    only their own (404 otherwise); admins see any."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or (not user.is_admin and assignment.annotator_id != user.id):
        raise NotFound(f"no assignment {assignment_id}")
    batch = session.get_one(Batch, assignment.batch_id)
    project = session.get_one(Project, batch.project_id)
    item = load_item(session, assignment.item_id)
    annotation = session.scalar(select(Annotation).where(Annotation.assignment_id == assignment.id))
    return AssignmentView(
        assignment, batch, project, item, ordered_responses(item, assignment), annotation
    )


# Statements of the hot path, built once: building one costs more CPU than running it.


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
