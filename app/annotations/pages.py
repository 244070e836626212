"""The annotation page (one item per page, keyboard-first) and the annotator's "My work" page.

Plain forms that POST and 303-redirect, so everything works without JavaScript. With htmx
(`HX-Request`), a submit or skip answers with the next item's fragment instead, and pushes
its URL. The form is turned into the API's body by `annotation_from_form` and saved by the
same service as `PUT /api/v1/assignments/{id}/annotation`, so the same rules apply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.datastructures import FormData

from app.annotations import drafts
from app.annotations.form_checks import form_problems, listed_problems
from app.annotations.forms import annotation_from_form
from app.annotations.guide import DIMENSIONS, SEVERITIES, SEVERITY_KEYS, SHORTCUTS
from app.annotations.models import Annotation
from app.annotations.presenter import (
    FormValues,
    Suggestion,
    asked_dimensions,
    complete_rankings,
    field_errors,
    form_duration_ms,
    guidelines_html,
    has_bidi_controls,
    letter,
    page_progress,
    suggestions_for,
    values_from_annotation,
    values_from_form,
)
from app.auth.access import allow
from app.auth.dependencies import CurrentUser, OptionalUser
from app.auth.models import User
from app.batches.models import Assignment, AssignmentStatus, Batch
from app.batches.pages import assignment_url, done_url
from app.batches.service import is_member
from app.core.csrf_tokens import CSRF_FIELD
from app.core.htmx import is_htmx
from app.core.templating import render
from app.dashboard.gold_floor import after_gold_answer
from app.db import DbSession, utcnow
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.items.models import Item
from app.projects.category_help import category_help
from app.projects.guidelines import change_notice
from app.qualification import flow
from app.qualification import pages as qualification_pages
from app.queue import front, views
from app.reviews.service import review_states
from app.suggestions.viewed import record_view, viewed_origins
from app.web.bodies import reads_without_credentials

router = APIRouter(tags=["pages"], include_in_schema=False)
MY_WORK_PAGE = 50
MAX_FORM_FIELDS = 10_000


async def form_data(request: Request) -> FormData:
    return await request.form(max_fields=MAX_FORM_FIELDS)


PostedForm = Annotated[FormData, Depends(form_data)]


def my_work_url(batch_id: int) -> str:
    return f"/batches/{batch_id}/mine"


def is_editable(view: views.AssignmentView) -> bool:
    return view.batch.is_open and view.assignment.status in (
        AssignmentStatus.LEASED,
        AssignmentStatus.EXPIRED,
        AssignmentStatus.SUBMITTED,
    )


def suggestion_url(assignment_id: int) -> str:
    return f"/assignments/{assignment_id}/suggestion"


def suggestion_was_viewed(view: views.AssignmentView) -> bool:
    annotation = view.annotation
    return view.assignment.suggestion_viewed or (
        annotation is not None and annotation.suggestion_viewed
    )


def shown_origins(
    session: DbSession, view: views.AssignmentView, offered: list[Suggestion]
) -> set[str]:
    """The origins whose content the server has sent for this assignment. Views from before
    origins were recorded count as the first origin's (the only one then shown)."""
    shown = viewed_origins(session, view.assignment.id)
    if not shown and suggestion_was_viewed(view) and offered:
        shown = {offered[0].origin}
    return shown


def suggestion_context(
    session: DbSession, view: views.AssignmentView, editable: bool
) -> dict[str, Any]:
    offered = suggestions_for(session, view)
    shown = shown_origins(session, view, offered)
    return {
        "suggestions_shown": [s for s in offered if s.origin in shown],
        # The content of the others is not on the page until asked for (and recorded).
        "suggestions_offered": [s.origin for s in offered if s.origin not in shown]
        if editable
        else [],
        "suggestion_url": suggestion_url(view.assignment.id),
    }


def _own_view(session: DbSession, assignment_id: int, user: User) -> views.AssignmentView:
    view = views.assignment_view(session, assignment_id, user)
    if view.assignment.annotator_id != user.id:
        # Admins read other people's work through the API; this page is for doing one's own.
        raise NotFound(f"no assignment {assignment_id}")
    return view


