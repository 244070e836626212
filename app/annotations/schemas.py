"""API shapes for submitting, revising and skipping an assignment."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from app.batches.schemas import AssignedItemOut
from app.limits import MAX_CATEGORIES, MAX_RESPONSES, BoundedModel

Severity = Literal["minor", "moderate", "severe"]
MAX_RATIONALE = 20_000
# A day: anything longer is a tab left open, not time spent.
MAX_DURATION_MS = 24 * 3600 * 1000


class ResponseLabelIn(BoundedModel):
    model_config = ConfigDict(extra="forbid")

    response_id: StrictInt
    is_safe: StrictBool
    harm_categories: list[StrictStr] = Field(default_factory=list, max_length=MAX_CATEGORIES)
    severity: Severity | None = None


class AnnotationIn(BoundedModel):
    """The body of PUT /api/v1/assignments/{id}/annotation. Questions the project does not ask
    must be absent (or null); rankings list response ids, best first."""

    model_config = ConfigDict(extra="forbid")

    responses: list[ResponseLabelIn] | None = Field(default=None, max_length=MAX_RESPONSES)
    helpfulness: list[StrictInt] | None = Field(default=None, max_length=MAX_RESPONSES)
    harmlessness: list[StrictInt] | None = Field(default=None, max_length=MAX_RESPONSES)
    single: list[StrictInt] | None = Field(default=None, max_length=MAX_RESPONSES)
    rationale: StrictStr | None = Field(default=None, max_length=MAX_RATIONALE)
    duration_ms: StrictInt | None = Field(default=None, ge=0, le=MAX_DURATION_MS)
    # Whether the annotator opened the model suggestion before answering.
    suggestion_viewed: StrictBool = False


class SkipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: StrictStr | None = Field(default=None, max_length=2000)


class AnnotationOut(BaseModel):
    annotation_id: int
    assignment_id: int
    batch_id: int
    item_id: int
    revision: int
    # "created" (first submit), "revised" (a new revision was kept) or "unchanged" (the same
    # payload again: an idempotent repeat, no new revision).
    outcome: Literal["created", "revised", "unchanged"]
    submitted_at: datetime
    updated_at: datetime
    duration_ms: int | None
    suggestion_viewed: bool
    payload: dict[str, Any]


class SkipOut(BaseModel):
    assignment_id: int
    status: str
    skip_reason: str | None


class StoredAnnotationOut(BaseModel):
    annotation_id: int
    revision: int
    payload: dict[str, Any]
    duration_ms: int | None
    updated_at: datetime


class AssignmentOut(BaseModel):
    assignment_id: int
    batch_id: int
    status: Literal["leased", "submitted", "skipped", "expired"]
    leased_until: datetime
    submitted_at: datetime | None
    skip_reason: str | None
    item: AssignedItemOut
    annotation: StoredAnnotationOut | None
