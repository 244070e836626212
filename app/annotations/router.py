"""Assignment endpoints: read one's own assignment, submit or revise it, skip it."""

from __future__ import annotations

from functools import partial
from typing import Any, cast

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from app.annotations import service
from app.annotations.schemas import (
    AnnotationIn,
    AnnotationOut,
    AssignmentOut,
    SkipIn,
    SkipOut,
    StoredAnnotationOut,
)
from app.annotations.service import Outcome
from app.annotations.validation import validate_annotation
from app.auth.access import allow
from app.auth.dependencies import CurrentUser, authenticated, required_credentials
from app.batches import queue_pg
from app.batches.schemas import assigned_item
from app.db import DbSession, hot_pool, run_in_session, utcnow

router = APIRouter(prefix="/api/v1/assignments", tags=["assignments"])


def annotation_out(result: service.SubmitResult) -> AnnotationOut:
    a, ann = result.assignment, result.annotation
    assert a.submitted_at is not None
    return AnnotationOut(
        annotation_id=ann.id,
        assignment_id=a.id,
        batch_id=a.batch_id,
        item_id=a.item_id,
        revision=ann.revision,
        outcome=result.outcome,
        submitted_at=a.submitted_at,
        updated_at=ann.updated_at,
        duration_ms=ann.duration_ms,
        suggestion_viewed=ann.suggestion_viewed,
        payload=ann.payload,
    )


@router.get("/{assignment_id}", response_model=AssignmentOut)
@allow("owner")
def get_assignment(assignment_id: int, session: DbSession, user: CurrentUser) -> AssignmentOut:
    """The caller's own assignment (admins: any), its item in display order, and its
    current annotation if submitted."""
    view = service.assignment_view(session, assignment_id, user)
    a, item, ann = view.assignment, view.item, view.annotation
    return AssignmentOut(
        assignment_id=a.id,
        batch_id=a.batch_id,
        status=a.status,
        leased_until=a.leased_until,
        submitted_at=a.submitted_at,
        skip_reason=a.skip_reason,
        item=assigned_item(
            item.id,
            item.prompt,
            item.prompt_source,
            ((r.id, r.text, r.source) for r in view.responses),
            for_admin=user.is_admin,
        ),
        annotation=None
        if ann is None
        else StoredAnnotationOut(
            annotation_id=ann.id,
            revision=ann.revision,
            payload=ann.payload,
            duration_ms=ann.duration_ms,
            updated_at=ann.updated_at,
        ),
    )


@router.put("/{assignment_id}/annotation", response_model=AnnotationOut)
@allow("owner-only")
async def put_annotation(assignment_id: int, body: AnnotationIn, request: Request) -> Response:
    """Submit, or revise, the caller's annotation. Sending the same payload again is a no-op
    (`outcome` "unchanged", same revision); a different one is kept as a new revision.
    422 names the field that breaks a rule; 409 if the batch is closed, the assignment was
    skipped, or the lease expired and the item has since gone to others (nothing saved)."""
    pool = await hot_pool(request)
    if pool is None:
        return await run_in_session(request, partial(_put, request, assignment_id, body))
    # PostgreSQL's hot path, in the event loop: the context (which checks the credentials),
    # validation here, then the write, which checks ownership and state again under locks.
    now = utcnow()
    caller = required_credentials(request)
    context = await queue_pg.submit_context_async(pool, assignment_id, caller, now)
    payload = validate_annotation(context, context.response_ids, body)
    row = await queue_pg.submit_async(pool, assignment_id, context.user_id, payload, body, now)
    return _stored(assignment_id, row, payload)


def _stored(assignment_id: int, row: queue_pg.SubmitRow, payload: dict[str, Any]) -> Response:
    out = AnnotationOut(
        annotation_id=row.annotation_id,
        assignment_id=assignment_id,
        batch_id=row.batch_id,
        item_id=row.item_id,
        revision=row.revision,
        outcome=cast(Outcome, row.outcome),
        submitted_at=row.submitted_at,
        updated_at=row.updated_at,
        duration_ms=row.duration_ms,
        suggestion_viewed=row.suggestion_viewed,
        payload=payload,
    )
    return Response(out.model_dump_json(), media_type="application/json")


def _put(request: Request, assignment_id: int, body: AnnotationIn, session: Session) -> Response:
    if queue_pg.is_postgresql(session):
        # As on the hot path, in the request's session (tests: their rolled-back transaction).
        now = utcnow()
        caller = required_credentials(request)
        context = queue_pg.submit_context(session, assignment_id, caller, now)
        payload = validate_annotation(context, context.response_ids, body)
        row = queue_pg.submit(session, assignment_id, context.user_id, payload, body, now)
        return _stored(assignment_id, row, payload)
    user = authenticated(request, session)
    out = annotation_out(service.submit(session, assignment_id, user, body))
    return Response(out.model_dump_json(), media_type="application/json")


@router.post("/{assignment_id}/skip", response_model=SkipOut)
@allow("owner-only")
def skip_assignment(
    assignment_id: int, session: DbSession, user: CurrentUser, body: SkipIn | None = None
) -> SkipOut:
    """Skip: the item goes to other annotators and never comes back to the caller."""
    result = service.skip(session, assignment_id, user, body.reason if body else None)
    a = result.assignment
    return SkipOut(assignment_id=a.id, status=a.status, skip_reason=a.skip_reason)
