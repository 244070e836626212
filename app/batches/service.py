"""Creating batches, opening and closing them, members, and progress counts."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.batches.models import Assignment, AssignmentStatus, Batch, BatchItem, BatchMember
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
) -> Batch:
    """A batch of the project's items: `item_ids` (default: all of them), narrowed to one
    `prompt_source` if given, then a random sample of `sample_size` of those (reproducible
    with `sample_seed`)."""
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
    session.add(batch)
    session.flush()
    rng = random.Random()
    rows = [{"batch_id": batch.id, "item_id": i, "shuffle_key": rng.randrange(2**31)} for i in ids]
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


def update_batch(
    session: Session,
    batch: Batch,
    *,
    name: str | None = None,
    overlap: int | None = None,
    lease_seconds: int | None = None,
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
    session.flush()
    return batch


def set_suggestion_threshold(session: Session, batch: Batch, threshold: float | None) -> None:
    """Annotations contradicting a suggestion at least this confident are flagged for review
    (app/suggestions/prescreen.py); None flags nothing."""
    batch.suggestion_threshold = threshold
    session.flush()


def add_member(session: Session, batch: Batch, user: User) -> None:
    if not user.is_active:
        raise Invalid(f"username: user {user.username!r} is deactivated")
    if session.get(BatchMember, (batch.id, user.id)) is None:
        session.add(BatchMember(batch_id=batch.id, user_id=user.id))
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

    @property
    def percent(self) -> float:
        return round(100.0 * self.submitted / self.wanted, 1) if self.wanted else 0.0


@dataclass(frozen=True)
class Counts:
    """One annotator's assignments in a batch by state (`leased` counts unexpired leases)."""

    submitted: int = 0
    skipped: int = 0
    leased: int = 0


def batch_progress(session: Session, batch: Batch, now: datetime | None = None) -> Progress:
    now = now or utcnow()
    items, submitted, complete, untouched = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(BatchItem.submitted), 0),
            func.count().filter(BatchItem.submitted >= batch.overlap),
            func.count().filter(BatchItem.taken == 0),
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
        wanted=items * batch.overlap,
        submitted=int(submitted),
        items_complete=complete,
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
        .where(Assignment.batch_id == batch_id)
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

    @property
    def wanted(self) -> int:
        return self.items * self.batch.overlap

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
    counts = (
        select(
            BatchItem.batch_id.label("batch_id"),
            func.count().label("n_items"),
            func.coalesce(func.sum(BatchItem.submitted), 0).label("n_submitted"),
        )
        # Gold items are served to every member, beyond the overlap: they are not the work
        # the batch asks for, so progress counts ordinary items only (as the dashboard does).
        .where(BatchItem.is_gold.is_(False))
        .group_by(BatchItem.batch_id)
        .subquery()
    )
    query = (
        select(Batch, counts.c.n_items, counts.c.n_submitted)
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
        BatchSummary(batch, int(items or 0), int(submitted or 0))
        for batch, items, submitted in session.execute(query)
    ]


@dataclass(frozen=True)
class MemberRow:
    user: User
    added_at: datetime
    counts: Counts


def list_members(session: Session, batch: Batch, now: datetime | None = None) -> list[MemberRow]:
    counts = annotator_counts(session, batch.id, now)
    rows = session.execute(
        select(User, BatchMember.added_at)
        .join(BatchMember, BatchMember.user_id == User.id)
        .where(BatchMember.batch_id == batch.id)
        .order_by(User.username)
    )
    return [MemberRow(user, added, counts.get(user.id, Counts())) for user, added in rows]
