"""A batch's qualification: the gold items new members answer first, the accuracy they must
reach, and each member's standing.

Members who join a batch that asks for a qualification start `pending` (app/batches/service.py
`add_member`); the queue then refuses them regular work and app/qualification/flow.py serves
the qualification items instead. Once every item is answered the member is graded: they pass
when, on every dimension the answer keys check, the share of their answers that match the key
reaches the batch's threshold. Grading reads each answer's first revision: the page shows the
key after each answer, and a revision made after seeing it must not raise the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.annotations.models import Annotation, AnnotationRevision
from app.auth.models import User
from app.batches.models import (
    Assignment,
    AssignmentStatus,
    Batch,
    BatchItem,
    BatchMember,
    QualificationItem,
    QualificationState,
)
from app.dashboard.gold import GOLD_DIMENSIONS, GoldScore, score_answer, to_positions
from app.errors import Invalid, NotFound
from app.items.models import GoldLabel, Response
from app.queue import front

MAX_ITEMS = 200


@dataclass(frozen=True)
class Standing:
    """One member's qualification as admins see it."""

    username: str
    state: str | None
    answered: int
    asked: int
    # Per dimension: (matching answers, compared answers).
    scores: dict[str, tuple[int, int]]

    def accuracy(self, dimension: str) -> float | None:
        hits, checks = self.scores.get(dimension, (0, 0))
        return hits / checks if checks else None


def item_ids(session: Session, batch_id: int) -> list[int]:
    """The batch's qualification items in the order members answer them."""
    return list(
        session.scalars(
            select(QualificationItem.item_id)
            .where(QualificationItem.batch_id == batch_id)
            .order_by(QualificationItem.position, QualificationItem.item_id)
        )
    )


def configure(
    session: Session, batch: Batch, items: Sequence[int] | None, threshold: float | None
) -> None:
    """Sets (or, with no items, turns off) the batch's qualification. Every item must be a
    gold item of the batch with an answer key. Turning it off lets pending members in; a
    member who failed stays out until an admin resets them."""
    if not items:
        batch.qualification_threshold = None
        session.execute(delete(QualificationItem).where(QualificationItem.batch_id == batch.id))
        session.execute(
            update(BatchMember)
            .where(
                BatchMember.batch_id == batch.id,
                BatchMember.qualification == QualificationState.PENDING,
            )
            .values(qualification=None)
        )
        session.flush()
        return
    if threshold is None or not 0 < threshold <= 1:
        raise Invalid("qualification.threshold: a share between 0 (excluded) and 1")
    if len(items) > MAX_ITEMS:
        raise Invalid(f"qualification.item_ids: at most {MAX_ITEMS} items")
    if len(set(items)) != len(items):
        raise Invalid("qualification.item_ids: an item is listed twice")
    gold = set(
        session.scalars(
            select(BatchItem.item_id)
            .join(GoldLabel, GoldLabel.item_id == BatchItem.item_id)
            .where(
                BatchItem.batch_id == batch.id,
                BatchItem.is_gold.is_(True),
                BatchItem.item_id.in_(items),
            )
        )
    )
    for item_id in items:
        if item_id not in gold:
            raise Invalid(
                f"qualification.item_ids: item {item_id} is not a gold item of this batch with "
                "an answer key (mark it gold first)"
            )
    session.execute(delete(QualificationItem).where(QualificationItem.batch_id == batch.id))
    session.add_all(
        QualificationItem(batch_id=batch.id, item_id=item_id, position=position)
        for position, item_id in enumerate(items)
    )
    batch.qualification_threshold = threshold
    session.flush()


def grade(session: Session, batch: Batch, member: BatchMember) -> str:
    """Grades a member who answered every qualification item; stores and returns the state."""
    score = score_member(session, batch.id, member.user_id)
    threshold = batch.qualification_threshold or 0.0
    passed = all(
        (accuracy := score.accuracy(dimension)) is None or accuracy >= threshold
        for dimension in GOLD_DIMENSIONS
    )
    member.qualification = QualificationState.PASSED if passed else QualificationState.FAILED
    member.qualification_scores = {d: list(c) for d, c in score.counts.items()}
    session.flush()
    return member.qualification


