"""Excluding annotations from a batch's results, and counting them again.

An excluded annotation is kept (with when, why and which kind of decision: see
app/annotations/counted.py) but its slot goes back to the queue: the batch item's `taken` and
`submitted` counters drop by one, so the item is served to someone else until it holds k
counted annotations again. Its assignment stays 'submitted', so the queue never serves that
item to the same annotator again (and the unique (batch, item, annotator) assignment holds).
Counting it again adds it back to the counters, even above the batch's overlap: such an item
is simply never served again, and consensus reads however many counted answers it holds.

These are admin actions, rare next to the queue's hot path: the same ORM code runs on SQLite
and PostgreSQL, under row locks taken in the queue's lock order (app/queue/__init__.py):
  1. the annotators' membership rows, ascending user id (each queue operation holds only its
     own, so taking several in one order cannot deadlock against it);
  2. the member's live leases (excluding a member), then the annotations (SELECT ... FOR
     UPDATE, its condition re-checked after any wait, so two concurrent exclusions of one
     annotation change the counters once);
  3. batch items, ascending item id.
Every function flushes only; the caller's session dependency commits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from app.annotations.counted import ExclusionKind, counted
from app.annotations.models import Annotation
from app.batches.models import Assignment, AssignmentStatus, BatchItem, BatchMember
from app.core.json_text import require_storable
from app.db import utcnow
from app.errors import Invalid
from app.queue import orm


def exclude_annotations(
    session: Session,
    *,
    batch_id: int,
    annotation_ids: Collection[int],
    kind: ExclusionKind | str,
    reason: str | None,
    now: datetime | None = None,
) -> int:
    """Marks the batch's counted annotations among `annotation_ids` excluded (`kind`: 'member'
    or 'review'; `reason` kept as given) and returns their slots to the queue. Ids that are
    not the batch's, or already excluded, are left alone. How many were excluded."""
    exclusion_kind, note = _kind(kind), _note(reason)
    locked = _lock_annotations(session, batch_id, annotation_ids, excluded=False)
    _mark(session, locked, now or utcnow(), exclusion_kind, note)
    _recount(session, batch_id, Counter(item for _, item in locked), Counter(), -1)
    return len(locked)


def include_annotations(session: Session, *, batch_id: int, annotation_ids: Collection[int]) -> int:
    """Counts the batch's excluded annotations among `annotation_ids` again (their items may
    then hold more than the overlap; nothing refuses that). How many were included."""
    locked = _lock_annotations(session, batch_id, annotation_ids, excluded=True)
    _mark(session, locked, None, None, None)
    _recount(session, batch_id, Counter(item for _, item in locked), Counter(), +1)
    return len(locked)


def exclude_member(session: Session, *, batch_id: int, user_id: int, reason: str | None) -> int:
    """Excludes a member from the batch: they are never served again, their live leases go
    back to the queue and their counted annotations in the batch are excluded (kind
    'member'). Excluding an excluded member again changes nothing but the reason. How many
    annotations were excluded. The caller has checked that `user_id` is a member."""
    note = _note(reason)
    now = utcnow()
    orm.lock_membership(session, batch_id, user_id)
    member = session.get(BatchMember, (batch_id, user_id), populate_existing=True)
    assert member is not None
    if member.excluded_at is None:
        member.excluded_at = now
    member.exclusion_reason = note
    session.flush()
    leases = session.execute(
        select(Assignment.id, Assignment.item_id)
        .where(
            Assignment.batch_id == batch_id,
            Assignment.annotator_id == user_id,
            Assignment.status == AssignmentStatus.LEASED,
        )
        .order_by(Assignment.id)
        .with_for_update(key_share=True)
    ).all()
    locked = _locked_rows(session, batch_id, counted() & (Annotation.annotator_id == user_id))
    if leases:
        session.execute(
            update(Assignment)
            .where(Assignment.id.in_([row.id for row in leases]))
            .values(status=AssignmentStatus.EXPIRED)
            .execution_options(synchronize_session="fetch")
        )
    _mark(session, locked, now, ExclusionKind.MEMBER, note)
    # One pass over the batch items, ascending: released leases free a slot; excluded
    # annotations a slot and a submission.
    released = Counter(row.item_id for row in leases)
    _recount(session, batch_id, Counter(item for _, item in locked), released, -1)
    return len(locked)


