"""API shapes of gold items (answer keys use response positions, as reference labels do)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from app.limits import MAX_CATEGORIES, MAX_RESPONSES, BoundedModel


class GoldResponseIn(BoundedModel):
    model_config = ConfigDict(extra="forbid")

    position: StrictInt = Field(ge=0, lt=MAX_RESPONSES)
    is_safe: StrictBool
    harm_categories: list[StrictStr] = Field(default_factory=list, max_length=MAX_CATEGORIES)
    severity: Literal["minor", "moderate", "severe"] | None = None


class GoldKeyIn(BoundedModel):
    """An answer key: per response position its safety labels, and rankings of positions,
    best first. Parts left out are not scored."""

    model_config = ConfigDict(extra="forbid")

    responses: list[GoldResponseIn] | None = Field(default=None, max_length=MAX_RESPONSES)
    helpfulness: list[StrictInt] | None = Field(default=None, max_length=MAX_RESPONSES)
    harmlessness: list[StrictInt] | None = Field(default=None, max_length=MAX_RESPONSES)
    single: list[StrictInt] | None = Field(default=None, max_length=MAX_RESPONSES)


class GoldMarkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: GoldKeyIn | None = Field(
        default=None, description="the answer key; null: use the item's reference label"
    )


class GoldItemOut(BaseModel):
    item_id: int
    labels: dict[str, Any] | None
    answers: int = Field(description="submitted answers to this gold item in the batch")
    created_by: str | None


class GoldRateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gold_rate: float = Field(
        ge=0, le=1, description="share of each annotator's items that are gold"
    )


class GoldListOut(BaseModel):
    batch_id: int
    gold_rate: float
    items: list[GoldItemOut]
