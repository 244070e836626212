"""Creating batches, opening and closing them, members, and progress counts."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, insert, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.auth.models import User
from app.batches.models import (
    NO_TARGET,
    Assignment,
    AssignmentStatus,
    Batch,
    BatchItem,
    BatchMember,
    QualificationState,
)
from app.batches.schemas import GATING_DIMENSIONS
from app.db import utcnow
from app.errors import Conflict, Invalid, NotFound
from app.items.models import Item
from app.projects.models import Project

INSERT_CHUNK = 5000


def create_batch(
    session: Session,
    project: Project,
    name: str,
    *,
    overlap: int = 3,
    lease_seconds: int = 30 * 60,
    item_ids: Sequence[int] | None = None,
    prompt_source: str | None = None,
    sample_size: int | None = None,
    sample_seed: int | None = None,
    is_open: bool = True,
    options: Mapping[str, Any] | None = None,
) -> Batch:
    """A batch of the project's items: `item_ids` (default: all of them), narrowed to one
    `prompt_source` if given, then a random sample of `sample_size` of those (reproducible
    with `sample_seed`). `options`: the queue options of `set_queue_options`."""
    name = name.strip()
    if not name:
        raise Invalid("name: must not be empty")
    if overlap < 1:
        raise Invalid("overlap: must be at least 1")
    if lease_seconds < 1:
        raise Invalid("lease_seconds: must be at least 1")
    exists = session.scalar(
        select(Batch.id).where(Batch.project_id == project.id, Batch.name == name)
    )
    if exists is not None:
        raise Conflict(f"batch {name!r} already exists in project {project.name!r}")
    ids = _select_items(session, project, item_ids, prompt_source)
    if sample_size is not None:
        if sample_size < 1:
            raise Invalid("sample_size: must be at least 1")
        if sample_size > len(ids):
            raise Invalid(f"sample_size: only {len(ids)} items match, cannot sample {sample_size}")
        ids = sorted(random.Random(sample_seed).sample(ids, sample_size))
    batch = Batch(
        project_id=project.id,
        name=name,
        overlap=overlap,
        lease_seconds=lease_seconds,
        is_open=is_open,
    )
    set_queue_options(batch, **(options or {}))
    session.add(batch)
    session.flush()
    rng = random.Random()
    # An adaptive batch starts every item at its minimum (app/queue/targets.py).
    wanted = batch.min_overlap if batch.is_adaptive else NO_TARGET
    rows = [
        {"batch_id": batch.id, "item_id": i, "shuffle_key": rng.randrange(2**31), "wanted": wanted}
        for i in ids
    ]
    for start in range(0, len(rows), INSERT_CHUNK):
        session.execute(insert(BatchItem), rows[start : start + INSERT_CHUNK])
    return batch


def _select_items(
    session: Session,
    project: Project,
    item_ids: Sequence[int] | None,
    prompt_source: str | None,
) -> list[int]:
    query = select(Item.id).where(Item.project_id == project.id).order_by(Item.id)
    if item_ids is None:
        ids = list(session.scalars(query))
    else:
        wanted = list(dict.fromkeys(item_ids))
        ids = []
        for start in range(0, len(wanted), INSERT_CHUNK):
            part = wanted[start : start + INSERT_CHUNK]
            ids.extend(session.scalars(query.where(Item.id.in_(part))))
        missing = set(wanted) - set(ids)
        if missing:
            raise Invalid(f"item_ids: no item {min(missing)} in project {project.id}")
        ids.sort()
    if prompt_source is not None:
        matching = set(
            session.scalars(
                select(Item.id).where(
                    Item.project_id == project.id, Item.prompt_source == prompt_source
                )
            )
        )
        ids = [i for i in ids if i in matching]
        if not ids:
            raise Invalid(f"prompt_source: no item with prompt source {prompt_source!r}")
    if not ids:
        raise Invalid("item_ids: a batch needs at least one item")
    return ids


def get_batch(session: Session, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    return batch


def is_member(session: Session, batch_id: int, user_id: int) -> bool:
    return session.get(BatchMember, (batch_id, user_id)) is not None


def is_excluded(session: Session, batch_id: int, user_id: int) -> bool:
    """The user is a member of the batch whom an admin (or its gold floor) excluded."""
    member = session.get(BatchMember, (batch_id, user_id))
    return member is not None and member.excluded_at is not None


def visible_batch(session: Session, batch_id: int, user: User) -> Batch:
    """The batch if the caller may see it: admins see every batch, annotators only those they
    are members of; anything else is 404 so that ids cannot be probed."""
    batch = session.get(Batch, batch_id)
    if batch is None or (not user.is_admin and not is_member(session, batch_id, user.id)):
        raise NotFound(f"no batch {batch_id}")
    if not user.is_admin and is_archived(session, batch):
        raise NotFound(f"no batch {batch_id}")
    return batch


def is_archived(session: Session, batch: Batch) -> bool:
    """The batch or its project is archived."""
    if batch.archived_at is not None:
        return True
    return (
        session.scalar(select(Project.archived_at).where(Project.id == batch.project_id))
        is not None
    )


def set_open(session: Session, batch: Batch, is_open: bool) -> Batch:
    """Closing stops next, submit and skip (409) without touching any data; reopening
    resumes them. An archived batch (or one of an archived project) stays closed."""
    if is_open and is_archived(session, batch):
        raise Conflict(f"batch {batch.id} is archived (or its project is): unarchive it first")
    batch.is_open = is_open
    session.flush()
    return batch


class Unset:
    """A field left out of an update, apart from one set to null."""


UNSET = Unset()


def update_batch(
    session: Session,
    batch: Batch,
    *,
    name: str | None = None,
    overlap: int | None = None,
    lease_seconds: int | None = None,
    review_rate: float | None = None,
    min_seconds: float | Unset | None = UNSET,
) -> Batch:
    if name is not None and name.strip() != batch.name:
        name = name.strip()
        taken = session.scalar(
            select(Batch.id).where(Batch.project_id == batch.project_id, Batch.name == name)
        )
        if not name:
            raise Invalid("name: must not be empty")
        if taken is not None:
            raise Conflict(f"batch {name!r} already exists in this project")
        batch.name = name
    if overlap is not None:
        if overlap < batch.overlap:
            raise Invalid(
                f"overlap: can only be raised (now {batch.overlap}); lowering it could leave "
                "items with more annotations than asked"
            )
        batch.overlap = overlap
    if lease_seconds is not None:
        if lease_seconds < 1:
            raise Invalid("lease_seconds: must be at least 1")
        batch.lease_seconds = lease_seconds
    if review_rate is not None:
        if not (math.isfinite(review_rate) and 0 <= review_rate <= 1):
            raise Invalid("review_rate: must be between 0 and 1")
        batch.review_rate = review_rate
    if not isinstance(min_seconds, Unset):
        if min_seconds is not None and not (math.isfinite(min_seconds) and min_seconds >= 0):
            raise Invalid("min_seconds: must be a number of seconds, 0 or more")
        batch.min_seconds = min_seconds
    session.flush()
    return batch


# Typed as Any so that the options keep their plain types in the signature.
LEFT_OUT: Any = object()


def set_queue_options(
    batch: Batch,
    *,
    overlap_min: int | None = LEFT_OUT,
    early_stop_agreement: float = LEFT_OUT,
    gating: Sequence[str] | None = LEFT_OUT,
    max_items_per_annotator: int | None = LEFT_OUT,
) -> bool:
    """Sets the adaptive overlap and quota options given (None: back to the default: a fixed
    overlap, every asked dimension, no quota). Whether the items' targets must be recomputed
    (the caller does it through the queue: app/queue/front.py `refresh_targets`)."""
    before = (batch.min_overlap, batch.early_stop_agreement, batch.gating)
    if overlap_min is not LEFT_OUT:
        if overlap_min is not None and not 1 <= overlap_min <= batch.overlap:
            raise Invalid(f"overlap_min: must be between 1 and the overlap ({batch.overlap})")
        batch.overlap_min = overlap_min
    elif batch.overlap_min is not None and batch.overlap_min > batch.overlap:
        raise Invalid(f"overlap_min: must be between 1 and the overlap ({batch.overlap})")
    if early_stop_agreement is not LEFT_OUT:
        if early_stop_agreement is None or not 0.5 < early_stop_agreement <= 1.0:
            raise Invalid("early_stop_agreement: must be above 0.5 and at most 1.0")
        batch.early_stop_agreement = float(early_stop_agreement)
    if gating is not LEFT_OUT:
        if gating is not None:
            unknown = [d for d in gating if d not in GATING_DIMENSIONS]
            if unknown:
                raise Invalid(
                    f"gating: unknown dimension {unknown[0]!r} "
                    f"(one of {', '.join(GATING_DIMENSIONS)})"
                )
            if not gating:
                raise Invalid("gating: name at least one dimension, or null for the default")
            gating = [d for d in GATING_DIMENSIONS if d in gating]
        batch.gating = None if gating is None else list(gating)
    if max_items_per_annotator is not LEFT_OUT:
        if max_items_per_annotator is not None and max_items_per_annotator < 1:
            raise Invalid("max_items_per_annotator: must be at least 1, or null for no quota")
        batch.max_items_per_annotator = max_items_per_annotator
    if batch.early_stop_agreement is None:
        batch.early_stop_agreement = 1.0
    return before != (batch.min_overlap, batch.early_stop_agreement, batch.gating)


def set_suggestion_threshold(session: Session, batch: Batch, threshold: float | None) -> None:
    """Annotations contradicting a suggestion at least this confident are flagged for review
    (app/suggestions/prescreen.py); None flags nothing."""
    batch.suggestion_threshold = threshold
    session.flush()


def add_member(session: Session, batch: Batch, user: User) -> None:
    if not user.is_active:
        raise Invalid(f"username: user {user.username!r} is deactivated")
    if session.get(BatchMember, (batch.id, user.id)) is None:
        # An annotator joining a batch that asks for a qualification takes it first
        # (app/qualification/); admins are trusted with the guidelines they wrote.
        asks = batch.qualification_threshold is not None and user.role == "annotator"
        session.add(
            BatchMember(
                batch_id=batch.id,
                user_id=user.id,
                qualification=QualificationState.PENDING if asks else None,
            )
        )
        session.flush()


@dataclass(frozen=True)
class Progress:
    items: int
    overlap: int
    wanted: int
    submitted: int
    items_complete: int
    items_untouched: int
    live_leases: int
    skipped: int
    # Annotations the batch needs, as a range while adaptive items may still escalate
    # (`wanted` is the lower end: equal to `submitted` once every item is complete).
    wanted_at_most: int = 0

    @property
    def percent(self) -> float:
        return round(100.0 * self.submitted / self.wanted, 1) if self.wanted else 0.0


@dataclass(frozen=True)
class Counts:
    """One annotator's assignments in a batch by state (`leased` counts unexpired leases)."""

    submitted: int = 0
    skipped: int = 0
    leased: int = 0


