"""Invitation links of a batch over the API (admins only)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.batches.service import get_batch
from app.core.json_body import JSONRulesRoute
from app.db import DbSession
from app.invites import service
from app.invites.models import Invite

router = APIRouter(prefix="/api/v1/batches", tags=["invites"], route_class=JSONRulesRoute)


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_uses: int = Field(default=1, ge=1, le=service.MAX_USES)
    expires_in_seconds: int | None = Field(default=None, ge=1, le=service.MAX_EXPIRY_SECONDS)


class InviteOut(BaseModel):
    id: int
    batch_id: int
    max_uses: int
    uses: int
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    # active, revoked, expired or used up
    state: str


class InviteCreated(InviteOut):
    # The sign-up page's path, with the token: shown this once, only its hash is kept.
    url: str


def invite_out(invite: Invite) -> InviteOut:
    return InviteOut(
        id=invite.id,
        batch_id=invite.batch_id,
        max_uses=invite.max_uses,
        uses=invite.uses,
        expires_at=invite.expires_at,
        revoked_at=invite.revoked_at,
        created_at=invite.created_at,
        state=service.state(invite),
    )


@router.post("/{batch_id}/invites", status_code=201, response_model=InviteCreated)
@allow("admin")
def create_invite(
    batch_id: int, body: InviteIn, session: DbSession, admin: AdminUser
) -> InviteCreated:
    """A link that signs up `max_uses` people (default 1) as annotators of the batch."""
    invite, plain = service.create_invite(
        session,
        get_batch(session, batch_id),
        max_uses=body.max_uses,
        expires_in_seconds=body.expires_in_seconds,
        by=admin,
    )
    return InviteCreated(**invite_out(invite).model_dump(), url=service.join_url(plain))


@router.get("/{batch_id}/invites", response_model=list[InviteOut])
@allow("admin")
def list_invites(batch_id: int, session: DbSession, _admin: AdminUser) -> list[InviteOut]:
    """Every invite of the batch, newest first, with its use count and state."""
    return [invite_out(i) for i in service.list_invites(session, get_batch(session, batch_id))]


@router.delete("/{batch_id}/invites/{invite_id}", status_code=204)
@allow("admin")
def revoke_invite(batch_id: int, invite_id: int, session: DbSession, _admin: AdminUser) -> Response:
    """Revokes the link at once; accounts made with it stay."""
    invite = service.get_invite(session, get_batch(session, batch_id), invite_id)
    service.revoke_invite(session, invite)
    return Response(status_code=204)
