"""API shapes for items."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from app.core.json_text import repaired


class ResponseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    position: int
    text: str
    source: str
    sha256: str


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    external_id: str | None
    prompt: str
    prompt_source: str
    meta: dict[str, Any] | None
    responses: list[ResponseOut]

    @field_validator("meta")
    @classmethod
    def _servable(cls, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        # Metadata imported before the input rules may hold what cannot be served as JSON.
        return repaired(meta) if meta is not None else None


class ItemPage(BaseModel):
    items: list[ItemOut]
    total: int
    # Pass as `after_id` to get the next page; null on the last page.
    next_after_id: int | None