@dataclass(frozen=True)
class ItemNeeds:
    """SQL expressions over a batch item: whether it is complete, and the annotations it
    needs in all (at least, at most)."""

    complete: ColumnElement[bool]
    at_least: ColumnElement[int]
    at_most: ColumnElement[int]


def item_needs(overlap: int | ColumnElement[int] | InstrumentedAttribute[int]) -> ItemNeeds:
    """An item is complete at its target (the overlap for a fixed batch; app/queue/targets.py
    for an adaptive one) and then needs what it has; otherwise at least its target and at most
    the overlap. `overlap`: the batch's, or the `batches.overlap` column in a join."""
    target = case((BatchItem.wanted < overlap, BatchItem.wanted), else_=overlap)
    complete = BatchItem.submitted >= target
    return ItemNeeds(
        complete,
        case((complete, BatchItem.submitted), else_=target),
        case((complete, BatchItem.submitted), else_=overlap),
    )


def batch_progress(session: Session, batch: Batch, now: datetime | None = None) -> Progress:
    now = now or utcnow()
    need = item_needs(batch.overlap)
    items, submitted, n_complete, untouched, at_least, at_most = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(BatchItem.submitted), 0),
            func.count().filter(need.complete),
            func.count().filter(BatchItem.taken == 0),
            func.coalesce(func.sum(need.at_least), 0),
            func.coalesce(func.sum(need.at_most), 0),
        ).where(BatchItem.batch_id == batch.id, BatchItem.is_gold.is_(False))
    ).one()
    leased, skipped = session.execute(
        select(
            func.count().filter(
                Assignment.status == AssignmentStatus.LEASED, Assignment.leased_until >= now
            ),
            func.count().filter(Assignment.status == AssignmentStatus.SKIPPED),
        ).where(
            Assignment.batch_id == batch.id,
            Assignment.status.in_((AssignmentStatus.LEASED, AssignmentStatus.SKIPPED)),
        )
    ).one()
    return Progress(
        items=items,
        overlap=batch.overlap,
        wanted=int(at_least),
        wanted_at_most=int(at_most),
        submitted=int(submitted),
        items_complete=n_complete,
        items_untouched=untouched,
        live_leases=leased,
        skipped=skipped,
    )


