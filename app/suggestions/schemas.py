"""API shapes of suggestion uploads and of model pre-screening figures."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SuggestionsOut(BaseModel):
    suggestions_created: int
    suggestions_updated: int
    suggestions_removed: int = Field(
        description="the origin's suggestions for items this upload did not name (replaced)"
    )