def include_member(session: Session, *, batch_id: int, user_id: int) -> int:
    """Includes an excluded member again: served again, and the annotations their exclusion
    took out counted again (a reviewer's exclusions stay). How many annotations came back."""
    orm.lock_membership(session, batch_id, user_id)
    member = session.get(BatchMember, (batch_id, user_id), populate_existing=True)
    assert member is not None
    member.excluded_at = None
    member.exclusion_reason = None
    session.flush()
    mine = (Annotation.annotator_id == user_id) & (
        Annotation.exclusion_kind == ExclusionKind.MEMBER.value
    )
    locked = _locked_rows(session, batch_id, mine)
    _mark(session, locked, None, None, None)
    _recount(session, batch_id, Counter(item for _, item in locked), Counter(), +1)
    return len(locked)


def _kind(kind: ExclusionKind | str) -> ExclusionKind:
    try:
        return ExclusionKind(kind)
    except ValueError:
        raise Invalid(f"kind: {kind!r} is not one of member, review") from None


def _note(reason: str | None) -> str | None:
    return require_storable("reason", (reason or "").strip()) or None


def _lock_annotations(
    session: Session, batch_id: int, annotation_ids: Collection[int], *, excluded: bool
) -> list[tuple[int, int]]:
    """Locks, in the lock order, the batch's annotations among `annotation_ids` that are
    (`excluded`) or are not excluded: their (id, item id)."""
    ids = sorted(set(annotation_ids))
    if not ids:
        return []
    annotators = session.scalars(
        select(Annotation.annotator_id)
        .where(Annotation.batch_id == batch_id, Annotation.id.in_(ids))
        .distinct()
    ).all()
    for user_id in sorted(annotators):
        orm.lock_membership(session, batch_id, user_id)
    state = ~counted() if excluded else counted()
    return _locked_rows(session, batch_id, Annotation.id.in_(ids) & state)


def _locked_rows(
    session: Session, batch_id: int, condition: ColumnElement[bool]
) -> list[tuple[int, int]]:
    """Row-locks the batch's annotations that meet `condition` (re-checked after any wait):
    their (id, item id)."""
    rows = session.execute(
        select(Annotation.id, Annotation.item_id)
        .where(Annotation.batch_id == batch_id, condition)
        .order_by(Annotation.id)
        .with_for_update()
    ).all()
    return [(row[0], row[1]) for row in rows]


def _mark(
    session: Session,
    rows: list[tuple[int, int]],
    when: datetime | None,
    kind: ExclusionKind | None,
    reason: str | None,
) -> None:
    if not rows:
        return
    session.execute(
        update(Annotation)
        .where(Annotation.id.in_([annotation_id for annotation_id, _ in rows]))
        .values(
            excluded_at=when,
            exclusion_kind=None if kind is None else kind.value,
            exclusion_reason=reason,
        )
        .execution_options(synchronize_session="fetch")
    )


def _recount(
    session: Session, batch_id: int, annotations: Counter[int], leases: Counter[int], sign: int
) -> None:
    """Moves, per item in ascending id, `taken` by `sign` per annotation and lease and
    `submitted` by `sign` per annotation."""
    for item_id in sorted(annotations | leases):
        submitted = sign * annotations[item_id]
        taken = submitted + sign * leases[item_id]
        session.execute(
            update(BatchItem)
            .where(BatchItem.batch_id == batch_id, BatchItem.item_id == item_id)
            .values(taken=BatchItem.taken + taken, submitted=BatchItem.submitted + submitted)
            .execution_options(synchronize_session=False)
        )
    # Batch items this session holds are stale now.
    for instance in list(session.identity_map.values()):
        if isinstance(instance, BatchItem) and instance.batch_id == batch_id:
            session.expire(instance)
