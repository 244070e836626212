"""Batch endpoints: create, list, open/close, members, progress, and the queue's `next`."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.auth.access import allow
from app.auth.dependencies import AdminUser, CurrentUser
from app.auth.models import User
from app.auth.service import get_user
from app.batches import service
from app.batches.models import Batch
from app.batches.schemas import (
    BatchCreate,
    BatchOut,
    BatchProgressOut,
    BatchUpdate,
    EntryOut,
    ExcludeIn,
    MemberIn,
    MemberOut,
    MyProgressOut,
    NextOut,
    assigned_item,
)
from app.core.json_body import JSONRulesRoute
from app.crowd import service as crowd
from app.crowd.models import BatchEntry
from app.dashboard.gold_floor import set_gold_floor
from app.dashboard.work_report import to_csv, work_report
from app.db import DbSession, utcnow
from app.errors import NotFound
from app.projects.service import get_project
from app.qualification import flow
from app.queue import front
from app.queue.results import LeaseView

router = APIRouter(prefix="/api/v1/batches", tags=["batches"], route_class=JSONRulesRoute)


def batch_out(summary: service.BatchSummary, entry: BatchEntry | None = None) -> BatchOut:
    b = summary.batch
    return BatchOut(
        entry=None if entry is None else EntryOut.model_validate(entry, from_attributes=True),
        entry_url=None if entry is None else crowd.entry_url(entry),
        id=b.id,
        project_id=b.project_id,
        name=b.name,
        overlap=b.overlap,
        lease_seconds=b.lease_seconds,
        is_open=b.is_open,
        review_rate=b.review_rate,
        min_seconds=b.min_seconds,
        created_at=b.created_at,
        overlap_min=b.min_overlap,
        early_stop_agreement=b.early_stop_agreement,
        gating=b.gating,
        max_items_per_annotator=b.max_items_per_annotator,
        items=summary.items,
        submitted=summary.submitted,
        wanted=summary.wanted,
        percent=summary.percent,
        gold_floor=b.gold_floor,
        gold_floor_min_answers=b.gold_floor_min_answers,
        gold_floor_excludes=b.gold_floor_excludes,
        suggestion_threshold=b.suggestion_threshold,
    )


def _summary(session: DbSession, batch: Batch, *, for_admin: bool = True) -> BatchOut:
    progress = service.batch_progress(session, batch)
    summary = service.BatchSummary(batch, progress.items, progress.submitted, progress.wanted)
    # The entry settings hold the completion code: never shown to an annotator.
    return batch_out(summary, crowd.get_entry(session, batch.id) if for_admin else None)


@router.post("", status_code=201, response_model=BatchOut)
@allow("admin")
def create_batch(body: BatchCreate, session: DbSession, _admin: AdminUser) -> BatchOut:
    project = get_project(session, body.project_id)
    members = [get_user(session, name) for name in dict.fromkeys(body.members)]
    batch = service.create_batch(
        session,
        project,
        body.name,
        overlap=body.overlap,
        lease_seconds=body.lease_seconds,
        item_ids=body.item_ids,
        prompt_source=body.prompt_source,
        sample_size=body.sample_size,
        sample_seed=body.sample_seed,
        is_open=body.is_open,
        options=body.queue_options(),
    )
    for user in members:
        service.add_member(session, batch, user)
    return _summary(session, batch)


@router.get("", response_model=list[BatchOut])
@allow("authenticated")
def list_batches(
    session: DbSession,
    user: CurrentUser,
    project_id: Annotated[int | None, Query()] = None,
    open_only: Annotated[bool, Query()] = False,
    include_archived: Annotated[
        bool, Query(description="admins: also archived batches and those of archived projects")
    ] = False,
) -> list[BatchOut]:
    """Admins: every batch; annotators: the batches they are members of (never archived)."""
    found = service.list_batches(
        session, user, project_id=project_id, open_only=open_only, include_archived=include_archived
    )
    ids = [s.batch.id for s in found] if user.is_admin else []
    entries = crowd.entries_of(session, ids)
    return [batch_out(s, entries.get(s.batch.id)) for s in found]


@router.get("/{batch_id}", response_model=BatchOut)
@allow("member")
def get_batch(batch_id: int, session: DbSession, user: CurrentUser) -> BatchOut:
    batch = service.visible_batch(session, batch_id, user)
    return _summary(session, batch, for_admin=user.is_admin)


@router.patch("/{batch_id}", response_model=BatchOut)
@allow("admin")
def update_batch(
    batch_id: int, body: BatchUpdate, session: DbSession, _admin: AdminUser
) -> BatchOut:
    batch = service.get_batch(session, batch_id)
    overlap_before = batch.overlap
    service.update_batch(
        session,
        batch,
        name=body.name,
        overlap=body.overlap,
        lease_seconds=body.lease_seconds,
        review_rate=body.review_rate,
        min_seconds=body.min_seconds if "min_seconds" in body.model_fields_set else service.UNSET,
    )
    retarget = service.set_queue_options(batch, **body.queue_options())
    if retarget or batch.overlap != overlap_before:
        front.refresh_targets(session, batch.id)
    if "entry" in body.model_fields_set:
        given = body.entry
        crowd.set_entry(
            session,
            batch,
            None if given is None else crowd.EntrySettings(**given.model_dump()),
        )
    floor_fields = {"gold_floor", "gold_floor_min_answers", "gold_floor_excludes"}
    if floor_fields & body.model_fields_set:
        set_gold_floor(
            session,
            batch,
            floor=body.gold_floor if "gold_floor" in body.model_fields_set else batch.gold_floor,
            min_answers=body.gold_floor_min_answers,
            excludes=body.gold_floor_excludes,
        )
    if "suggestion_threshold" in body.model_fields_set:
        service.set_suggestion_threshold(session, batch, body.suggestion_threshold)
    return _summary(session, batch)


@router.post("/{batch_id}/open", response_model=BatchOut)
@allow("admin")
def open_batch(batch_id: int, session: DbSession, _admin: AdminUser) -> BatchOut:
    batch = service.set_open(session, service.get_batch(session, batch_id), True)
    return _summary(session, batch)


@router.post("/{batch_id}/close", response_model=BatchOut)
@allow("admin")
def close_batch(batch_id: int, session: DbSession, _admin: AdminUser) -> BatchOut:
    batch = service.set_open(session, service.get_batch(session, batch_id), False)
    return _summary(session, batch)


def _member_out(row: service.MemberRow) -> MemberOut:
    return MemberOut(
        username=row.user.username,
        role=row.user.role,
        is_active=row.user.is_active,
        added_at=row.added_at,
        submitted=row.counts.submitted,
        skipped=row.counts.skipped,
        leased=row.counts.leased,
        excluded=row.excluded_at is not None,
        excluded_at=row.excluded_at,
        exclusion_reason=row.exclusion_reason,
    )


def _member_rows(session: DbSession, batch: Batch) -> list[MemberOut]:
    return [_member_out(row) for row in service.list_members(session, batch)]


@router.get("/{batch_id}/members", response_model=list[MemberOut])
@allow("admin")
def list_members(batch_id: int, session: DbSession, _admin: AdminUser) -> list[MemberOut]:
    return _member_rows(session, service.get_batch(session, batch_id))


@router.post("/{batch_id}/members", response_model=list[MemberOut])
@allow("admin")
def add_member(
    batch_id: int, body: MemberIn, session: DbSession, _admin: AdminUser
) -> list[MemberOut]:
    """Adds a member (adding one twice changes nothing); returns the member list."""
    batch = service.get_batch(session, batch_id)
    service.add_member(session, batch, get_user(session, body.username))
    return _member_rows(session, batch)


def _remove(session: DbSession, batch_id: int, username: str) -> Response:
    batch = service.get_batch(session, batch_id)
    user = get_user(session, username)
    if not service.is_member(session, batch.id, user.id):
        raise NotFound(f"{username!r} is not a member of batch {batch_id}")
    front.remove_member(session, batch, user)
    return Response(status_code=204)


@router.delete("/{batch_id}/members", status_code=204)
@allow("admin")
def remove_member(batch_id: int, body: MemberIn, session: DbSession, _admin: AdminUser) -> Response:
    """Removes a member; their live leases go back to the queue, their annotations stay."""
    return _remove(session, batch_id, body.username)


@router.delete("/{batch_id}/members/{username}", status_code=204)
@allow("admin")
def remove_member_by_name(
    batch_id: int, username: str, session: DbSession, _admin: AdminUser
) -> Response:
    """Same as DELETE /members with a body, for clients that send no body with DELETE."""
    return _remove(session, batch_id, username)


def _member(session: DbSession, batch_id: int, username: str) -> tuple[Batch, User]:
    """The batch and the named user, who must be a member of it (404 naming which is not)."""
    batch = service.get_batch(session, batch_id)
    user = get_user(session, username)
    if not service.is_member(session, batch.id, user.id):
        raise NotFound(f"{username!r} is not a member of batch {batch_id}")
    return batch, user


def _member_after(session: DbSession, batch: Batch, user: User) -> MemberOut:
    rows = service.list_members(session, batch)
    return next(_member_out(row) for row in rows if row.user.id == user.id)


@router.post("/{batch_id}/members/{username}/exclude", response_model=MemberOut)
@allow("admin")
def exclude_member(
    batch_id: int,
    username: str,
    session: DbSession,
    _admin: AdminUser,
    body: ExcludeIn | None = None,
) -> MemberOut:
    """Excludes a member: never served again, their live leases back to the queue, their
    annotations in the batch kept but no longer counted (consensus, metrics, dashboard,
    exports); their items go to others until each holds k counted annotations."""
    batch, user = _member(session, batch_id, username)
    front.exclude_member(
        session, batch_id=batch.id, user_id=user.id, reason=body.reason if body else None
    )
    return _member_after(session, batch, user)


@router.post("/{batch_id}/members/{username}/include", response_model=MemberOut)
@allow("admin")
def include_member(
    batch_id: int, username: str, session: DbSession, _admin: AdminUser
) -> MemberOut:
    """Includes an excluded member again: served again, and the annotations their exclusion
    took out counted again (an item may then hold more than k). Including a member who is
    not excluded changes nothing."""
    batch, user = _member(session, batch_id, username)
    front.include_member(session, batch_id=batch.id, user_id=user.id)
    return _member_after(session, batch, user)


@router.get(
    "/{batch_id}/work-report",
    responses={200: {"content": {"text/csv": {}}, "description": "JSON rows, or CSV"}},
)
@allow("admin")
def get_work_report(
    batch_id: int,
    session: DbSession,
    _admin: AdminUser,
    format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
) -> Response:
    """Per annotator: items submitted and skipped, active time (the stored durations) and the
    median time per item in seconds, gold accuracy, exclusion. For payment."""
    batch = service.get_batch(session, batch_id)
    rows = work_report(session, batch)
    if format == "csv":
        return Response(
            to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="work-report-batch-{batch.id}.csv"'
            },
        )
    return Response(orjson.dumps(rows), media_type="application/json")


@router.post(
    "/{batch_id}/next",
    response_model=NextOut,
    responses={
        204: {"description": "nothing is left for the caller in this batch"},
        403: {"description": "the caller failed the batch's qualification"},
    },
)
@allow("member-only")
async def next_assignment(batch_id: int, request: Request) -> Response:
    """The caller's next assignment: their unexpired lease if they hold one, otherwise a new
    claim; 204 when nothing is left for them. 409 when the batch is closed."""
    lease = await flow.next_for_request(request, batch_id)
    if isinstance(lease, flow.Failed):
        return JSONResponse({"detail": lease.detail}, status_code=403)
    if lease is None:
        return Response(status_code=204)
    return Response(lease_out(lease).model_dump_json(), media_type="application/json")


def lease_out(lease: LeaseView) -> NextOut:
    return NextOut(
        assignment_id=lease.assignment_id,
        batch_id=lease.batch_id,
        leased_until=lease.leased_until,
        resumed=lease.resumed,
        item=assigned_item(
            lease.item_id,
            lease.prompt,
            lease.prompt_source,
            zip(lease.response_ids, lease.response_texts, lease.response_sources, strict=True),
            for_admin=lease.caller_is_admin,
        ),
    )


@router.get("/{batch_id}/progress", response_model=BatchProgressOut)
@allow("member")
def batch_progress(batch_id: int, session: DbSession, user: CurrentUser) -> BatchProgressOut:
    batch = service.visible_batch(session, batch_id, user)
    now = utcnow()
    p = service.batch_progress(session, batch, now)
    mine = service.annotator_counts(session, batch.id, now, user.id).get(user.id, service.Counts())
    return BatchProgressOut(
        batch_id=batch.id,
        is_open=batch.is_open,
        items=p.items,
        overlap=p.overlap,
        wanted=p.wanted,
        wanted_at_least=p.wanted,
        wanted_at_most=p.wanted_at_most,
        submitted=p.submitted,
        items_complete=p.items_complete,
        items_untouched=p.items_untouched,
        live_leases=p.live_leases,
        skipped=p.skipped,
        percent=p.percent,
        mine=MyProgressOut(submitted=mine.submitted, skipped=mine.skipped, leased=mine.leased),
    )
