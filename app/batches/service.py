"""Creating batches and managing their members."""

from __future__ import annotations

import random
from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.batches.models import Batch, BatchItem, BatchMember
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
) -> Batch:
    """A batch of the given items (all of the project's items when `item_ids` is None)."""
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
    if not ids:
        raise Invalid("item_ids: a batch needs at least one item")
    batch = Batch(project_id=project.id, name=name, overlap=overlap, lease_seconds=lease_seconds)
    session.add(batch)
    session.flush()
    rng = random.Random()
    rows = [{"batch_id": batch.id, "item_id": i, "shuffle_key": rng.randrange(2**31)} for i in ids]
    for start in range(0, len(rows), INSERT_CHUNK):
        session.execute(insert(BatchItem), rows[start : start + INSERT_CHUNK])
    return batch


def get_batch(session: Session, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    return batch


def add_member(session: Session, batch: Batch, user: User) -> None:
    if not user.is_active:
        raise Invalid(f"username: user {user.username!r} is deactivated")
    if session.get(BatchMember, (batch.id, user.id)) is None:
        session.add(BatchMember(batch_id=batch.id, user_id=user.id))
        session.flush()


def remove_member(session: Session, batch: Batch, user: User) -> None:
    member = session.get(BatchMember, (batch.id, user.id))
    if member is not None:
        session.delete(member)
        session.flush()
