"""Qualification endpoints: a batch's qualification settings and its members' standings."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.auth.service import get_user
from app.batches import service as batches
from app.core.json_body import JSONRulesRoute
from app.db import DbSession
from app.errors import NotFound
from app.qualification import service
from app.qualification.service import MAX_ITEMS, Standing

router = APIRouter(prefix="/api/v1/batches", tags=["qualification"], route_class=JSONRulesRoute)


class QualificationIn(BaseModel):
    """The batch's qualification: gold items of the batch with answer keys, in the order new
    members answer them, and the share of matching answers needed on every question. An
    empty `item_ids` turns the qualification off."""

    model_config = ConfigDict(extra="forbid")

    item_ids: list[int] = Field(max_length=MAX_ITEMS)
    threshold: float | None = Field(default=None, gt=0, le=1)


class ScoreOut(BaseModel):
    correct: int
    compared: int
    accuracy: float | None


class StandingOut(BaseModel):
    username: str
    # pending, passed, failed; null for a member who joined before the batch asked for one.
    state: str | None
    answered: int
    asked: int
    scores: dict[str, ScoreOut]


class QualificationOut(BaseModel):
    threshold: float | None
    item_ids: list[int]
    members: list[StandingOut]


def standing_out(standing: Standing) -> StandingOut:
    return StandingOut(
        username=standing.username,
        state=standing.state,
        answered=standing.answered,
        asked=standing.asked,
        scores={
            d: ScoreOut(correct=hits, compared=checks, accuracy=standing.accuracy(d))
            for d, (hits, checks) in standing.scores.items()
        },
    )


def _out(session: DbSession, batch_id: int) -> QualificationOut:
    batch = batches.get_batch(session, batch_id)
    return QualificationOut(
        threshold=batch.qualification_threshold,
        item_ids=service.item_ids(session, batch.id),
        members=[standing_out(s) for s in service.standings(session, batch)],
    )


@router.get("/{batch_id}/qualification", response_model=QualificationOut)
@allow("admin")
def get_qualification(batch_id: int, session: DbSession, _admin: AdminUser) -> QualificationOut:
    return _out(session, batch_id)


@router.put("/{batch_id}/qualification", response_model=QualificationOut)
@allow("admin")
def set_qualification(
    batch_id: int, body: QualificationIn, session: DbSession, _admin: AdminUser
) -> QualificationOut:
    batch = batches.get_batch(session, batch_id)
    service.configure(session, batch, body.item_ids, body.threshold)
    return _out(session, batch_id)


@router.post("/{batch_id}/members/{username}/qualification/reset", response_model=StandingOut)
@allow("admin")
def reset_qualification(
    batch_id: int, username: str, session: DbSession, _admin: AdminUser
) -> StandingOut:
    batch = batches.get_batch(session, batch_id)
    user = get_user(session, username)
    service.reset(session, batch, user)
    standing = service.standing_of(session, batch, user.id)
    if standing is None:  # pragma: no cover - reset raised NotFound for a non-member
        raise NotFound(f"{username!r} is not a member of batch {batch_id}")
    return standing_out(standing)
