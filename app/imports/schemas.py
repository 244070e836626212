"""API shapes for imports."""

from __future__ import annotations

from pydantic import BaseModel


class ImportOut(BaseModel):
    format: str
    items_created: int
    items_duplicate: int
    item_ids: list[int]
    # One-answer-per-line formats: prompts with a single answer cannot form an item.
    prompts_with_one_answer: int
