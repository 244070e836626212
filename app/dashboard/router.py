"""Gold item endpoints (admins): list, mark with an answer key, unmark, and the gold share."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.batches.models import Batch
from app.core.json_body import JSONRulesRoute
from app.dashboard import gold
from app.dashboard.schemas import GoldItemOut, GoldListOut, GoldMarkIn, GoldRateIn
from app.db import DbSession
from app.errors import NotFound

router = APIRouter(prefix="/api/v1/batches", tags=["gold"], route_class=JSONRulesRoute)


def _batch(session: DbSession, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    return batch


def _listing(session: DbSession, batch: Batch) -> GoldListOut:
    return GoldListOut(
        batch_id=batch.id,
        gold_rate=batch.gold_rate,
        items=[
            GoldItemOut(item_id=g.item.id, labels=g.key, answers=g.answers, created_by=g.created_by)
            for g in gold.gold_items(session, batch)
        ],
    )


@router.get("/{batch_id}/gold", response_model=GoldListOut)
@allow("admin")
def list_gold(batch_id: int, session: DbSession, _admin: AdminUser) -> GoldListOut:
    """The batch's gold items with their answer keys, and its gold share."""
    return _listing(session, _batch(session, batch_id))


@router.put("/{batch_id}/gold/{item_id}", response_model=GoldItemOut)
@allow("admin")
def mark_gold(
    batch_id: int, item_id: int, body: GoldMarkIn, session: DbSession, admin: AdminUser
) -> GoldItemOut:
    """Makes the item gold in the batch, with the given answer key or its reference label."""
    batch = _batch(session, batch_id)
    key = None
    if body.labels is not None:  # parts left out stay out; a safe answer keeps severity null
        key = {k: v for k, v in body.labels.model_dump().items() if v is not None}
    label = gold.mark_gold(session, batch, item_id, admin, key)
    found = gold.check_in_batch(session, batch, item_id)
    return GoldItemOut(
        item_id=item_id,
        labels=label.payload,
        answers=found.submitted,
        created_by=admin.username,
    )


@router.delete("/{batch_id}/gold/{item_id}", status_code=204)
@allow("admin")
def unmark_gold(batch_id: int, item_id: int, session: DbSession, _admin: AdminUser) -> Response:
    """The item becomes ordinary again in the batch (its answer key is kept)."""
    gold.unmark_gold(session, _batch(session, batch_id), item_id)
    return Response(status_code=204)


@router.put("/{batch_id}/gold-rate", response_model=GoldListOut)
@allow("admin")
def set_gold_rate(
    batch_id: int, body: GoldRateIn, session: DbSession, _admin: AdminUser
) -> GoldListOut:
    """The share of each annotator's stream made of gold items (0 turns mixing off)."""
    batch = _batch(session, batch_id)
    gold.set_gold_rate(session, batch, body.gold_rate)
    return _listing(session, batch)
