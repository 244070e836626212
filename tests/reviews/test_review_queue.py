"""The review queue's rules through its service functions (both backends, explicit clocks)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.annotations.schemas import AnnotationIn
from app.batches.service import add_member
from app.dashboard.gold import mark_gold
from app.db import utcnow
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.queue import front
from app.reviews import queue, service
from app.reviews.models import Review
from tests.support.queue_factory import response_ids, valid_annotation
from tests.support.review_factory import annotate, reviewer_of, user, world


def test_an_annotator_is_refused_and_a_reviewer_outside_the_batch_sees_nothing(
    db: Session,
) -> None:
    batch, (annotator,) = world(db, 1, 1)
    with pytest.raises(Forbidden):
        queue.reviewable_batch(db, batch.id, annotator)
    with pytest.raises(NotFound):
        queue.reviewable_batch(db, batch.id, user(db, "reviewer"))
    assert queue.reviewable_batch(db, batch.id, user(db, "admin")) is batch


def test_draw_order_flags_then_consensus_then_spot_check(db: Session) -> None:
    batch, people = world(db, 3, 3, overlap=3)
    batch.min_seconds = 2.0
    batch.review_rate = 0.0
    admin = user(db, "admin")
    # Item 1: the first annotator disagrees with the other two on helpfulness.
    odd = annotate(db, batch, people[0], flip=True, duration_ms=10_000)
    annotate(db, batch, people[1], duration_ms=10_000)
    annotate(db, batch, people[2], duration_ms=10_000)
    # Item 2: the second annotator is too fast.
    fast = annotate(db, batch, people[1], duration_ms=500)
    # Item 3: gold, and the third annotator's answer flips the key's helpfulness.
    third_item = annotate(db, batch, people[2], flip=True, duration_ms=10_000)
    mark_gold(db, batch, third_item.item_id, admin, key={"helpfulness": [0, 1]})
    reviewer = reviewer_of(db, batch)
    reasons = []
    for _ in range(3):
        review = queue.next_review(db, batch, reviewer)
        assert review is not None
        reasons.append((review.reason, review.annotation_id))
        service.decide(db, review.id, reviewer, "accept", None)
    assert reasons == [
        ("failed_gold", third_item.id),
        ("too_fast", fast.id),
        ("disagrees_with_consensus", odd.id),
    ]
    assert queue.next_review(db, batch, reviewer) is None  # review_rate 0: no spot check


def test_one_lease_per_reviewer_renewed_and_never_their_own_work(db: Session) -> None:
    batch, people = world(db, 4, 1, overlap=1, lease_seconds=60)
    batch.review_rate = 1.0
    reviewer = reviewer_of(db, batch)
    own = annotate(db, batch, reviewer)  # a reviewer may annotate too
    theirs = annotate(db, batch, people[0])
    t0 = utcnow()
    first = queue.next_review(db, batch, reviewer, t0)
    again = queue.next_review(db, batch, reviewer, t0 + timedelta(seconds=30))
    assert first is not None and again is not None and again.id == first.id
    assert again.leased_until == t0 + timedelta(seconds=90)
    assert first.annotation_id == theirs.id != own.id
    service.decide(db, first.id, reviewer, "accept", None)
    assert queue.next_review(db, batch, reviewer) is None
    live = db.scalars(select(Review).where(Review.reviewer_id == reviewer.id)).all()
    assert [r.status for r in live] == ["accepted"]


def test_asking_in_another_batch_releases_the_lease(db: Session) -> None:
    batch, (a,) = world(db, 1, 1, overlap=1)
    other, (b,) = world(db, 1, 1, overlap=1)
    for each in (batch, other):
        each.review_rate = 1.0
    annotate(db, batch, a)
    annotate(db, other, b)
    reviewer = reviewer_of(db, batch)
    add_member(db, other, reviewer)
    first = queue.next_review(db, batch, reviewer)
    second = queue.next_review(db, other, reviewer)
    assert first is not None and second is not None and second.batch_id == other.id
    assert first.status == "expired"
    assert queue.current_lease(db, reviewer.id) is second


def test_an_expired_review_goes_to_the_next_reviewer(db: Session) -> None:
    batch, (a,) = world(db, 1, 1, overlap=1, lease_seconds=60)
    batch.review_rate = 1.0
    annotate(db, batch, a)
    slow, quick = reviewer_of(db, batch), reviewer_of(db, batch)
    t0 = utcnow()
    held = queue.next_review(db, batch, slow, t0)
    assert held is not None
    assert queue.next_review(db, batch, quick, t0 + timedelta(seconds=30)) is None
    taken = queue.next_review(db, batch, quick, t0 + timedelta(seconds=61))
    assert taken is not None and taken.id == held.id and taken.reviewer_id == quick.id
    with pytest.raises(NotFound):
        service.decide(db, held.id, slow, "accept", None)
    assert service.decide(db, held.id, quick, "accept", None).status == "accepted"
    with pytest.raises(Conflict):
        service.decide(db, held.id, quick, "reject", "again")


def test_reject_needs_a_note_and_the_revision_comes_back(db: Session) -> None:
    batch, (a,) = world(db, 1, 1, overlap=1)
    batch.review_rate = 1.0
    annotation = annotate(db, batch, a)
    reviewer = reviewer_of(db, batch)
    review = queue.next_review(db, batch, reviewer)
    assert review is not None and review.reason == "spot_check"
    with pytest.raises(Invalid, match="note"):
        service.decide(db, review.id, reviewer, "reject", "  ")
    service.decide(db, review.id, reviewer, "reject", "Response B is unsafe")
    states = service.review_states(db, [annotation.id])
    assert states[annotation.id].status == "rejected" and not states[annotation.id].revised
    assert queue.next_review(db, batch, reviewer) is None  # nothing until it is revised
    body = AnnotationIn.model_validate(
        valid_annotation(response_ids(db, annotation.item_id), flip=True)
    )
    front.submit(db, annotation.assignment_id, a, body)
    assert service.review_states(db, [annotation.id])[annotation.id].revised
    again = queue.next_review(db, batch, reviewer)
    assert again is not None and again.reason == "revised" and again.revision == 2
    view = service.review_view(db, again)
    assert view.previous_note == "Response B is unsafe"
    assert view.annotator.startswith("a-") and a.username not in view.annotator
    service.decide(db, again.id, reviewer, "accept", None)
    assert service.review_states(db, [annotation.id])[annotation.id].status == "accepted"
    outcome = {o.annotator_id: o for o in service.review_outcomes(db, batch.id)}[a.id]
    assert (outcome.reviewed, outcome.accepted, outcome.returned, outcome.excluded) == (2, 1, 1, 0)
    assert outcome.accept_rate == 0.5


def test_a_decision_on_a_revision_overtaken_is_refused(db: Session) -> None:
    batch, (a,) = world(db, 1, 1, overlap=1)
    batch.review_rate = 1.0
    annotation = annotate(db, batch, a)
    reviewer = reviewer_of(db, batch)
    review = queue.next_review(db, batch, reviewer)
    assert review is not None
    body = AnnotationIn.model_validate(
        valid_annotation(response_ids(db, annotation.item_id), flip=True)
    )
    front.submit(db, annotation.assignment_id, a, body)
    with pytest.raises(Conflict, match="revised"):
        service.decide(db, review.id, reviewer, "accept", None)


def test_spot_check_is_fair_per_annotator_and_deterministic(db: Session) -> None:
    batch, (busy, light) = world(db, 6, 2, overlap=1)
    batch.review_rate = 0.25
    for _ in range(4):
        annotate(db, batch, busy)
    for _ in range(2):
        annotate(db, batch, light)
    reviewer = reviewer_of(db, batch)
    drawn: list[Review] = []
    while (review := queue.next_review(db, batch, reviewer)) is not None:
        drawn.append(review)
        service.decide(db, review.id, reviewer, "accept", None)
    # ceil(0.25 x 4) = 1 and ceil(0.25 x 2) = 1: each annotator checked at their share.
    assert sorted(r.annotator_id for r in drawn) == sorted([busy.id, light.id])
    secret = queue.pseudonym_key(db)
    for review in drawn:
        mine = db.scalars(
            select(Annotation.id).where(
                Annotation.batch_id == batch.id, Annotation.annotator_id == review.annotator_id
            )
        ).all()
        # The one drawn is the annotator's first in the keyed order: the same on any run.
        assert review.annotation_id == min(mine, key=lambda i: queue.spot_key(secret, batch.id, i))
    batch.review_rate = 0.5  # raising the rate draws more, never an annotation twice
    while (review := queue.next_review(db, batch, reviewer)) is not None:
        drawn.append(review)
        service.decide(db, review.id, reviewer, "accept", None)
    ids = [r.annotation_id for r in drawn]
    assert len(ids) == len(set(ids)) == 3  # ceil(0.5 x 4) = 2, ceil(0.5 x 2) = 1


def test_a_reviewer_removed_from_the_batch_cannot_decide(db: Session) -> None:
    from app.batches.models import BatchMember

    batch, (a,) = world(db, 1, 1, overlap=1)
    batch.review_rate = 1.0
    annotate(db, batch, a)
    reviewer = reviewer_of(db, batch)
    review = queue.next_review(db, batch, reviewer)
    assert review is not None
    db.delete(db.get_one(BatchMember, (batch.id, reviewer.id)))
    db.flush()
    with pytest.raises(NotFound):
        service.decide(db, review.id, reviewer, "accept", None)
    assert review.status == "leased"


def test_exclude_takes_the_annotation_out_and_requeues_its_slot(db: Session) -> None:
    from app.batches.models import BatchItem

    batch, (first, second) = world(db, 1, 2, overlap=1)
    batch.review_rate = 1.0
    annotation = annotate(db, batch, first)
    assert front.next_assignment(db, batch, second) is None  # the only slot is taken
    reviewer = reviewer_of(db, batch)
    review = queue.next_review(db, batch, reviewer)
    assert review is not None and review.annotation_id == annotation.id
    service.decide(db, review.id, reviewer, "exclude", "copied from elsewhere")
    db.refresh(annotation)
    assert annotation.excluded_at is not None and annotation.exclusion_kind == "review"
    assert annotation.exclusion_reason == "copied from elsewhere"
    slot = db.get_one(BatchItem, (batch.id, annotation.item_id), populate_existing=True)
    assert (slot.taken, slot.submitted) == (0, 0)
    assert service.review_states(db, [annotation.id])[annotation.id].status == "excluded"
    # Someone else gets the item; the excluded annotation is never drawn again.
    replacement = annotate(db, batch, second)
    assert replacement.item_id == annotation.item_id
    again = queue.next_review(db, batch, reviewer)
    assert again is not None and again.annotation_id == replacement.id
    outcome = {o.annotator_id: o for o in service.review_outcomes(db, batch.id)}[first.id]
    assert (outcome.excluded, outcome.accept_rate) == (1, 0.0)


def test_a_lease_follows_a_revision_made_while_it_was_held(db: Session) -> None:
    batch, (a,) = world(db, 1, 1, overlap=1)
    batch.review_rate = 1.0
    annotation = annotate(db, batch, a)
    reviewer = reviewer_of(db, batch)
    review = queue.next_review(db, batch, reviewer)
    assert review is not None and review.revision == 1
    body = AnnotationIn.model_validate(
        valid_annotation(response_ids(db, annotation.item_id), flip=True)
    )
    front.submit(db, annotation.assignment_id, a, body)
    with pytest.raises(Conflict, match="revised"):
        service.decide(db, review.id, reviewer, "accept", None)
    again = queue.next_review(db, batch, reviewer)
    assert again is not None and again.id == review.id and again.revision == 2
    assert service.decide(db, again.id, reviewer, "accept", None).status == "accepted"


def test_an_answer_contradicting_a_confident_suggestion_is_drawn_first(db: Session) -> None:
    from app.items.models import ReferenceLabel

    batch, people = world(db, 2, 1, overlap=1)
    batch.review_rate = 0.0
    batch.suggestion_threshold = 0.8
    # The annotator calls both answers safe and ranks them in position order.
    first = annotate(db, batch, people[0], duration_ms=10_000)
    second = annotate(db, batch, people[0], duration_ms=10_000)
    unsafe = {"is_safe": False, "harm_categories": ["Violence"], "severity": "minor"}
    safe = {"is_safe": True, "harm_categories": [], "severity": None}
    for annotation, confidence in ((first, 0.9), (second, 0.5)):
        db.add(
            ReferenceLabel(
                item_id=annotation.item_id,
                origin="screener",
                payload={"responses": [{"position": 0, **unsafe}, {"position": 1, **safe}]},
                confidence=confidence,
            )
        )
    db.flush()
    reviewer = reviewer_of(db, batch)
    review = queue.next_review(db, batch, reviewer)
    assert review is not None
    assert (review.reason, review.annotation_id) == ("contradicts_suggestion", first.id)
    service.decide(db, review.id, reviewer, "accept", None)
    # The second contradicts a suggestion below the threshold: not flagged, nothing else due.
    assert queue.next_review(db, batch, reviewer) is None