def error_list(errors: dict[str, str], view: views.AssignmentView) -> list[tuple[str, str, str]]:
    """(field key, what it is, message) for the summary at the top of the page."""
    return listed_problems(errors, [r.id for r in view.responses])


def _undoable_skip(session: DbSession, assignment_id: int | None, user: User) -> int | None:
    """The id of the caller's skipped assignment to offer an undo for, if it still is one."""
    if assignment_id is None:
        return None
    skipped = session.get(Assignment, assignment_id)
    if skipped is None or skipped.annotator_id != user.id or skipped.status != "skipped":
        return None
    return assignment_id


def page_context(
    session: DbSession,
    view: views.AssignmentView,
    user: User,
    *,
    values: FormValues | None = None,
    errors: dict[str, str] | None = None,
    prior_ms: int = 0,
    now: datetime | None = None,
    notice: str | None = None,
    skipped: int | None = None,
) -> dict[str, Any]:
    a, project = view.assignment, view.project
    now = now or utcnow()
    editable = is_editable(view)
    return {
        "view": view,
        "a": a,
        "batch": view.batch,
        "project": project,
        "item": view.item,
        "responses": [(letter(i), r) for i, r in enumerate(view.responses)],
        "bidi": {r.id for r in view.responses if has_bidi_controls(r.text)},
        "prompt_bidi": has_bidi_controls(view.item.prompt),
        "letters": {r.id: letter(i) for i, r in enumerate(view.responses)},
        "values": values or values_from_annotation(view),
        "errors": errors or {},
        "error_list": error_list(errors or {}, view),
        "categories": category_help(project.taxonomy_preset, project.taxonomy),
        "severities": SEVERITIES,
        "severity_keys": SEVERITY_KEYS,
        "dimensions": [(d, *DIMENSIONS[d]) for d in asked_dimensions(view)],
        "shortcuts": SHORTCUTS,
        "guidelines": guidelines_html(project.guidelines),
        **suggestion_context(session, view, editable),
        "guideline_notice": change_notice(session, project.id, user.id),
        "progress": page_progress(session, view.batch, user.id),
        "editable": editable,
        "revising": a.status == AssignmentStatus.SUBMITTED,
        "lease_expired": a.status == AssignmentStatus.EXPIRED
        or (a.status == AssignmentStatus.LEASED and a.leased_until < now),
        "prior_ms": prior_ms,
        "notice": notice,
        "skipped": _undoable_skip(session, skipped, user),
        "my_work_url": my_work_url(view.batch.id),
        "done_url": done_url(view.batch.id),
    }


