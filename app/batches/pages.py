"""Pages: admins' batch list, batch creation and batch detail; annotators' queue pages.

Every form is a plain POST answered with a 303 redirect, so everything works without
JavaScript. The annotation page itself lives in app/annotations/pages.py; it reaches the queue
through `app.queue.front` and the URLs of `assignment_url` / `done_url` below.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.datastructures import FormData

from app.auth.access import allow
from app.auth.dependencies import AdminUser, CurrentUser
from app.auth.models import User
from app.auth.service import get_user
from app.batches import service
from app.batches.models import Assignment, Batch
from app.core.templating import render
from app.crowd.service import completion_for
from app.dashboard.gold_floor import flagged_members, set_gold_floor
from app.dashboard.work_report import work_report
from app.db import DbSession, utcnow
from app.errors import DomainError, Forbidden, Invalid, NotFound
from app.exports.formats import EXPORT_FORM
from app.items.models import Item
from app.projects.archive import archive_batch, batch_annotations, delete_batch, unarchive_batch
from app.projects.models import Project
from app.projects.service import get_project
from app.qualification import flow
from app.qualification import pages as qualification_pages
from app.queue import front, messages

router = APIRouter(tags=["pages"], include_in_schema=False)


def assignment_url(assignment_id: int) -> str:
    """Where an annotator works on an assignment (the annotation page)."""
    return f"/assignments/{assignment_id}"


def done_url(batch_id: int) -> str:
    """Shown when the queue has nothing left for the annotator in a batch."""
    return f"/batches/{batch_id}/done"


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def form_data(request: Request) -> FormData:
    return await request.form()


Form_ = Annotated[FormData, Depends(form_data)]


# ---------------------------------------------------------------- admin: batches


@router.get("/batches")
@allow("admin")
def batches_page(
    request: Request,
    session: DbSession,
    user: AdminUser,
    project_id: int | None = None,
    archived: bool = False,
) -> Response:
    """Live batches; `?archived=1` adds the archived ones."""
    summaries = service.list_batches(
        session, user, project_id=project_id, include_archived=archived
    )
    projects = {p.id: p for p in session.scalars(select(Project))}
    ctx = {"summaries": summaries, "projects": projects, "project_id": project_id}
    ctx["archived"] = archived
    return render(request, "batches.html", ctx)


def _new_batch_context(session: DbSession, project: Project, **extra: Any) -> dict[str, Any]:
    sources = session.scalars(
        select(Item.prompt_source)
        .where(Item.project_id == project.id)
        .distinct()
        .order_by(Item.prompt_source)
    ).all()
    annotators = session.scalars(
        select(User).where(User.is_active.is_(True)).order_by(User.role, User.username)
    ).all()
    ctx: dict[str, Any] = {
        "project": project,
        "sources": [s for s in sources if s],
        "annotators": annotators,
        "form": {"overlap": 3, "lease_minutes": 30, "members": []},
        "error": None,
    }
    ctx.update(extra)
    return ctx


@router.get("/projects/{project_id}/batches/new")
@allow("admin")
def new_batch_page(
    request: Request, project_id: int, session: DbSession, _admin: AdminUser
) -> Response:
    project = get_project(session, project_id)
    return render(request, "batch_new.html", _new_batch_context(session, project))


def _int_list(raw: str, field: str) -> list[int] | None:
    parts = raw.replace(",", " ").split()
    if not parts:
        return None
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise Invalid(
            f"{field}: item ids are whole numbers separated by spaces or commas"
        ) from None


def _optional_int(raw: str, field: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise Invalid(f"{field}: must be a whole number") from None


@router.post("/projects/{project_id}/batches")
@allow("admin")
def create_batch_form(
    request: Request, project_id: int, session: DbSession, _admin: AdminUser, form: Form_
) -> Response:
    project = get_project(session, project_id)
    values = {k: str(v) for k, v in form.items() if k != "members"}
    members = [str(m) for m in form.getlist("members")]
    try:
        # Everything is checked before the first write, so an error leaves nothing behind.
        users = [get_user(session, username) for username in members]
        for member in users:
            if not member.is_active:
                raise Invalid(f"members: user {member.username!r} is deactivated")
        lease_minutes = _optional_int(values.get("lease_minutes", ""), "lease_minutes") or 30
        overlap = _optional_int(values.get("overlap", ""), "overlap") or 3
        batch = service.create_batch(
            session,
            project,
            values.get("name", ""),
            overlap=overlap,
            lease_seconds=max(1, lease_minutes) * 60,
            item_ids=_int_list(values.get("item_ids", ""), "item_ids"),
            prompt_source=values.get("prompt_source") or None,
            sample_size=_optional_int(values.get("sample_size", ""), "sample_size"),
            sample_seed=_optional_int(values.get("sample_seed", ""), "sample_seed"),
            is_open=values.get("is_open") == "on",
        )
        for member in users:
            service.add_member(session, batch, member)
    except DomainError as exc:
        ctx = _new_batch_context(
            session, project, form={**values, "members": members}, error=exc.detail
        )
        return render(request, "batch_new.html", ctx, status_code=exc.status_code)
    return redirect(f"/batches/{batch.id}")


@router.get("/batches/{batch_id}")
@allow("admin")
def batch_page(request: Request, batch_id: int, session: DbSession, _admin: AdminUser) -> Response:
    batch = service.get_batch(session, batch_id)
    now = utcnow()
    members = service.list_members(session, batch, now)
    member_ids = {row.user.id for row in members}
    project = session.get_one(Project, batch.project_id)
    candidates = [
        u
        for u in session.scalars(
            select(User).where(User.is_active.is_(True)).order_by(User.username)
        )
        if u.id not in member_ids
    ]
    ctx = {
        "batch": batch,
        "project": project,
        "progress": service.batch_progress(session, batch, now),
        "members": members,
        "flags": flagged_members(session, batch),
        "candidates": candidates,
        "error": request.query_params.get("error"),
        "n_annotations": batch_annotations(session, batch.id),
        "project_archived": project.archived_at is not None,
        "gating_dimensions": GATING_LABELS,
        **EXPORT_FORM,
    }
    return render(request, "batch.html", ctx)


@router.post("/batches/{batch_id}/open")
@allow("admin")
def open_batch_form(batch_id: int, session: DbSession, _admin: AdminUser) -> Response:
    service.set_open(session, service.get_batch(session, batch_id), True)
    return redirect(f"/batches/{batch_id}")


@router.get("/batches/{batch_id}/close")
@allow("admin")
def close_batch_page(
    request: Request, batch_id: int, session: DbSession, _admin: AdminUser
) -> Response:
    """Asks before closing: annotators in the middle of an item could not submit it."""
    batch = service.get_batch(session, batch_id)
    progress = service.batch_progress(session, batch, utcnow())
    ctx = {"batch": batch, "in_progress": progress.live_leases}
    return render(request, "batch_close.html", ctx)


@router.post("/batches/{batch_id}/close")
@allow("admin")
def close_batch_form(batch_id: int, session: DbSession, _admin: AdminUser) -> Response:
    service.set_open(session, service.get_batch(session, batch_id), False)
    return redirect(f"/batches/{batch_id}")


@router.post("/batches/{batch_id}/settings")
@allow("admin")
def batch_settings_form(
    batch_id: int,
    session: DbSession,
    _admin: AdminUser,
    name: Annotated[str, Form(max_length=200)],
    overlap: Annotated[int, Form(ge=1, le=100)],
    lease_minutes: Annotated[int, Form(ge=1, le=7 * 24 * 60)],
) -> Response:
    batch = service.get_batch(session, batch_id)
    before = batch.overlap
    service.update_batch(
        session, batch, name=name, overlap=overlap, lease_seconds=lease_minutes * 60
    )
    if batch.overlap != before and batch.overlap_min is not None:
        # An adaptive batch's targets depend on the maximum (app/queue/targets.py).
        front.refresh_targets(session, batch.id)
    return redirect(f"/batches/{batch_id}")


# The gating dimensions as the page names them.
GATING_LABELS = {
    "helpfulness": "Helpfulness",
    "harmlessness": "Harmlessness",
    "single": "Overall preference",
    "is_safe": "Safe / unsafe of each answer",
}


def _whole_number(form: FormData, field: str, label: str) -> int | None:
    raw = str(form.get(field, "")).strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise Invalid(f"{label}: {raw!r} is not a whole number")
    return int(raw)


@router.post("/batches/{batch_id}/queue-settings")
@allow("admin")
def queue_settings_form(
    batch_id: int, session: DbSession, _admin: AdminUser, form: Form_
) -> Response:
    """Adaptive overlap and the per-person quota (blank fields: a fixed overlap, no quota)."""
    batch = service.get_batch(session, batch_id)
    raw_agreement = str(form.get("early_stop_percent", "")).strip() or "100"
    try:
        agreement = float(raw_agreement) / 100
    except ValueError:
        raise Invalid(f"Stop early at agreement: {raw_agreement!r} is not a number") from None
    gating = [str(d) for d in form.getlist("gating")]
    options: dict[str, Any] = {
        "overlap_min": _whole_number(form, "overlap_min", "At least"),
        "early_stop_agreement": agreement,
        # Every dimension ticked is the default (null): every question the project asks.
        "gating": None if set(gating) >= set(GATING_LABELS) else gating,
        "max_items_per_annotator": _whole_number(form, "max_items", "Items per person"),
    }
    if service.set_queue_options(batch, **options):
        front.refresh_targets(session, batch.id)
    return redirect(f"/batches/{batch_id}")


@router.post("/batches/{batch_id}/review-settings")
@allow("admin")
def review_settings_form(
    batch_id: int,
    session: DbSession,
    _admin: AdminUser,
    review_percent: Annotated[float, Form(ge=0, le=100)],
    min_seconds: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """The spot-check share and the too-fast flag (an empty time turns the flag off)."""
    try:
        seconds = float(min_seconds) if min_seconds.strip() else None
    except ValueError:
        raise Invalid(f"min_seconds: {min_seconds!r} is not a number") from None
    batch = service.get_batch(session, batch_id)
    service.update_batch(session, batch, review_rate=review_percent / 100, min_seconds=seconds)
    return redirect(f"/batches/{batch_id}")


@router.post("/batches/{batch_id}/members")
@allow("admin")
def add_member_form(
    batch_id: int,
    session: DbSession,
    _admin: AdminUser,
    username: Annotated[str, Form(min_length=1, max_length=64)],
) -> Response:
    batch = service.get_batch(session, batch_id)
    service.add_member(session, batch, get_user(session, username.strip()))
    return redirect(f"/batches/{batch_id}")


@router.post("/batches/{batch_id}/members/{username}/remove")
@allow("admin")
def remove_member_form(
    batch_id: int, username: str, session: DbSession, _admin: AdminUser
) -> Response:
    batch = service.get_batch(session, batch_id)
    front.remove_member(session, batch, get_user(session, username))
    return redirect(f"/batches/{batch_id}")


def _member_of(session: DbSession, batch_id: int, username: str) -> tuple[Batch, User]:
    batch = service.get_batch(session, batch_id)
    user = get_user(session, username)
    if not service.is_member(session, batch.id, user.id):
        raise NotFound(f"{username!r} is not a member of batch {batch_id}")
    return batch, user


@router.get("/batches/{batch_id}/members/{username}/exclude")
@allow("admin")
def exclude_member_page(
    request: Request, batch_id: int, username: str, session: DbSession, _admin: AdminUser
) -> Response:
    """Asks before excluding, with what it does and a field for the reason."""
    batch, user = _member_of(session, batch_id, username)
    counts = service.annotator_counts(session, batch.id, user_id=user.id).get(
        user.id, service.Counts()
    )
    flag = flagged_members(session, batch).get(user.id)
    ctx = {"batch": batch, "member": user, "counts": counts, "flag": flag}
    return render(request, "member_exclude.html", ctx)


@router.post("/batches/{batch_id}/members/{username}/exclude")
@allow("admin")
def exclude_member_form(
    batch_id: int,
    username: str,
    session: DbSession,
    _admin: AdminUser,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    batch, user = _member_of(session, batch_id, username)
    front.exclude_member(session, batch_id=batch.id, user_id=user.id, reason=reason)
    return redirect(f"/batches/{batch_id}#members")


@router.post("/batches/{batch_id}/members/{username}/include")
@allow("admin")
def include_member_form(
    batch_id: int, username: str, session: DbSession, _admin: AdminUser
) -> Response:
    batch, user = _member_of(session, batch_id, username)
    front.include_member(session, batch_id=batch.id, user_id=user.id)
    return redirect(f"/batches/{batch_id}#members")


def _optional_share(raw: str, field: str) -> float | None:
    """A percentage typed in a form (e.g. 70) as a share (0.7); blank is None."""
    raw = raw.strip().rstrip("%").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Invalid(f"{field}: must be a percentage between 0 and 100") from None
    if not 0 <= value <= 100:
        raise Invalid(f"{field}: must be a percentage between 0 and 100")
    return value / 100


@router.post("/batches/{batch_id}/gold-floor")
@allow("admin")
def gold_floor_form(batch_id: int, session: DbSession, _admin: AdminUser, form: Form_) -> Response:
    batch = service.get_batch(session, batch_id)
    values = {k: str(v) for k, v in form.items()}
    floor = _optional_share(values.get("gold_floor", ""), "gold_floor")
    min_answers = _optional_int(values.get("min_answers", ""), "min_answers")
    set_gold_floor(
        session,
        batch,
        floor=floor,
        min_answers=min_answers,
        excludes=values.get("excludes") == "on",
    )
    return redirect(f"/batches/{batch_id}#gold-floor")


@router.get("/batches/{batch_id}/work-report")
@allow("admin")
def work_report_page(
    request: Request, batch_id: int, session: DbSession, _admin: AdminUser
) -> Response:
    batch = service.get_batch(session, batch_id)
    ctx = {"batch": batch, "rows": work_report(session, batch)}
    return render(request, "work_report.html", ctx)


# ---------------------------------------------------------------- annotators: the queue


@router.post("/batches/{batch_id}/next")
@allow("member-only")
def next_page(batch_id: int, session: DbSession, user: CurrentUser) -> Response:
    """The "next item" button: resume my lease or claim one, then show it."""
    try:
        lease = flow.next_in_batch(session, batch_id, user)
    except Forbidden:  # excluded from the batch: the done page explains
        lease = None
    if isinstance(lease, flow.Failed):
        return redirect(qualification_pages.status_url(batch_id))
    if lease is None:
        return redirect(done_url(batch_id))
    return redirect(assignment_url(lease.assignment.id))


@router.get("/batches/{batch_id}/done")
@allow("member")
def batch_done_page(
    request: Request,
    batch_id: int,
    session: DbSession,
    user: CurrentUser,
    skipped: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    batch = service.visible_batch(session, batch_id, user)
    undo = session.get(Assignment, skipped) if skipped is not None else None
    ctx: dict[str, object] = {
        "skipped": (
            undo.id if undo and undo.annotator_id == user.id and undo.status == "skipped" else None
        ),
        "batch": batch,
        "progress": service.batch_progress(session, batch),
        "mine": service.annotator_counts(session, batch.id, user_id=user.id).get(
            user.id, service.Counts()
        ),
        # A crowd participant's completion code (app/crowd/service.py), else None.
        "completion": completion_for(session, batch.id, user.id),
        "excluded": service.is_excluded(session, batch.id, user.id),
    }
    quota = front.quota_reached(session, batch, user)
    ctx["quota_note"] = None if quota is None else messages.quota_note(quota)
    return render(request, "batch_done.html", ctx)


@router.post("/batches/{batch_id}/archive")
@allow("admin")
def archive_batch_form(batch_id: int, session: DbSession, _admin: AdminUser) -> Response:
    archive_batch(session, service.get_batch(session, batch_id))
    return redirect(f"/batches/{batch_id}")


@router.post("/batches/{batch_id}/unarchive")
@allow("admin")
def unarchive_batch_form(batch_id: int, session: DbSession, _admin: AdminUser) -> Response:
    unarchive_batch(session, service.get_batch(session, batch_id))
    return redirect(f"/batches/{batch_id}")


@router.get("/batches/{batch_id}/delete")
@allow("admin")
def delete_batch_page(
    request: Request, batch_id: int, session: DbSession, _admin: AdminUser
) -> Response:
    batch = service.get_batch(session, batch_id)
    ctx = {
        "kind": "batch",
        "name": batch.name,
        "action": f"/batches/{batch.id}/delete",
        "back": f"/batches/{batch.id}",
        "annotations": batch_annotations(session, batch.id),
        "consequence": "its members and assignments are deleted; its items stay in the project",
    }
    return render(request, "confirm_delete.html", ctx)


@router.post("/batches/{batch_id}/delete")
@allow("admin")
def delete_batch_form(
    batch_id: int,
    session: DbSession,
    _admin: AdminUser,
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    batch = service.get_batch(session, batch_id)
    if confirm != "yes":  # only the confirmation page's button deletes
        return redirect(f"/batches/{batch_id}/delete")
    project_id = batch.project_id
    delete_batch(session, batch)
    return redirect(f"/projects/{project_id}")
