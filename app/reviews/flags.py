"""Flag sources: which annotations of a batch a reviewer should see first, and why.

A source is a function `(session, batch_id) -> set of annotation ids` with a reason name; the
review queue draws flagged annotations in the order of `FLAGS`, so a source higher in the list
wins when an annotation has several reasons. Adding a source is adding an entry here (its
reason also gets a label in app/reviews/service.py REASON_LABELS; `contradicts_suggestion`,
for an annotation that contradicts a confident model suggestion, has one already).
Sources may return any annotation ids: the queue keeps only counted annotations of others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.batches.models import Batch, BatchItem
from app.dashboard.gold import GoldScore, score_answer, to_positions
from app.items.models import GoldLabel, Response
from app.suggestions.prescreen import contradicting_annotation_ids

FlagSource = Callable[[Session, int], set[int]]


@dataclass(frozen=True)
class Flag:
    reason: str
    source: FlagSource


def failed_gold(session: Session, batch_id: int) -> set[int]:
    """Annotations of the batch's gold items that disagree with the answer key anywhere."""
    rows = session.execute(
        select(Annotation.id, Annotation.item_id, Annotation.payload, GoldLabel.payload)
        .join(
            BatchItem,
            (BatchItem.batch_id == Annotation.batch_id) & (BatchItem.item_id == Annotation.item_id),
        )
        .join(GoldLabel, GoldLabel.item_id == Annotation.item_id)
        .where(Annotation.batch_id == batch_id, BatchItem.is_gold.is_(True))
    ).all()
    if not rows:
        return set()
    positions: dict[int, dict[int, int]] = {}
    for item_id, rid, position in session.execute(
        select(Response.item_id, Response.id, Response.position).where(
            Response.item_id.in_({item_id for _, item_id, _, _ in rows})
        )
    ):
        positions.setdefault(item_id, {})[rid] = position
    failed = set()
    for annotation_id, item_id, payload, key in rows:
        score = GoldScore()
        score_answer(score, key, to_positions(payload, positions.get(item_id, {})))
        if any(hits < checks for hits, checks in score.counts.values()):
            failed.add(annotation_id)
    return failed


def too_fast(session: Session, batch_id: int) -> set[int]:
    """Annotations whose last revision took less than the batch's minimum time."""
    batch = session.get(Batch, batch_id)
    if batch is None or batch.min_seconds is None:
        return set()
    return set(
        session.scalars(
            select(Annotation.id).where(
                Annotation.batch_id == batch_id,
                Annotation.duration_ms.is_not(None),
                Annotation.duration_ms < batch.min_seconds * 1000,
            )
        )
    )


FLAGS: list[Flag] = [
    Flag("contradicts_suggestion", contradicting_annotation_ids),
    Flag("failed_gold", failed_gold),
    Flag("too_fast", too_fast),
]
