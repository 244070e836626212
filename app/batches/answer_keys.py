"""Whether a batch holds items with answer keys (the gold items' keys, app/dashboard/gold.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.batches.models import BatchItem
from app.items.models import GoldLabel


def batch_has_answer_keys(session: Session, batch_id: int) -> bool:
    """Whether any item of the batch has an answer key, as gold here or in another batch.

    Such a batch shows no model suggestion on any item. A key is often the item's reference
    label, which is what a suggestion shows; hiding it only on gold items would mark them out,
    and showing it on an item that is gold elsewhere would hand out the key. Turning
    suggestions off for the whole batch keeps every item page the same shape."""
    keyed = (
        select(BatchItem.item_id)
        .join(GoldLabel, GoldLabel.item_id == BatchItem.item_id)
        .where(BatchItem.batch_id == batch_id)
        .limit(1)
    )
    return session.scalar(keyed) is not None
