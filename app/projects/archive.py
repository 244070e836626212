"""Archiving and deleting projects and batches.

Archiving hides a project or batch from annotators and from default lists and closes its
batches (no new work, no submits), so the queue needs no rule of its own; nothing is deleted,
and unarchiving shows it again (closed: reopening a batch is a separate decision). Deleting
is for mistakes only: a batch or project that holds no annotation.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.batches.models import Batch
from app.db import utcnow
from app.errors import Conflict
from app.projects.models import Project


def archive_batch(session: Session, batch: Batch) -> None:
    batch.archived_at = batch.archived_at or utcnow()
    batch.is_open = False
    session.flush()


def unarchive_batch(session: Session, batch: Batch) -> None:
    batch.archived_at = None
    session.flush()


def archive_project(session: Session, project: Project) -> None:
    project.archived_at = project.archived_at or utcnow()
    session.execute(
        update(Batch)
        .where(Batch.project_id == project.id, Batch.is_open.is_(True))
        .values(is_open=False)
        .execution_options(synchronize_session="fetch")
    )
    session.flush()


def unarchive_project(session: Session, project: Project) -> None:
    project.archived_at = None
    session.flush()


def batch_annotations(session: Session, batch_id: int) -> int:
    query = select(func.count()).select_from(Annotation).where(Annotation.batch_id == batch_id)
    return int(session.scalar(query) or 0)


def project_annotations(session: Session, project_id: int) -> int:
    batches = select(Batch.id).where(Batch.project_id == project_id)
    query = select(func.count()).select_from(Annotation).where(Annotation.batch_id.in_(batches))
    return int(session.scalar(query) or 0)


def delete_batch(session: Session, batch: Batch) -> None:
    """Deletes a batch without annotations (its items stay in the project).

    The batch row is locked first: on PostgreSQL a submit in flight holds a key-share lock on
    it (its annotation references the batch), so the count below runs after that submit has
    committed, and a later submit waits for this transaction and then fails its foreign key.
    An acknowledged annotation is never deleted by the cascade."""
    _lock_batches(session, select(Batch.id).where(Batch.id == batch.id))
    if n := batch_annotations(session, batch.id):
        raise Conflict(f"batch {batch.id} holds {n} annotations: archive it instead")
    # The database removes its memberships, batch items and assignments (ON DELETE CASCADE).
    session.execute(delete(Batch).where(Batch.id == batch.id))
    session.expunge(batch)


def delete_project(session: Session, project: Project) -> None:
    """Deletes a project without annotations, with its items and batches (locked first, as
    in delete_batch)."""
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    _lock_batches(session, select(Batch.id).where(Batch.project_id == project.id))
    if n := project_annotations(session, project.id):
        raise Conflict(f"project {project.id} holds {n} annotations: archive it instead")
    session.execute(delete(Project).where(Project.id == project.id))
    session.expunge(project)


def _lock_batches(session: Session, query: Select[Any]) -> None:
    # FOR UPDATE is a no-op on SQLite, where one writer at a time holds the database.
    session.execute(query.with_for_update()).all()
