"""Which annotations count: the one rule every read of results applies.

An excluded annotation (its annotator excluded from the batch, or a reviewer's decision) is
kept, with when, why and by which kind of decision, but it leaves consensus, agreement
metrics, the dashboard's figures, gold accuracy, the disagreement list and every export.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, exists

from app.annotations.models import Annotation
from app.batches.models import Assignment


class ExclusionKind(StrEnum):
    MEMBER = "member"  # the annotator was excluded from the batch; undone by including them
    REVIEW = "review"  # a reviewer excluded this one annotation


def counted() -> ColumnElement[bool]:
    """The WHERE clause of counted annotations (not excluded)."""
    return Annotation.excluded_at.is_(None)


def own_work() -> ColumnElement[bool]:
    """An annotator's own work for their work report: counted, or excluded only because the
    annotator was (a reviewer's exclusion removes the answer from their figures too)."""
    return counted() | (Annotation.exclusion_kind == ExclusionKind.MEMBER.value)


def reviewable() -> ColumnElement[bool]:
    """Counted annotations that are work, not a qualification answer (app/qualification/):
    a member's test is graded against its key, never drawn for review."""
    return counted() & ~exists().where(
        Assignment.id == Annotation.assignment_id, Assignment.is_qualification.is_(True)
    )
