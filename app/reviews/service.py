"""A review as its reviewer sees it, the decision, and what reviews say about each annotator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotations.counted import ExclusionKind
from app.annotations.models import Annotation
from app.auth.models import User
from app.batches.models import Assignment, Batch
from app.db import utcnow
from app.errors import Conflict, Invalid, NotFound
from app.exports.keys import pseudonym_key
from app.exports.service import pseudonym
from app.items.models import Item, Response
from app.projects.models import Project
from app.queue import front
from app.queue.results import load_item, ordered_responses
from app.reviews.models import Review, ReviewStatus
from app.reviews.queue import reviewable_batch

Decision = Literal["accept", "reject", "exclude"]
DECISIONS: tuple[Decision, ...] = ("accept", "reject", "exclude")
STATUS_OF: dict[str, ReviewStatus] = {
    "accept": ReviewStatus.ACCEPTED,
    "reject": ReviewStatus.REJECTED,
    "exclude": ReviewStatus.EXCLUDED,
}
MAX_NOTE = 2000
REASON_LABELS = {
    "revised": "Revised after being returned",
    "failed_gold": "Failed gold: disagrees with the answer key",
    "too_fast": "Faster than the batch's minimum time",
    "contradicts_suggestion": "Contradicts a confident model suggestion",
    "disagrees_with_consensus": "Disagrees with the item's consensus",
    "spot_check": "Random spot check",
}


@dataclass(frozen=True)
class ReviewView:
    review: Review
    batch: Batch
    project: Project
    annotation: Annotation
    assignment: Assignment
    item: Item
    responses: list[Response]  # in the annotator's display order
    annotator: str  # the exports' pseudonym
    previous_note: str | None  # the note of the rejection this revision answers

    @property
    def reason_label(self) -> str:
        return REASON_LABELS.get(self.review.reason, self.review.reason)


def review_view(session: Session, review: Review) -> ReviewView:
    annotation = session.get_one(Annotation, review.annotation_id)
    assignment = session.get_one(Assignment, annotation.assignment_id)
    batch = session.get_one(Batch, review.batch_id)
    item = load_item(session, annotation.item_id)
    previous = session.scalar(
        select(Review.note)
        .where(
            Review.annotation_id == annotation.id,
            Review.status == ReviewStatus.REJECTED.value,
            Review.revision < review.revision,
        )
        .order_by(Review.revision.desc())
        .limit(1)
    )
    return ReviewView(
        review=review,
        batch=batch,
        project=session.get_one(Project, batch.project_id),
        annotation=annotation,
        assignment=assignment,
        item=item,
        responses=ordered_responses(item, assignment),
        annotator=pseudonym(pseudonym_key(session), annotation.annotator_id),
        previous_note=previous,
    )


def annotation_out(view: ReviewView) -> dict[str, Any]:
    """The API's `annotation` object: who and what, plus the submitted fields."""
    return {
        "item_id": view.annotation.item_id,
        "assignment_id": view.annotation.assignment_id,
        "annotator": view.annotator,
        "revision": view.annotation.revision,
        **view.annotation.payload,
    }


def held_review(session: Session, review_id: int, reviewer: User, *, lock: bool = False) -> Review:
    """A review the caller holds (404 for anyone else's, so ids cannot be probed)."""
    query = select(Review).where(Review.id == review_id)
    if lock:
        query = query.with_for_update()
    review = session.scalar(query)
    if review is None or review.reviewer_id != reviewer.id:
        raise NotFound(f"no review {review_id}")
    return review


def decide(
    session: Session,
    review_id: int,
    reviewer: User,
    decision: str,
    note: str | None,
    now: datetime | None = None,
) -> Review:
    """Records the decision on a review the caller holds. A lease that expired may still be
    decided while nobody else has taken it. Flushes only."""
    if decision not in STATUS_OF:
        raise Invalid(f"decision: must be one of {', '.join(DECISIONS)}")
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise Invalid(f"note: at most {MAX_NOTE} characters")
    if decision == "reject" and not note:
        raise Invalid("note: a rejection needs a note telling the annotator what to change")
    review = held_review(session, review_id, reviewer, lock=True)
    reviewable_batch(session, review.batch_id, reviewer)  # still a member, still a reviewer
    if review.status not in (ReviewStatus.LEASED.value, ReviewStatus.EXPIRED.value):
        raise Conflict(f"review {review_id} is already decided ({review.status})")
    revision = session.scalar(
        select(Annotation.revision).where(Annotation.id == review.annotation_id)
    )
    if revision != review.revision:
        raise Conflict(
            f"review {review_id}: the annotation was revised since it was drawn; "
            "ask for the next review to see the new revision"
        )
    if decision == "exclude":
        # Out of consensus and exports; the item's slot goes back to the queue.
        front.exclude_annotations(
            session,
            batch_id=review.batch_id,
            annotation_ids=[review.annotation_id],
            kind=ExclusionKind.REVIEW,
            reason=note or None,
        )
    review.status = STATUS_OF[decision].value
    review.note = note
    review.decided_at = now or utcnow()
    session.flush()
    return review


# ------------------------------------------------------------------- what annotators see


@dataclass(frozen=True)
class ReviewState:
    """The latest review of an annotation, as its annotator is told it."""

    status: str  # accepted | rejected | excluded
    note: str
    revised: bool  # revised since (a returned annotation awaiting another review)


def review_states(session: Session, annotation_ids: list[int]) -> dict[int, ReviewState]:
    """Latest decided review per annotation (for "My work")."""
    if not annotation_ids:
        return {}
    rows = session.execute(
        select(
            Review.annotation_id, Review.status, Review.note, Review.revision, Annotation.revision
        )
        .join(Annotation, Annotation.id == Review.annotation_id)
        .where(
            Review.annotation_id.in_(annotation_ids),
            Review.status.in_([s.value for s in STATUS_OF.values()]),
        )
        .order_by(Review.annotation_id, Review.revision)
    ).all()
    return {
        annotation_id: ReviewState(status, note, current > revision)
        for annotation_id, status, note, revision, current in rows
    }


# ------------------------------------------------------------------- outcomes per annotator


@dataclass(frozen=True)
class ReviewOutcome:
    annotator_id: int
    username: str
    reviewed: int  # decisions on their work
    accepted: int
    returned: int
    excluded: int

    @property
    def accept_rate(self) -> float | None:
        return self.accepted / self.reviewed if self.reviewed else None


def review_outcomes(session: Session, batch_id: int) -> list[ReviewOutcome]:
    """Per annotator with decided reviews in the batch: accept rate, returned, excluded
    (every decision counts, a returned annotation's later acceptance too)."""
    rows = session.execute(
        select(Review.annotator_id, User.username, Review.status, func.count())
        .join(User, User.id == Review.annotator_id)
        .where(
            Review.batch_id == batch_id,
            Review.status.in_([s.value for s in STATUS_OF.values()]),
        )
        .group_by(Review.annotator_id, User.username, Review.status)
    ).all()
    counts: dict[tuple[int, str], dict[str, int]] = {}
    for annotator_id, username, status, n in rows:
        counts.setdefault((annotator_id, username), {})[status] = n
    return [
        ReviewOutcome(
            annotator_id=annotator_id,
            username=username,
            reviewed=sum(by.values()),
            accepted=by.get(ReviewStatus.ACCEPTED.value, 0),
            returned=by.get(ReviewStatus.REJECTED.value, 0),
            excluded=by.get(ReviewStatus.EXCLUDED.value, 0),
        )
        for (annotator_id, username), by in sorted(counts.items(), key=lambda kv: kv[0][1])
    ]
