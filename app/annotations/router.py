"""Assignment endpoints: read one's own assignment, submit or revise it, skip it."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request, Response

from app.annotations.schemas import (
    AnnotationIn,
    AnnotationOut,
    AssignmentOut,
    SkipIn,
    SkipOut,
    StoredAnnotationOut,
)
from app.auth.access import allow
from app.auth.dependencies import CurrentUser
from app.batches.schemas import assigned_item
from app.core.json_body import JSONRulesRoute
from app.dashboard.gold_floor import after_gold_answer
from app.db import DbSession, run_in_session
from app.queue import front, views
from app.queue.results import Stored

router = APIRouter(prefix="/api/v1/assignments", tags=["assignments"], route_class=JSONRulesRoute)


def annotation_out(done: Stored) -> AnnotationOut:
    return AnnotationOut(
        annotation_id=done.annotation_id,
        assignment_id=done.assignment_id,
        batch_id=done.batch_id,
        item_id=done.item_id,
        revision=done.revision,
        outcome=done.outcome,
        submitted_at=done.submitted_at,
        updated_at=done.updated_at,
        duration_ms=done.duration_ms,
        suggestion_viewed=done.suggestion_viewed,
        payload=done.payload,
    )


@router.get("/{assignment_id}", response_model=AssignmentOut)
@allow("owner")
def get_assignment(assignment_id: int, session: DbSession, user: CurrentUser) -> AssignmentOut:
    """The caller's own assignment (admins: any), its item in display order, and its
    current annotation if submitted."""
    view = views.assignment_view(session, assignment_id, user)
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
    done = await front.submit_for_request(request, assignment_id, body)
    if done.check_gold_floor:  # rare: a gold answer where the batch's gold floor excludes
        await run_in_session(request, partial(after_gold_answer, annotation_id=done.annotation_id))
    return Response(annotation_out(done).model_dump_json(), media_type="application/json")


@router.post("/{assignment_id}/skip", response_model=SkipOut)
@allow("owner-only")
def skip_assignment(
    assignment_id: int, session: DbSession, user: CurrentUser, body: SkipIn | None = None
) -> SkipOut:
    """Skip: the item goes to other annotators and never comes back to the caller."""
    result = front.skip(session, assignment_id, user, body.reason if body else None)
    a = result.assignment
    return SkipOut(assignment_id=a.id, status=a.status, skip_reason=a.skip_reason)
