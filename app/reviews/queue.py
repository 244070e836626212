"""The review queue: a reviewer's next annotation to review in a batch.

Order of draw (the first tier with something the caller may take wins):

1. reviews whose lease expired undecided (already drawn, in their original order);
2. revisions of returned annotations (a rejected annotation its annotator has revised): the
   reviewer asked for that change, so checking it comes before anything new;
3. flagged annotations, source by source in the order of `flags.FLAGS`;
4. annotations that disagree with their item's consensus (items with all their annotations);
5. the spot check: per annotator, ceil(review_rate x their submitted annotations) of their
   work, chosen by a keyed hash of the annotation (deterministic, unpredictable to them),
   the annotator furthest below their share first.

Tiers 2-4 look at an annotation's current revision; the spot check at the annotation, once.
Only counted annotations are drawn (app/annotations/counted.py): an excluded one is out.
A reviewer never gets their own annotation and holds at most one live lease (anywhere): asking
again renews and returns it; asking in another batch releases it there.

Concurrency. The unique (annotation, revision) key makes a second draw of the same revision
impossible, and a partial unique index makes a second live lease of one reviewer impossible,
whatever the timing. Draws are also serialised so that neither ever fires: on PostgreSQL the
draw locks the caller's user row (one draw per reviewer at a time), then the batch row
(`FOR NO KEY UPDATE`: one draw per batch at a time, which keeps the spot-check counts exact;
the annotation queue's key-share locks on the batch are not blocked); decisions lock the
review row. On SQLite, `BEGIN IMMEDIATE` serialises every writer (app/db.py).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.annotations.counted import counted, reviewable
from app.annotations.models import Annotation
from app.auth.models import User
from app.batches.models import Batch, BatchItem, BatchMember
from app.consensus.aggregate import ItemConsensus, item_consensus
from app.consensus.labels import vote_from_payload
from app.consensus.votes import Vote
from app.db import utcnow
from app.errors import Forbidden, NotFound
from app.exports.keys import pseudonym_key
from app.projects.models import Project
from app.reviews.flags import FLAGS
from app.reviews.models import Review, ReviewStatus

SPOT_CHECK = "spot_check"
DISAGREES = "disagrees_with_consensus"
REVISED = "revised"

# (annotation id, revision, reason): a candidate for a new review row.
Candidate = tuple[int, int, str]


def reviewable_batch(session: Session, batch_id: int, user: User) -> Batch:
    """The batch if the caller may review it: admins any batch, reviewers the batches they are
    members of (404 otherwise, as for annotators' batches); annotators are refused (403)."""
    if not user.may_review:
        raise Forbidden("reviewers and admins only")
    batch = session.get(Batch, batch_id)
    if batch is None or (
        not user.is_admin and session.get(BatchMember, (batch_id, user.id)) is None
    ):
        raise NotFound(f"no batch {batch_id}")
    return batch


def current_lease(session: Session, reviewer_id: int) -> Review | None:
    return session.scalar(
        select(Review).where(
            Review.reviewer_id == reviewer_id, Review.status == ReviewStatus.LEASED.value
        )
    )


def next_review(
    session: Session, batch: Batch, reviewer: User, now: datetime | None = None
) -> Review | None:
    """The caller's live review in `batch` (renewed), else a new draw; None when nothing is
    left for them. Flushes only."""
    now = now or utcnow()
    until = now + timedelta(seconds=batch.lease_seconds)
    # Lock order: the reviewer's user row, the batch row, review rows.
    session.execute(select(User.id).where(User.id == reviewer.id).with_for_update(key_share=True))
    own = current_lease(session, reviewer.id)
    if own is not None:
        if own.batch_id == batch.id and _catch_up(session, own):
            own.leased_until = until
            session.flush()
            return own
        own.status = ReviewStatus.EXPIRED.value  # released: back in its batch's queue
        session.flush()
    session.execute(select(Batch.id).where(Batch.id == batch.id).with_for_update(key_share=True))
    session.execute(
        update(Review)
        .where(
            Review.batch_id == batch.id,
            Review.status == ReviewStatus.LEASED.value,
            Review.leased_until < now,
        )
        .values(status=ReviewStatus.EXPIRED.value)
    )
    retaken = _expired(session, batch.id, reviewer.id)
    if retaken is not None:
        retaken.status = ReviewStatus.LEASED.value
        retaken.reviewer_id = reviewer.id
        retaken.leased_until = until
        session.flush()
        return retaken
    taken = _drawn_revisions(session, batch.id)
    for annotation_id, revision, reason in _candidates(session, batch, reviewer.id, taken):
        annotator_id = session.scalar(
            select(Annotation.annotator_id).where(Annotation.id == annotation_id)
        )
        assert annotator_id is not None
        review = Review(
            batch_id=batch.id,
            annotation_id=annotation_id,
            annotator_id=annotator_id,
            revision=revision,
            reviewer_id=reviewer.id,
            reason=reason,
            status=ReviewStatus.LEASED.value,
            leased_until=until,
        )
        session.add(review)
        session.flush()
        return review
    return None


def _catch_up(session: Session, review: Review) -> bool:
    """Whether the caller's lease can go on: its annotation counted, and at the revision drawn,
    or revised since and that revision not drawn yet (the lease then moves to it, so the
    reviewer sees the annotation as it is now)."""
    revision = session.scalar(
        select(Annotation.revision).where(Annotation.id == review.annotation_id, counted())
    )
    if revision is None:
        return False
    if revision != review.revision:
        taken = session.scalar(
            select(Review.id).where(
                Review.annotation_id == review.annotation_id, Review.revision == revision
            )
        )
        if taken is not None:
            return False
        review.revision = revision
    return True


def _expired(session: Session, batch_id: int, reviewer_id: int) -> Review | None:
    """The oldest expired review of the batch the caller may take (not their own work, and
    the annotation not revised since it was drawn)."""
    return session.scalar(
        select(Review)
        .join(Annotation, Annotation.id == Review.annotation_id)
        .where(
            Review.batch_id == batch_id,
            Review.status == ReviewStatus.EXPIRED.value,
            Review.annotator_id != reviewer_id,
            Annotation.revision == Review.revision,
            reviewable(),
        )
        .order_by(Review.id)
        .limit(1)
    )


def _drawn_revisions(session: Session, batch_id: int) -> set[tuple[int, int]]:
    return {
        (a, r)
        for a, r in session.execute(
            select(Review.annotation_id, Review.revision).where(Review.batch_id == batch_id)
        )
    }


def _candidates(
    session: Session, batch: Batch, reviewer_id: int, taken: set[tuple[int, int]]
) -> Iterator[Candidate]:
    """Tiers 2-5, lazily: a later tier is only computed when the earlier ones are used up."""
    current = {
        annotation_id: (revision, annotator_id)
        for annotation_id, revision, annotator_id in session.execute(
            select(Annotation.id, Annotation.revision, Annotation.annotator_id).where(
                Annotation.batch_id == batch.id, reviewable()
            )
        )
    }

    def fresh(ids: Iterable[int], reason: str) -> Iterator[Candidate]:
        for annotation_id in sorted(ids):
            found = current.get(annotation_id)
            if found is None or found[1] == reviewer_id:
                continue
            if (annotation_id, found[0]) not in taken:
                yield annotation_id, found[0], reason

    yield from fresh(_revised(session, batch.id), REVISED)
    for flag in FLAGS:
        yield from fresh(flag.source(session, batch.id), flag.reason)
    yield from fresh(disagreeing(session, batch), DISAGREES)
    yield from _spot_checks(session, batch, reviewer_id)


def _revised(session: Session, batch_id: int) -> set[int]:
    """Annotations revised after a rejection of an earlier revision."""
    return set(
        session.scalars(
            select(Review.annotation_id)
            .join(Annotation, Annotation.id == Review.annotation_id)
            .where(
                Review.batch_id == batch_id,
                Review.status == ReviewStatus.REJECTED.value,
                Annotation.revision > Review.revision,
            )
        )
    )


def vote_disagrees(vote: Vote, consensus: ItemConsensus) -> bool:
    """Whether a vote differs from a resolved consensus label: a preference ranking, or a
    response's safety."""
    for name in ("helpfulness", "harmlessness", "single"):
        found = consensus.dimension(name)
        mine = getattr(vote, name)
        if found is not None and found.resolved and mine and tuple(mine) != found.value:
            return True
    for response_id, agreed in consensus.responses.items():
        given = vote.responses.get(response_id)
        if agreed.is_safe is not None and given is not None and given.is_safe != agreed.is_safe:
            return True
    return False


def disagreeing(session: Session, batch: Batch) -> set[int]:
    """Annotations that disagree with their item's consensus, on the batch's complete items
    (all `overlap` annotations in: the consensus will not move any more). Gold items are
    scored against their key instead."""
    taxonomy = tuple(session.get_one(Project, batch.project_id).taxonomy)
    rows = session.execute(
        select(Annotation.item_id, Annotation.id, Annotation.payload)
        .join(
            BatchItem,
            (BatchItem.batch_id == Annotation.batch_id) & (BatchItem.item_id == Annotation.item_id),
        )
        .where(
            Annotation.batch_id == batch.id,
            reviewable(),
            BatchItem.is_gold.is_(False),
            BatchItem.submitted >= batch.overlap,
        )
        .order_by(Annotation.item_id, Annotation.id)
    ).all()
    out: set[int] = set()
    for _, group in groupby(rows, key=itemgetter(0)):
        annotations = [(annotation_id, payload) for _, annotation_id, payload in group]
        if len(annotations) < 2:
            continue
        votes = [vote_from_payload(str(a), p) for a, p in annotations]
        consensus = item_consensus(votes, taxonomy)
        out.update(
            a for (a, _), v in zip(annotations, votes, strict=True) if vote_disagrees(v, consensus)
        )
    return out


def spot_key(secret: str, batch_id: int, annotation_id: int) -> bytes:
    """The spot check's order of an annotation: fixed for it, unguessable without the key."""
    message = f"spot-check:{batch_id}:{annotation_id}".encode()
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def _spot_checks(session: Session, batch: Batch, reviewer_id: int) -> Iterator[Candidate]:
    if batch.review_rate <= 0:
        return
    gold = select(BatchItem.item_id).where(
        BatchItem.batch_id == batch.id, BatchItem.is_gold.is_(True)
    )
    reviewed = select(Review.annotation_id).where(Review.batch_id == batch.id)
    submitted = dict(
        session.execute(
            select(Annotation.annotator_id, func.count())
            .where(Annotation.batch_id == batch.id, reviewable(), Annotation.item_id.not_in(gold))
            .group_by(Annotation.annotator_id)
        ).all()
    )
    checked = dict(
        session.execute(
            select(Review.annotator_id, func.count())
            .where(Review.batch_id == batch.id, Review.reason == SPOT_CHECK)
            .group_by(Review.annotator_id)
        ).all()
    )
    short = {
        annotator_id: math.ceil(batch.review_rate * n - 1e-9) - checked.get(annotator_id, 0)
        for annotator_id, n in submitted.items()
        if annotator_id != reviewer_id
    }
    secret = pseudonym_key(session)
    # The annotator furthest below their share first (ties: lowest id).
    for annotator_id in sorted(
        (a for a, need in short.items() if need > 0),
        key=lambda a: (-short[a] / submitted[a], a),
    ):
        pool = session.execute(
            select(Annotation.id, Annotation.revision).where(
                Annotation.batch_id == batch.id,
                Annotation.annotator_id == annotator_id,
                reviewable(),
                Annotation.item_id.not_in(gold),
                Annotation.id.not_in(reviewed),
            )
        ).all()
        for annotation_id, revision in sorted(
            pool, key=lambda row: spot_key(secret, batch.id, row[0])
        ):
            yield annotation_id, revision, SPOT_CHECK