def score_member(session: Session, batch_id: int, user_id: int) -> GoldScore:
    """The member's qualification answers (first revisions) scored against the keys."""
    rows = session.execute(
        select(Annotation.item_id, AnnotationRevision.payload, GoldLabel.payload)
        .join(Assignment, Assignment.id == Annotation.assignment_id)
        .join(AnnotationRevision, AnnotationRevision.annotation_id == Annotation.id)
        .join(GoldLabel, GoldLabel.item_id == Annotation.item_id)
        .where(
            Assignment.batch_id == batch_id,
            Assignment.annotator_id == user_id,
            Assignment.is_qualification.is_(True),
            AnnotationRevision.revision == 1,
        )
        .order_by(Annotation.item_id)
    ).all()
    positions = _positions(session, [item_id for item_id, _, _ in rows])
    score = GoldScore()
    for item_id, payload, key in rows:
        score.items += 1
        score_answer(score, key, to_positions(payload, positions.get(item_id, {})))
    return score


def _positions(session: Session, item_ids: Sequence[int]) -> dict[int, dict[int, int]]:
    positions: dict[int, dict[int, int]] = {}
    for item_id, rid, position in session.execute(
        select(Response.item_id, Response.id, Response.position).where(
            Response.item_id.in_(item_ids)
        )
    ):
        positions.setdefault(item_id, {})[rid] = position
    return positions


def reset(session: Session, batch: Batch, user: User) -> None:
    """Lets a member qualify again: their qualification answers are deleted and they are
    pending (or, if the batch no longer asks for a qualification, simply a member)."""
    member = front.lock_member(session, batch.id, user.id)
    if member is None:
        raise NotFound(f"{user.username!r} is not a member of batch {batch.id}")
    front.forget_qualification(session, batch.id, user.id)
    asks = batch.qualification_threshold is not None
    member.qualification = QualificationState.PENDING if asks else None
    member.qualification_scores = None
    session.flush()


def standings(session: Session, batch: Batch, user_id: int | None = None) -> list[Standing]:
    """Every member of the batch (or just `user_id`) with their qualification state, answers
    and scores."""
    asked = len(item_ids(session, batch.id))
    answered: dict[int, int] = {
        user_id: count
        for user_id, count in session.execute(
            select(Assignment.annotator_id, func.count())
            .where(
                Assignment.batch_id == batch.id,
                Assignment.is_qualification.is_(True),
                Assignment.status == AssignmentStatus.SUBMITTED,
            )
            .group_by(Assignment.annotator_id)
        )
    }
    rows = session.execute(
        select(User.id, User.username, BatchMember.qualification, BatchMember.qualification_scores)
        .join(BatchMember, BatchMember.user_id == User.id)
        .where(
            BatchMember.batch_id == batch.id,
            *(() if user_id is None else (BatchMember.user_id == user_id,)),
        )
        .order_by(User.username)
    ).all()
    return [
        Standing(
            username=username,
            state=state,
            answered=answered.get(user_id, 0),
            asked=asked,
            scores={d: (int(c[0]), int(c[1])) for d, c in (scores or {}).items()},
        )
        for user_id, username, state, scores in rows
    ]


def standing_of(session: Session, batch: Batch, user_id: int) -> Standing | None:
    found = standings(session, batch, user_id)
    return found[0] if found else None


def first_answer(session: Session, annotation_id: int) -> dict[str, Any]:
    """The payload a qualification answer was first submitted with (the one graded)."""
    payload = session.scalar(
        select(AnnotationRevision.payload).where(
            AnnotationRevision.annotation_id == annotation_id, AnnotationRevision.revision == 1
        )
    )
    return dict(payload or {})
