"""API shapes for batches, members, progress and the assignments the queue hands out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from app.limits import BoundedModel

MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_OVERLAP = 100
# What an item's completion may wait on under adaptive overlap (app/queue/targets.py).
GatingDimension = Literal["helpfulness", "harmlessness", "single", "is_safe"]
GATING_DIMENSIONS: tuple[GatingDimension, ...] = get_args(GatingDimension)


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
    # Adaptive overlap and quota (docs/admins/batches.md): see BatchUpdate.
    overlap_min: int | None = Field(default=None, ge=1, le=MAX_OVERLAP)
    early_stop_agreement: float = Field(default=1.0, gt=0.5, le=1.0)
    gating: list[GatingDimension] | None = Field(default=None, min_length=1, max_length=4)
    max_items_per_annotator: int | None = Field(default=None, ge=1)

    def queue_options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in QUEUE_OPTIONS}


class EntryIn(BaseModel):
    """A crowd entry link's settings (app/crowd/service.py checks the values)."""

    model_config = ConfigDict(extra="forbid")

    param: str = Field(max_length=64, description="query parameter carrying the participant id")
    completion_code: str = Field(max_length=100)
    redirect_url: str | None = Field(default=None, max_length=2000)
    consent: str | None = Field(default=None, max_length=50_000, description="Markdown")


class EntryOut(BaseModel):
    param: str
    completion_code: str
    redirect_url: str | None
    consent: str | None


class BatchUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    # Raising the overlap is safe at any time; lowering it could leave items above k.
    overlap: int | None = Field(default=None, ge=1, le=MAX_OVERLAP)
    lease_seconds: int | None = Field(default=None, ge=1, le=MAX_LEASE_SECONDS)
    # Crowd entry: settings to enable or change it, null to turn it off (absent: unchanged).
    entry: EntryIn | None = None
    # The gold floor (app/dashboard/gold_floor.py); gold_floor null removes it.
    gold_floor: float | None = Field(default=None, ge=0, le=1)
    gold_floor_min_answers: int | None = Field(default=None, ge=1, le=10_000)
    gold_floor_excludes: bool | None = None
    # Each item gets at least `overlap_min` annotations and more, up to `overlap`, until its
    # gating dimensions agree (null: a fixed overlap).
    overlap_min: int | None = Field(default=None, ge=1, le=MAX_OVERLAP)
    early_stop_agreement: float | None = Field(default=None, gt=0.5, le=1.0)
    # null: every dimension the project asks.
    gating: list[GatingDimension] | None = Field(default=None, min_length=1, max_length=4)
    # The queue serves a member no more items of the batch than this (null: no limit).
    max_items_per_annotator: int | None = Field(default=None, ge=1)
    # Review (docs/admins/quality-control.md): spot-check share, and the time under which an
    # annotation is flagged as too fast (null turns that flag off).
    review_rate: float | None = Field(default=None, ge=0, le=1)
    min_seconds: float | None = Field(default=None, ge=0, le=MAX_LEASE_SECONDS)
    # Model pre-screening: null (sent explicitly) turns flagging off.
    suggestion_threshold: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)

    def queue_options(self) -> dict[str, Any]:
        """The queue options this body sets (an explicit null resets one to its default)."""
        return {
            name: getattr(self, name) for name in QUEUE_OPTIONS if name in self.model_fields_set
        }


QUEUE_OPTIONS = ("overlap_min", "early_stop_agreement", "gating", "max_items_per_annotator")


class ProgressOut(BaseModel):
    items: int
    overlap: int
    # The annotations the batch is after: items * overlap for a fixed overlap; with an
    # adaptive one, at least `wanted` (the submitted ones once every item is complete) and
    # at most `wanted_at_most`.
    wanted: int
    wanted_at_least: int
    wanted_at_most: int
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
    review_rate: float = 0.0
    min_seconds: float | None = None
    created_at: datetime
    overlap_min: int
    early_stop_agreement: float
    gating: list[str] | None
    max_items_per_annotator: int | None
    items: int
    submitted: int
    wanted: int
    percent: float
    # Crowd entry (null when off); participants visit `{entry_url}?{param}=ID`.
    entry: EntryOut | None = None
    entry_url: str | None = None
    gold_floor: float | None = None
    gold_floor_min_answers: int = 10
    gold_floor_excludes: bool = False
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
    excluded: bool = False
    excluded_at: datetime | None = None
    exclusion_reason: str | None = None


class ExcludeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


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
