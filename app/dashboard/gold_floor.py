"""The gold floor: members whose gold accuracy stays below the batch's threshold.

A batch may set `gold_floor` (an accuracy, 0..1) and `gold_floor_min_answers` (M): a member
with at least M counted gold answers whose overall gold accuracy (app/dashboard/gold.py) is
below the floor is flagged on the batch page and the dashboard, and, when the batch sets
`gold_floor_excludes`, excluded from the batch (app/queue/exclusion.py) as soon as a gold
answer of theirs brings them below it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.batches.models import Batch, BatchMember
from app.dashboard.gold import GoldScore, gold_scores
from app.errors import Invalid
from app.queue import front

MAX_MIN_ANSWERS = 10_000


@dataclass(frozen=True)
class Flag:
    """A member below the floor: their accuracy and how many gold answers it rests on."""

    accuracy: float
    answers: int


def below_floor(batch: Batch, scores: dict[int, GoldScore]) -> dict[int, Flag]:
    """Annotator id -> Flag, for those of `scores` below the batch's floor (none without one)."""
    floor = batch.gold_floor
    if floor is None:
        return {}
    flags = {}
    for annotator_id, score in scores.items():
        accuracy = score.overall
        enough = score.items >= batch.gold_floor_min_answers
        if enough and accuracy is not None and accuracy < floor:
            flags[annotator_id] = Flag(accuracy, score.items)
    return flags


def flagged_members(session: Session, batch: Batch) -> dict[int, Flag]:
    """The batch's members below its gold floor (on counted gold answers: an excluded
    member's no longer count, so they are not flagged again)."""
    if batch.gold_floor is None:
        return {}
    return below_floor(batch, gold_scores(session, batch.id))


def apply_gold_floor(session: Session, batch_id: int, user_id: int | None = None) -> list[int]:
    """Excludes the members (or only `user_id`, after a gold answer of theirs) who are below
    the batch's floor, if the floor excludes and they are not excluded already. The ids of
    those excluded. Flushes only."""
    batch = session.get(Batch, batch_id)
    if batch is None or batch.gold_floor is None or not batch.gold_floor_excludes:
        return []
    flags = below_floor(batch, gold_scores(session, batch_id, annotator_id=user_id))
    excluded = []
    for annotator_id, flag in sorted(flags.items()):
        member = session.get(BatchMember, (batch_id, annotator_id))
        if member is None or member.excluded_at is not None:
            continue
        reason = (
            f"gold accuracy {flag.accuracy:.0%} on {flag.answers} gold answers, "
            f"below the batch's floor of {batch.gold_floor:.0%}"
        )
        front.exclude_member(session, batch_id=batch_id, user_id=annotator_id, reason=reason)
        excluded.append(annotator_id)
    return excluded


def after_gold_answer(session: Session, annotation_id: int) -> bool:
    """Checks the floor for the annotator of a gold answer just stored (a submit whose result
    says `check_gold_floor`); whether they were excluded. Flushes only."""
    annotation = session.get(Annotation, annotation_id)
    if annotation is None:
        return False
    return bool(apply_gold_floor(session, annotation.batch_id, annotation.annotator_id))


def set_gold_floor(
    session: Session,
    batch: Batch,
    *,
    floor: float | None,
    min_answers: int | None = None,
    excludes: bool | None = None,
) -> list[int]:
    """Sets (or, with `floor` None, removes) the batch's gold floor. When it excludes, the
    members below it now are excluded at once (their ids returned); later ones after the
    gold answer that brings them below it. Flushes only."""
    if floor is not None and not 0.0 <= floor <= 1.0:
        raise Invalid("gold_floor: must be between 0 and 1")
    if min_answers is not None and not 1 <= min_answers <= MAX_MIN_ANSWERS:
        raise Invalid(f"gold_floor_min_answers: must be between 1 and {MAX_MIN_ANSWERS}")
    batch.gold_floor = floor
    if min_answers is not None:
        batch.gold_floor_min_answers = min_answers
    if excludes is not None:
        batch.gold_floor_excludes = excludes
    session.flush()
    return apply_gold_floor(session, batch.id)
