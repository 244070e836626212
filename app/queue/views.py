"""An assignment as its annotator (or an admin) sees it: item, display order, annotation.

Submitting, revising and skipping are the queue's (app/queue/front.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.auth.models import User
from app.batches.models import Assignment, Batch
from app.items.models import Item, Response
from app.projects.models import Project
from app.queue import messages
from app.queue.results import load_item, ordered_responses


@dataclass(frozen=True)
class AssignmentView:
    assignment: Assignment
    batch: Batch
    project: Project
    item: Item
    responses: list[Response]  # in the assignment's display order
    annotation: Annotation | None


def assignment_view(session: Session, assignment_id: int, user: User) -> AssignmentView:
    """An assignment with its item (display order) and current annotation. Annotators see
    only their own (404 otherwise); admins see any."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or (not user.is_admin and assignment.annotator_id != user.id):
        raise messages.no_assignment(assignment_id)
    batch = session.get_one(Batch, assignment.batch_id)
    project = session.get_one(Project, batch.project_id)
    item = load_item(session, assignment.item_id)
    annotation = session.scalar(select(Annotation).where(Annotation.assignment_id == assignment.id))
    return AssignmentView(
        assignment, batch, project, item, ordered_responses(item, assignment), annotation
    )