def annotator_counts(
    session: Session, batch_id: int, now: datetime | None = None, user_id: int | None = None
) -> dict[int, Counts]:
    """Per annotator (or just `user_id`): submitted, skipped and live-leased assignments."""
    now = now or utcnow()
    query = (
        select(
            Assignment.annotator_id,
            func.count().filter(Assignment.status == AssignmentStatus.SUBMITTED),
            func.count().filter(Assignment.status == AssignmentStatus.SKIPPED),
            func.count().filter(
                Assignment.status == AssignmentStatus.LEASED, Assignment.leased_until >= now
            ),
        )
        # Qualification answers are the member's test, not their work.
        .where(Assignment.batch_id == batch_id, Assignment.is_qualification.is_(False))
        .group_by(Assignment.annotator_id)
    )
    if user_id is not None:
        query = query.where(Assignment.annotator_id == user_id)
    return {row[0]: Counts(row[1], row[2], row[3]) for row in session.execute(query)}


@dataclass(frozen=True)
class BatchSummary:
    batch: Batch
    items: int
    submitted: int
    # The annotations wanted, at least (Progress.wanted); None: items x overlap.
    at_least: int | None = None

    @property
    def wanted(self) -> int:
        return self.items * self.batch.overlap if self.at_least is None else self.at_least

    @property
    def percent(self) -> float:
        return round(100.0 * self.submitted / self.wanted, 1) if self.wanted else 0.0


