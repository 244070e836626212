"""Review endpoints: a reviewer's next review in a batch, and their decision on it."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.auth.access import allow
from app.auth.dependencies import CurrentUser
from app.core.json_body import JSONRulesRoute
from app.db import DbSession
from app.reviews import queue, service

router = APIRouter(prefix="/api/v1", tags=["reviews"], route_class=JSONRulesRoute)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "reject", "exclude"]
    note: str | None = Field(default=None, max_length=service.MAX_NOTE)


class DecisionOut(BaseModel):
    review_id: int
    status: str
    note: str
    annotation_id: int
    revision: int


def review_out(view: service.ReviewView) -> dict[str, Any]:
    return {
        "review_id": view.review.id,
        "reason": view.review.reason,
        "batch_id": view.batch.id,
        "leased_until": view.review.leased_until.isoformat(),
        "previous_note": view.previous_note,
        "annotation": service.annotation_out(view),
    }


@router.post(
    "/batches/{batch_id}/reviews/next",
    responses={
        200: {"description": "the caller's review lease"},
        204: {"description": "nothing is left for the caller to review in this batch"},
    },
)
@allow("reviewer")
def next_review(batch_id: int, session: DbSession, user: CurrentUser) -> Response:
    """The caller's live review in this batch (its lease renewed) or a new one; 204 when
    nothing is left for them. Reviewers and admins only."""
    batch = queue.reviewable_batch(session, batch_id, user)
    review = queue.next_review(session, batch, user)
    if review is None:
        return Response(status_code=204)
    return JSONResponse(review_out(service.review_view(session, review)))


@router.put("/reviews/{review_id}", response_model=DecisionOut)
@allow("review-holder")
def decide(review_id: int, body: DecisionIn, session: DbSession, user: CurrentUser) -> DecisionOut:
    """Accept, reject (with a note: the annotation goes back to its annotator) or exclude the
    annotation of a review the caller holds."""
    review = service.decide(session, review_id, user, body.decision, body.note)
    return DecisionOut(
        review_id=review.id,
        status=review.status,
        note=review.note,
        annotation_id=review.annotation_id,
        revision=review.revision,
    )
