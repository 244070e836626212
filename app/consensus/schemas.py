"""Request and response bodies of the consensus, adjudication and metrics endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from app.annotations.schemas import ResponseLabelIn
from app.limits import MAX_RESPONSES, BoundedModel

Severity = Literal["minor", "moderate", "severe"]


class AdjudicationIn(BoundedModel):
    """The final labels of an item, in the annotation PUT body's shape (response ids, rankings
    best first; questions the project does not ask left out), replacing its consensus."""

    model_config = ConfigDict(extra="forbid")

    responses: list[ResponseLabelIn] | None = Field(default=None, max_length=MAX_RESPONSES)
    helpfulness: list[StrictInt] | None = Field(default=None, max_length=MAX_RESPONSES)
    harmlessness: list[StrictInt] | None = Field(default=None, max_length=MAX_RESPONSES)
    single: list[StrictInt] | None = Field(default=None, max_length=MAX_RESPONSES)
    note: str = Field(default="", max_length=10_000, description="why, for the record")


class AdjudicationOut(BaseModel):
    id: int
    batch_id: int
    item_id: int
    admin: str | None
    created_at: datetime
    note: str
    labels: dict[str, Any]


class PairOut(BaseModel):
    responses: list[int] = Field(description="two response ids, the smaller first")
    preferred: int | None = Field(description="the one a strict majority ranked higher")


class DimensionOut(BaseModel):
    value: list[int] | None = Field(description="the consensus ranking, response ids best first")
    agreement: float
    n_votes: int
    resolved: bool
    # Pair majorities (app/consensus/pairwise.py): what pair exports write.
    pairs: list[PairOut] = Field(default_factory=list)


class ResponseConsensusOut(BaseModel):
    response_id: int
    position: int
    is_safe: bool | None
    agreement: float
    severity: Severity | None
    harm_categories: list[str]
    resolved: bool
    n_votes: int


class ConsensusOut(BaseModel):
    helpfulness: DimensionOut
    harmlessness: DimensionOut
    single: DimensionOut | None
    responses: list[ResponseConsensusOut]
    unresolved: bool
    inconsistent: bool
    reasons: list[str]


class VoteOut(BaseModel):
    annotation_id: int
    assignment_id: int
    annotator: str
    revision: int
    updated_at: datetime
    labels: dict[str, Any]


class ItemConsensusOut(BaseModel):
    batch_id: int
    item_id: int
    overlap: int
    n_annotations: int
    consensus: ConsensusOut
    adjudication: AdjudicationOut | None
    final_source: Literal["adjudication", "consensus"] | None = Field(
        description="where the exported labels come from; null when the item cannot be "
        "exported yet (unresolved or inconsistent, not adjudicated)"
    )
    final: dict[str, Any] | None
    annotations: list[VoteOut]


class AgreementOut(BaseModel):
    """One dimension's agreement; a null metric has its reason under ``reasons``."""

    percent_agreement: float | None
    fleiss_kappa: float | None
    krippendorff_alpha: float | None
    n_items: int = Field(description="items (or responses) with at least two ratings")
    reasons: dict[str, str] = Field(default_factory=dict)


class ProgressOut(BaseModel):
    items: int
    gold_items: int
    items_with_annotations: int
    items_complete: int = Field(description="items with at least `overlap` annotations")
    annotations: int
    adjudicated_items: int
    assignments: dict[str, int] = Field(
        description="assignments by status: leased (live lease), expired, skipped, submitted"
    )


class AnnotatorOut(BaseModel):
    annotator_id: int
    username: str
    submitted: int
    skipped: int
    skip_rate: float | None
    median_duration_ms: float | None
    leave_one_out_agreement: float | None = Field(
        description="share of units where the annotator's label equals the strict majority of "
        "the other annotators (preferences and per-response safety pooled)"
    )
    agreement_by_dimension: dict[str, float | None]
    gold_accuracy: float | None
    gold_answered: int
    reasons: dict[str, str] = Field(default_factory=dict)


class PrescreenAgreementOut(BaseModel):
    """One dimension's agreement between an origin's suggestions and the human consensus."""

    n_units: int = Field(description="responses (is_safe, severity) or items (preferences)")
    percent_agreement: float | None
    cohen_kappa: float | None
    reason: str | None = Field(default=None, description="why cohen_kappa is null")


class PrescreenOut(BaseModel):
    origin: str
    items: int = Field(description="non-gold items of the batch with this origin's suggestion")
    flagged_annotations: int = Field(
        description="annotations contradicting this origin's suggestions at or above the "
        "batch's suggestion_threshold"
    )
    dimensions: dict[str, PrescreenAgreementOut]


class BatchMetricsOut(BaseModel):
    batch_id: int
    overlap: int
    progress: ProgressOut
    helpfulness: AgreementOut
    harmlessness: AgreementOut
    single: AgreementOut
    is_safe: AgreementOut
    severity: AgreementOut
    harm_categories: dict[str, AgreementOut]
    annotators: list[AnnotatorOut]
    # Model pre-screening, per suggestion origin (docs/admins/suggestions.md).
    prescreening: list[PrescreenOut] = Field(default_factory=list)
