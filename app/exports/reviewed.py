"""The export filter on review: keep only items whose counted annotations were all accepted.

An item of a batch passes when it has counted annotations (excluded ones are out of the count)
and every one of them has a review that accepted its current revision: a revision made after
the acceptance has not been reviewed."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, and_, select

from app.annotations.counted import counted
from app.annotations.models import Annotation
from app.reviews.models import Review, ReviewStatus


def accepted_items(
    conn: Connection, batch_ids: Iterable[int], item_ids: Iterable[int]
) -> set[tuple[int, int]]:
    """(batch id, item id) pairs among those given whose annotations were all accepted."""
    items = sorted(set(item_ids))
    wanted = set(items)
    if not items:
        return set()
    accepted = and_(
        Review.annotation_id == Annotation.id,
        Review.revision == Annotation.revision,
        Review.status == ReviewStatus.ACCEPTED.value,
    )
    passed: dict[tuple[int, int], bool] = {}
    for batch_id, item_id, review_id in conn.execute(
        select(Annotation.batch_id, Annotation.item_id, Review.id)
        .outerjoin(Review, accepted)
        .where(
            Annotation.batch_id.in_(list(batch_ids)),
            counted(),
            Annotation.item_id >= items[0],
            Annotation.item_id <= items[-1],
        )
    ):
        if item_id in wanted:  # the range selects a superset; this drops the gaps
            key = (batch_id, item_id)
            passed[key] = passed.get(key, True) and review_id is not None
    return {key for key, ok in passed.items() if ok}
