"""The review page: one annotation at a time, decided with plain forms (no JavaScript needed).

GET shows the caller's live review in the batch, or a button that draws one (drawing writes,
so it is a POST). Deciding posts the form and 303-redirects to the next review.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.annotations.presenter import letter
from app.auth.access import allow
from app.auth.dependencies import CurrentUser
from app.core.templating import render
from app.db import DbSession
from app.errors import Conflict, Invalid
from app.reviews import queue, service

router = APIRouter(tags=["pages"], include_in_schema=False)


def review_url(batch_id: int) -> str:
    return f"/batches/{batch_id}/review"


def _page(
    request: Request,
    session: DbSession,
    batch_id: int,
    user: CurrentUser,
    *,
    error: str | None = None,
    note: str = "",
    status_code: int = 200,
    empty: bool = False,
) -> Response:
    batch = queue.reviewable_batch(session, batch_id, user)
    own = queue.current_lease(session, user.id)
    view = service.review_view(session, own) if own and own.batch_id == batch.id else None
    ctx = {
        "batch": batch,
        "view": view,
        "error": error,
        "note": note,
        "empty": empty,
        "letter": letter,
        "decided": request.query_params.get("decided"),
    }
    return render(request, "review.html", ctx, status_code=status_code)


@router.get("/batches/{batch_id}/review")
@allow("reviewer")
def review_page(request: Request, batch_id: int, session: DbSession, user: CurrentUser) -> Response:
    return _page(request, session, batch_id, user, empty="empty" in request.query_params)


@router.post("/batches/{batch_id}/review/next")
@allow("reviewer")
def draw_page(request: Request, batch_id: int, session: DbSession, user: CurrentUser) -> Response:
    batch = queue.reviewable_batch(session, batch_id, user)
    review = queue.next_review(session, batch, user)
    target = review_url(batch_id) + ("" if review is not None else "?empty=1")
    return RedirectResponse(target, status_code=303)


@router.post("/reviews/{review_id}/decision")
@allow("review-holder")
def decide_page(
    request: Request,
    review_id: int,
    session: DbSession,
    user: CurrentUser,
    decision: Annotated[str, Form(max_length=16)],
    note: Annotated[str, Form(max_length=service.MAX_NOTE)] = "",
) -> Response:
    batch_id = service.held_review(session, review_id, user).batch_id
    try:
        service.decide(session, review_id, user, decision, note)
    except (Invalid, Conflict) as refused:
        # The form again with the note as typed; nothing was recorded.
        return _page(
            request,
            session,
            batch_id,
            user,
            error=refused.detail,
            note=note,
            status_code=refused.status_code,
        )
    batch = queue.reviewable_batch(session, batch_id, user)
    drawn = queue.next_review(session, batch, user)
    target = review_url(batch_id) + f"?decided={decision}"
    if drawn is None:
        target += "&empty=1"
    return RedirectResponse(target, status_code=303)
