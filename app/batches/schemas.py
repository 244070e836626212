"""API shapes for batches, members, progress and the assignments the queue hands out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.limits import BoundedModel

MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_OVERLAP = 100


class BatchCreate(BoundedModel):
    """Items: `item_ids` if given, else every item of the project; then narrowed by
    `prompt_source`, then a random sample of `sample_size` (reproducible with `sample_seed`)."""

    model_config = ConfigDict(extra="forbid")

    project_id: int
    name: str = Field(min_length=1, max_length=200)
    overlap: int = Field(default=3, ge=1, le=MAX_OVERLAP)
    lease_seconds: int = Field(default=30 * 60, ge=1, le=MAX_LEASE_SECONDS)
    item_ids: list[int] | None = Field(default=None, max_length=1_000_000)
    prompt_source: str | None = Field(default=None, max_length=200)
    sample_size: int | None = Field(default=None, ge=1)
    sample_seed: int | None = None
    is_open: bool = True
    members: list[str] = Field(default_factory=list, max_length=10_000)


class BatchUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    # Raising the overlap is safe at any time; lowering it could leave items above k.
    overlap: int | None = Field(default=None, ge=1, le=MAX_OVERLAP)
    lease_seconds: int | None = Field(default=None, ge=1, le=MAX_LEASE_SECONDS)
    # Model pre-screening: null (sent explicitly) turns flagging off.
    suggestion_threshold: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)


class ProgressOut(BaseModel):
    items: int
    overlap: int
    # items * overlap: the number of annotations the batch is after.
    wanted: int
    submitted: int
    items_complete: int
    items_untouched: int
    live_leases: int
    skipped: int
    percent: float


class MyProgressOut(BaseModel):
    submitted: int
    skipped: int
    leased: int


class BatchOut(BaseModel):
    id: int
    project_id: int
    name: str
    overlap: int
    lease_seconds: int
    is_open: bool
    created_at: datetime
    items: int
    submitted: int
    wanted: int
    percent: float
    suggestion_threshold: float | None = None


class BatchProgressOut(ProgressOut):
    batch_id: int
    is_open: bool
    # The caller's own counts (all zero for an admin who is not a member).
    mine: MyProgressOut


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)


class MemberOut(BaseModel):
    username: str
    role: str
    is_active: bool
    added_at: datetime
    submitted: int
    skipped: int
    leased: int


class AssignedResponseOut(BaseModel):
    id: int
    text: str
    # Which model wrote it: null for annotators, who judge answers without knowing (admins
    # see it).
    source: str | None


class AssignedItemOut(BaseModel):
    id: int
    prompt: str
    # Where the prompt comes from: null for annotators, as `source`.
    prompt_source: str | None
    # In this assignment's display order (shuffled per assignment against position bias).
    responses: list[AssignedResponseOut]


def assigned_item(
    item_id: int,
    prompt: str,
    prompt_source: str,
    responses: Iterable[tuple[int, str, str]],
    *,
    for_admin: bool,
) -> AssignedItemOut:
    """An item as a caller annotating it gets it: the sources only for admins."""
    return AssignedItemOut(
        id=item_id,
        prompt=prompt,
        prompt_source=prompt_source if for_admin else None,
        responses=[
            AssignedResponseOut(id=i, text=text, source=source if for_admin else None)
            for i, text, source in responses
        ],
    )


class NextOut(BaseModel):
    assignment_id: int
    batch_id: int
    leased_until: datetime
    # True when this is the caller's unexpired lease handed back, not a new claim.
    resumed: bool
    item: AssignedItemOut
