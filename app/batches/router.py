"""Batch endpoints: create, list, open/close, members, progress, and the queue's `next`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.auth.access import allow
from app.auth.dependencies import AdminUser, CurrentUser
from app.auth.service import get_user
from app.batches import service
from app.batches.models import Batch
from app.batches.schemas import (
    BatchCreate,
    BatchOut,
    BatchProgressOut,
    BatchUpdate,
    MemberIn,
    MemberOut,
    MyProgressOut,
    NextOut,
    assigned_item,
)
from app.core.json_body import JSONRulesRoute
from app.db import DbSession, utcnow
from app.errors import NotFound
from app.projects.service import get_project
from app.queue import front
from app.queue.results import LeaseView

router = APIRouter(prefix="/api/v1/batches", tags=["batches"], route_class=JSONRulesRoute)


def batch_out(summary: service.BatchSummary) -> BatchOut:
    b = summary.batch
    return BatchOut(
        id=b.id,
        project_id=b.project_id,
        name=b.name,
        overlap=b.overlap,
        lease_seconds=b.lease_seconds,
        is_open=b.is_open,
        created_at=b.created_at,
        items=summary.items,
        submitted=summary.submitted,
        wanted=summary.wanted,
        percent=summary.percent,
        suggestion_threshold=b.suggestion_threshold,
    )


def _summary(session: DbSession, batch: Batch) -> BatchOut:
    progress = service.batch_progress(session, batch)
    return batch_out(service.BatchSummary(batch, progress.items, progress.submitted))


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
    return [batch_out(s) for s in found]


@router.get("/{batch_id}", response_model=BatchOut)
@allow("member")
def get_batch(batch_id: int, session: DbSession, user: CurrentUser) -> BatchOut:
    return _summary(session, service.visible_batch(session, batch_id, user))


@router.patch("/{batch_id}", response_model=BatchOut)
@allow("admin")
def update_batch(
    batch_id: int, body: BatchUpdate, session: DbSession, _admin: AdminUser
) -> BatchOut:
    batch = service.get_batch(session, batch_id)
    service.update_batch(
        session, batch, name=body.name, overlap=body.overlap, lease_seconds=body.lease_seconds
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


def _member_rows(session: DbSession, batch: Batch) -> list[MemberOut]:
    return [
        MemberOut(
            username=row.user.username,
            role=row.user.role,
            is_active=row.user.is_active,
            added_at=row.added_at,
            submitted=row.counts.submitted,
            skipped=row.counts.skipped,
            leased=row.counts.leased,
        )
        for row in service.list_members(session, batch)
    ]


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


@router.post(
    "/{batch_id}/next",
    response_model=NextOut,
    responses={204: {"description": "nothing is left for the caller in this batch"}},
)
@allow("member-only")
async def next_assignment(batch_id: int, request: Request) -> Response:
    """The caller's next assignment: their unexpired lease if they hold one, otherwise a new
    claim; 204 when nothing is left for them. 409 when the batch is closed."""
    lease = await front.next_for_request(request, batch_id)
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
        submitted=p.submitted,
        items_complete=p.items_complete,
        items_untouched=p.items_untouched,
        live_leases=p.live_leases,
        skipped=p.skipped,
        percent=p.percent,
        mine=MyProgressOut(submitted=mine.submitted, skipped=mine.skipped, leased=mine.leased),
    )
