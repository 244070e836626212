"""API shapes for projects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.limits import MAX_CATEGORIES, BoundedModel


class ProjectCreate(BoundedModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    # A preset name, or a list of category names for a custom taxonomy.
    taxonomy: str | Annotated[list[str], Field(max_length=MAX_CATEGORIES)] = "pku-saferlhf-19"
    guidelines: str = Field(default="", max_length=200_000)
    ask_safety: bool = True
    ask_dual: bool = True
    ask_single: bool = False
    ask_rationale: bool = False
    show_suggestions: bool = False


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    taxonomy_preset: str
    taxonomy: list[str]
    guidelines: str
    ask_safety: bool
    ask_dual: bool
    ask_single: bool
    ask_rationale: bool
    show_suggestions: bool
    created_at: datetime