def _render_view(
    request: Request,
    session: DbSession,
    view: views.AssignmentView,
    user: User,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    ctx = page_context(session, view, user, **extra)
    name = "fragments/annotate.html" if is_htmx(request) else "annotate.html"
    return render(request, name, ctx, status_code=status_code)


@router.get("/assignments/{assignment_id}")
@allow("owner-only")
def annotate_page(
    request: Request,
    assignment_id: int,
    session: DbSession,
    user: CurrentUser,
    skipped: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    view = _own_view(session, assignment_id, user)
    draft = drafts.restore(session, request, assignment_id)
    if draft is None or view.assignment.status not in ("leased", "expired", "submitted"):
        ctx = page_context(session, view, user, skipped=skipped)
        return render(request, "annotate.html", ctx)
    measured = str(draft.get("duration_ms", ""))
    ctx = page_context(
        session,
        view,
        user,
        values=values_from_form(draft, view),
        prior_ms=int(measured) if measured.isdigit() else 0,
        notice=RESTORED,
    )
    return render(request, "annotate.html", ctx)


RESTORED = (
    "Your session had ended when you submitted, so nothing was saved then. Your answers are "
    "filled in again below: check them and submit."
)


def _login_after_expiry(
    request: Request, session: DbSession, assignment_id: int, form: FormData
) -> Response:
    """A submit without a valid session: keep the answers and send the browser to log in."""
    target = f"/login?next={quote(assignment_url(assignment_id))}&expired=1"
    response: Response = (
        Response(status_code=204, headers={"HX-Redirect": target})
        if is_htmx(request)
        else RedirectResponse(target, status_code=303)
    )
    drafts.keep(session, request, response, assignment_id, form)
    return response


def _closed_notice(batch: Batch) -> str:
    return (
        f"The batch \u201c{batch.name}\u201d was closed while you worked on this item, so "
        "your answers were not saved. They are shown below so that nothing is lost; ask the "
        "batch's admin if it should be reopened."
    )


def _next(
    request: Request, session: DbSession, batch: Batch, user: User, skipped: int | None = None
) -> Response:
    """After a submit or skip: the next item (a fragment for htmx), or the batch-done page.
    After a skip, the next page offers to undo it (`skipped` in its URL without htmx)."""
    try:
        lease = flow.next_lease(session, batch, user)
    except Forbidden:  # excluded (the gold floor may have just done it): the done page says so
        lease = None
    if isinstance(lease, flow.Failed):
        return _go(request, qualification_pages.status_url(batch.id))
    if not is_htmx(request) or lease is None:
        target = done_url(batch.id) if lease is None else assignment_url(lease.assignment.id)
        if skipped is not None:
            target += f"?skipped={skipped}"
        if is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    view = views.assignment_view(session, lease.assignment.id, user)
    response = _render_view(request, session, view, user, skipped=skipped)
    response.headers["HX-Push-Url"] = assignment_url(lease.assignment.id)
    return response


def _go(request: Request, target: str) -> Response:
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _refused(
    request: Request,
    session: DbSession,
    view: views.AssignmentView,
    user: User,
    form: FormData,
    status_code: int,
    **extra: Any,
) -> Response:
    """The item again with what the annotator posted, after a refused submit: nothing typed
    is lost (the time already spent is carried over too)."""
    measured = str(form.get("duration_ms", ""))
    return _render_view(
        request,
        session,
        view,
        user,
        status_code=status_code,
        values=values_from_form(form, view),
        prior_ms=int(measured) if measured.isdigit() else 0,
        **extra,
    )


@router.post("/assignments/{assignment_id}")
@allow("owner-only")
@reads_without_credentials
def submit_page(
    request: Request,
    assignment_id: int,
    session: DbSession,
    maybe_user: OptionalUser,
    form: PostedForm,
) -> Response:
    if maybe_user is None:
        return _login_after_expiry(request, session, assignment_id, form)
    user = maybe_user
    now = utcnow()
    view = _own_view(session, assignment_id, user)
    was_submitted = view.assignment.status == AssignmentStatus.SUBMITTED
    completed = complete_rankings(form, view)
    problems = form_problems(completed, view)
    if problems:
        return _refused(request, session, view, user, form, 422, errors=problems)
    try:
        body = annotation_from_form(completed, view)
        body = body.model_copy(
            update={
                "duration_ms": form_duration_ms(form, view, now),
                # What the server recorded when it sent the suggestion, not what the page says.
                "suggestion_viewed": suggestion_was_viewed(view),
            }
        )
        result = front.submit(session, assignment_id, user, body, now=now)
    except Conflict:
        session.rollback()
        view = _own_view(session, assignment_id, user)
        if view.batch.is_open:
            raise
        return _refused(request, session, view, user, form, 409, notice=_closed_notice(view.batch))
    except Invalid as exc:
        session.rollback()
        view = _own_view(session, assignment_id, user)
        return _refused(request, session, view, user, form, 422, errors=field_errors(exc, view))
    drafts.discard(session, request, assignment_id)
    if result.check_gold_floor:  # a gold answer where the batch's gold floor excludes
        after_gold_answer(session, result.annotation.id)
    if view.assignment.is_qualification and not was_submitted:
        # The training step: the answer beside the key before the next item.
        return _go(request, qualification_pages.feedback_url(assignment_id))
    if was_submitted:
        said = "unchanged" if result.outcome == "unchanged" else "saved"
        target = f"{my_work_url(view.batch.id)}?{said}={assignment_id}#a{assignment_id}"
        if is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    return _next(request, session, view.batch, user)


@router.post("/assignments/{assignment_id}/suggestion")
@allow("owner-only")
def suggestion_page(
    request: Request,
    assignment_id: int,
    session: DbSession,
    user: CurrentUser,
    form: PostedForm,
) -> Response:
    """Sends one origin's suggestion (the form's `origin`, else the first not yet shown) and
    records that this annotator has seen it. With htmx, only the suggestions; without, the
    page again with the answers given so far (the button posts the whole annotation form) and
    the suggestion shown."""
    view = _own_view(session, assignment_id, user)
    offered = suggestions_for(session, view)
    shown = shown_origins(session, view, offered)
    asked = str(form.get("origin") or "")
    if not asked:
        asked = next((s.origin for s in offered if s.origin not in shown), "")
        asked = asked or (offered[0].origin if offered else "")
    if asked not in {s.origin for s in offered}:
        raise NotFound(f"no model suggestion {asked!r} for assignment {assignment_id}")
    if asked not in shown:
        if not is_editable(view):
            raise Conflict(f"assignment {assignment_id} can no longer be changed")
        # Also a view from before origins were recorded, so it stays on the page.
        for origin in sorted(shown | {asked}):
            record_view(session, assignment_id, origin)
        view.assignment.suggestion_viewed = True
        if view.annotation is not None:
            view.annotation.suggestion_viewed = True
        session.flush()
    if is_htmx(request):
        ctx = suggestion_context(session, view, is_editable(view))
        return render(request, "fragments/suggestions.html", ctx)
    answered = any(key not in (CSRF_FIELD, "origin") for key in form)
    measured = str(form.get("duration_ms", ""))
    return render(
        request,
        "annotate.html",
        page_context(
            session,
            view,
            user,
            values=values_from_form(form, view) if answered else None,
            prior_ms=int(measured) if measured.isdigit() else 0,
        ),
    )


@router.post("/assignments/{assignment_id}/skip")
@allow("owner-only")
def skip_page(
    request: Request,
    assignment_id: int,
    session: DbSession,
    user: CurrentUser,
    form: PostedForm,
) -> Response:
    view = _own_view(session, assignment_id, user)
    reason = str(form.get("reason") or "")[:2000]
    front.skip(session, assignment_id, user, reason or None)
    return _next(request, session, view.batch, user, skipped=assignment_id)


@router.post("/assignments/{assignment_id}/unskip")
@allow("owner-only")
def unskip_page(
    request: Request, assignment_id: int, session: DbSession, user: CurrentUser
) -> Response:
    """Undo of a skip: back to the skipped item, leased again if its slot is still free."""
    _own_view(session, assignment_id, user)
    front.unskip(session, assignment_id, user)
    if not is_htmx(request):
        return RedirectResponse(assignment_url(assignment_id), status_code=303)
    view = views.assignment_view(session, assignment_id, user)
    response = _render_view(request, session, view, user)
    response.headers["HX-Push-Url"] = assignment_url(assignment_id)
    return response


@router.get("/batches/{batch_id}/mine")
@allow("member-only")
def my_work_page(
    request: Request,
    batch_id: int,
    session: DbSession,
    user: CurrentUser,
    before: Annotated[int | None, Query(ge=1)] = None,
    saved: Annotated[int | None, Query(ge=1)] = None,
    unchanged: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """My submitted and skipped items in the batch, newest first, each reopenable."""
    batch = session.get(Batch, batch_id)
    if batch is None or not is_member(session, batch_id, user.id):
        raise NotFound(f"no batch {batch_id}")
    query = (
        select(Assignment, Annotation, Item.prompt)
        .join(Item, Item.id == Assignment.item_id)
        .outerjoin(Annotation, Annotation.assignment_id == Assignment.id)
        .where(
            Assignment.batch_id == batch_id,
            Assignment.annotator_id == user.id,
            Assignment.status.in_((AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED)),
        )
        .order_by(Assignment.id.desc())
        .limit(MY_WORK_PAGE)
    )
    if before is not None:
        query = query.where(Assignment.id < before)
    rows = [(a, ann, prompt) for a, ann, prompt in session.execute(query)]
    ctx = {
        "batch": batch,
        "rows": rows,
        "reviews": review_states(session, [ann.id for _, ann, _ in rows if ann is not None]),
        "progress": page_progress(session, batch, user.id),
        "saved": saved,
        "unchanged": unchanged,
        "older": rows[-1][0].id if len(rows) == MY_WORK_PAGE else None,
        "done_url": done_url(batch.id),
    }
    return render(request, "my_work.html", ctx)
