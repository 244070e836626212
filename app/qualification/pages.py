"""Qualification pages: admins set it up and follow members' standings; members see where
they stand, and after each qualification answer its comparison with the key.

Plain forms answered with 303 redirects, so everything works without JavaScript.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.datastructures import FormData

from app.auth.access import allow
from app.auth.dependencies import AdminUser, CurrentUser
from app.auth.service import get_user
from app.batches import service as batches
from app.batches.models import AssignmentStatus, BatchItem
from app.core.templating import render
from app.dashboard.gold import GOLD_LABELS, to_positions
from app.db import DbSession
from app.errors import Invalid, NotFound
from app.items.models import GoldLabel, Item
from app.projects.models import Project
from app.qualification import service
from app.qualification.feedback import feedback
from app.queue import views

router = APIRouter(tags=["pages"], include_in_schema=False)
PREVIEW = 160  # characters of a prompt shown in the item table


def setup_url(batch_id: int) -> str:
    return f"/batches/{batch_id}/qualification/setup"


def status_url(batch_id: int) -> str:
    """Where a member sees their qualification standing (and a failed member ends up)."""
    return f"/batches/{batch_id}/qualification"


def feedback_url(assignment_id: int) -> str:
    return f"/assignments/{assignment_id}/feedback"


async def form_data(request: Request) -> FormData:
    return await request.form()


PostedForm = Annotated[FormData, Depends(form_data)]


def _gold_items(session: DbSession, batch_id: int) -> list[tuple[int, str, str]]:
    """(item id, external id, prompt preview) of the batch's gold items with answer keys."""
    rows = session.execute(
        select(Item.id, Item.external_id, Item.prompt)
        .join(BatchItem, BatchItem.item_id == Item.id)
        .join(GoldLabel, GoldLabel.item_id == Item.id)
        .where(BatchItem.batch_id == batch_id, BatchItem.is_gold.is_(True))
        .order_by(Item.id)
    ).all()
    return [
        (item_id, external or "", prompt if len(prompt) <= PREVIEW else prompt[:PREVIEW] + "…")
        for item_id, external, prompt in rows
    ]


def _setup(
    request: Request,
    session: DbSession,
    batch_id: int,
    *,
    error: str | None = None,
    chosen: list[int] | None = None,
    threshold: str | None = None,
    status_code: int = 200,
) -> Response:
    batch = batches.get_batch(session, batch_id)
    current = service.item_ids(session, batch.id)
    ctx: dict[str, Any] = {
        "batch": batch,
        "gold": _gold_items(session, batch.id),
        "chosen": set(current if chosen is None else chosen),
        "threshold": threshold
        if threshold is not None
        else (
            ""
            if batch.qualification_threshold is None
            else f"{100 * batch.qualification_threshold:g}"
        ),
        "standings": service.standings(session, batch),
        "labels": GOLD_LABELS,
        "error": error,
        "saved": request.query_params.get("saved") is not None,
    }
    return render(request, "qualification_setup.html", ctx, status_code=status_code)


@router.get("/batches/{batch_id}/qualification/setup")
@allow("admin")
def setup_page(request: Request, batch_id: int, session: DbSession, _admin: AdminUser) -> Response:
    return _setup(request, session, batch_id)


@router.post("/batches/{batch_id}/qualification/setup")
@allow("admin")
def setup_form(
    request: Request, batch_id: int, session: DbSession, _admin: AdminUser, form: PostedForm
) -> Response:
    batch = batches.get_batch(session, batch_id)
    raw_items = [str(v) for v in form.getlist("item")]
    raw_threshold = str(form.get("threshold_percent", "")).strip()
    chosen = [int(v) for v in raw_items if v.isdigit()]
    try:
        if len(chosen) != len(raw_items):
            raise Invalid("qualification items: not an item id")
        threshold: float | None = None
        if chosen:
            try:
                threshold = float(raw_threshold) / 100
            except ValueError:
                raise Invalid(
                    "Pass mark: enter a percentage between 1 and 100 (for example 80)"
                ) from None
            if not 0 < threshold <= 1:
                raise Invalid("Pass mark: enter a percentage between 1 and 100 (for example 80)")
        service.configure(session, batch, chosen, threshold)
    except Invalid as exc:
        session.rollback()
        return _setup(
            request,
            session,
            batch_id,
            error=exc.detail,
            chosen=chosen,
            threshold=raw_threshold,
            status_code=422,
        )
    return RedirectResponse(f"{setup_url(batch_id)}?saved=1", status_code=303)


@router.post("/batches/{batch_id}/members/{username}/qualification/reset")
@allow("admin")
def reset_form(batch_id: int, username: str, session: DbSession, _admin: AdminUser) -> Response:
    batch = batches.get_batch(session, batch_id)
    service.reset(session, batch, get_user(session, username))
    return RedirectResponse(f"{setup_url(batch_id)}?saved=1", status_code=303)


@router.get("/batches/{batch_id}/qualification")
@allow("member")
def status_page(request: Request, batch_id: int, session: DbSession, user: CurrentUser) -> Response:
    batch = batches.visible_batch(session, batch_id, user)
    standing = service.standing_of(session, batch, user.id)
    ctx = {
        "batch": batch,
        "standing": standing,
        "asked": len(service.item_ids(session, batch.id)),
        "labels": GOLD_LABELS,
        "threshold": round(100 * (batch.qualification_threshold or 0)),
    }
    return render(request, "qualification.html", ctx)


@router.get("/assignments/{assignment_id}/feedback")
@allow("owner-only")
def feedback_page(
    request: Request, assignment_id: int, session: DbSession, user: CurrentUser
) -> Response:
    view = views.assignment_view(session, assignment_id, user)
    a = view.assignment
    if a.annotator_id != user.id:
        raise NotFound(f"no assignment {assignment_id}")
    key = session.get(GoldLabel, a.item_id)
    if (
        not a.is_qualification
        or a.status != AssignmentStatus.SUBMITTED
        or view.annotation is None
        or key is None
    ):
        # Nothing to compare (yet): the item itself is where to go.
        return RedirectResponse(f"/assignments/{assignment_id}", status_code=303)
    positions = {r.id: r.position for r in view.responses}
    letters = {r.position: chr(ord("A") + i) for i, r in enumerate(view.responses)}
    project = session.get(Project, view.batch.project_id)
    first = service.first_answer(session, view.annotation.id)
    shown = feedback(
        to_positions(first, positions),
        key.payload,
        letters,
        project.guidelines if project else "",
    )
    standing = service.standing_of(session, view.batch, user.id)
    ctx = {
        "batch": view.batch,
        "item": view.item,
        "responses": [(letters[r.position], r) for r in view.responses],
        "feedback": shown,
        "standing": standing,
    }
    return render(request, "qualification_feedback.html", ctx)
