"""Pre-screening figures in the metrics API's shape (also shown on the dashboard)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.batches.models import Batch, BatchItem
from app.consensus.schemas import PrescreenAgreementOut, PrescreenOut
from app.items.models import ReferenceLabel
from app.suggestions.prescreen import prescreening


def prescreening_out(session: Session, batch_id: int) -> list[PrescreenOut]:
    return [
        PrescreenOut(
            origin=found.origin,
            items=found.items,
            flagged_annotations=found.flagged,
            dimensions={
                dim: PrescreenAgreementOut(
                    n_units=k.n,
                    percent_agreement=k.percent_agreement,
                    cohen_kappa=k.kappa,
                    reason=k.reason,
                )
                for dim, k in found.dimensions.items()
            },
        )
        for found in prescreening(session, batch_id)
    ]


def suggestions_fingerprint(session: Session, batch: Batch) -> tuple[Any, ...]:
    """Changes when the batch's threshold or its items' suggestions change (an upload writes
    every row it keeps anew), so that cached figures are recomputed."""
    count, newest = session.execute(
        select(func.count(), func.max(ReferenceLabel.created_at))
        .select_from(BatchItem)
        .join(ReferenceLabel, ReferenceLabel.item_id == BatchItem.item_id)
        .where(BatchItem.batch_id == batch.id)
    ).one()
    return (batch.suggestion_threshold, int(count), newest)
