"""Batch metrics, item consensus and adjudication endpoints (admins)."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.consensus import service
from app.consensus.batch_metrics import batch_metrics
from app.consensus.schemas import (
    AdjudicationIn,
    AdjudicationOut,
    BatchMetricsOut,
    ItemConsensusOut,
)
from app.core.json_body import JSONRulesRoute
from app.db import DbSession
from app.suggestions.figures import prescreening_out

router = APIRouter(prefix="/api/v1/batches", tags=["consensus"], route_class=JSONRulesRoute)


@router.get("/{batch_id}/metrics", response_model=BatchMetricsOut)
@allow("admin")
def get_metrics(batch_id: int, session: DbSession, _admin: AdminUser) -> BatchMetricsOut:
    """Agreement per dimension and harm category, progress, the per-annotator table, and model
    pre-screening per suggestion origin."""
    metrics = batch_metrics(session, batch_id)
    metrics.prescreening = prescreening_out(session, batch_id)
    return metrics


@router.get("/{batch_id}/items/{item_id}/consensus", response_model=ItemConsensusOut)
@allow("admin")
def get_consensus(
    batch_id: int, item_id: int, session: DbSession, _admin: AdminUser
) -> ItemConsensusOut:
    """The item's votes, their consensus, its adjudication, and what an export writes."""
    return service.item_consensus_view(session, batch_id, item_id)


@router.get("/{batch_id}/items/{item_id}/adjudication", response_model=list[AdjudicationOut])
@allow("admin")
def list_adjudications(
    batch_id: int, item_id: int, session: DbSession, _admin: AdminUser
) -> list[AdjudicationOut]:
    """Every adjudication of the item, oldest first; the last one is in force."""
    return service.adjudications(session, batch_id, item_id)


@router.post(
    "/{batch_id}/items/{item_id}/adjudication",
    status_code=201,
    response_model=AdjudicationOut,
)
@allow("admin")
def adjudicate(
    batch_id: int, item_id: int, body: AdjudicationIn, session: DbSession, admin: AdminUser
) -> AdjudicationOut:
    """Final labels for the item, replacing its consensus in exports (recorded with who/when)."""
    return service.record_adjudication(session, batch_id, item_id, admin, body)