def list_batches(
    session: Session,
    user: User,
    *,
    project_id: int | None = None,
    open_only: bool = False,
    include_archived: bool = False,
) -> list[BatchSummary]:
    """Batches the caller may see (admins: all; annotators: their own), with item counts.

    Archived batches, and the batches of archived projects, are left out unless an admin asks
    for them."""
    need = item_needs(Batch.overlap)
    counts = (
        select(
            BatchItem.batch_id.label("batch_id"),
            func.count().label("n_items"),
            func.coalesce(func.sum(BatchItem.submitted), 0).label("n_submitted"),
            func.coalesce(func.sum(need.at_least), 0).label("n_wanted"),
        )
        .join(Batch, Batch.id == BatchItem.batch_id)
        # Gold items are served to every member, beyond the overlap: they are not the work
        # the batch asks for, so progress counts ordinary items only (as the dashboard does).
        .where(BatchItem.is_gold.is_(False))
        .group_by(BatchItem.batch_id)
        .subquery()
    )
    query = (
        select(Batch, counts.c.n_items, counts.c.n_submitted, counts.c.n_wanted)
        .outerjoin(counts, counts.c.batch_id == Batch.id)
        .order_by(Batch.id)
    )
    if not user.is_admin:
        query = query.join(
            BatchMember, (BatchMember.batch_id == Batch.id) & (BatchMember.user_id == user.id)
        )
    if project_id is not None:
        query = query.where(Batch.project_id == project_id)
    if open_only:
        query = query.where(Batch.is_open.is_(True))
    if not (include_archived and user.is_admin):
        live_projects = select(Project.id).where(Project.archived_at.is_(None))
        query = query.where(Batch.archived_at.is_(None), Batch.project_id.in_(live_projects))
    return [
        BatchSummary(batch, int(items or 0), int(submitted or 0), int(wanted or 0))
        for batch, items, submitted, wanted in session.execute(query)
    ]


@dataclass(frozen=True)
class MemberRow:
    user: User
    added_at: datetime
    counts: Counts
    excluded_at: datetime | None = None
    exclusion_reason: str | None = None


def list_members(session: Session, batch: Batch, now: datetime | None = None) -> list[MemberRow]:
    counts = annotator_counts(session, batch.id, now)
    rows = session.execute(
        select(User, BatchMember)
        .join(BatchMember, BatchMember.user_id == User.id)
        .where(BatchMember.batch_id == batch.id)
        .order_by(User.username)
    )
    return [
        MemberRow(
            user,
            member.added_at,
            counts.get(user.id, Counts()),
            member.excluded_at,
            member.exclusion_reason,
        )
        for user, member in rows
    ]
