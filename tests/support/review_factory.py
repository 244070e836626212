"""Builders for review tests: a batch with annotators and reviewers, submitted annotations."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.annotations.schemas import AnnotationIn
from app.auth.models import User
from app.batches.models import Batch
from app.batches.service import add_member, create_batch
from app.queue import front
from tests.support.queue_factory import response_ids, seed_project, valid_annotation


def user(db: Session, role: str = "annotator") -> User:
    found = User(username=f"{role}-{uuid.uuid4().hex[:8]}", role=role, password_hash="!")
    db.add(found)
    db.flush()
    return found


def world(db: Session, n_items: int, n_annotators: int, **kw: Any) -> tuple[Batch, list[User]]:
    project, _ = seed_project(db, n_items)
    batch = create_batch(db, project, "review", **kw)
    people = [user(db) for _ in range(n_annotators)]
    for person in people:
        add_member(db, batch, person)
    return batch, people


def annotate(
    db: Session, batch: Batch, who: User, *, flip: bool = False, duration_ms: int | None = None
) -> Annotation:
    lease = front.next_assignment(db, batch, who)
    assert lease is not None
    payload = valid_annotation(response_ids(db, lease.item.id), flip=flip)
    body = AnnotationIn.model_validate({**payload, "duration_ms": duration_ms})
    front.submit(db, lease.assignment.id, who, body)
    found = db.scalar(select(Annotation).where(Annotation.assignment_id == lease.assignment.id))
    assert found is not None
    return found


def reviewer_of(db: Session, batch: Batch) -> User:
    found = user(db, "reviewer")
    add_member(db, batch, found)
    return found
