"""Size limits of the product that imports and request bodies share, and the base class that
refuses an over-long list before validating its items.

Pydantic checks a list's `max_length` only after validating every item: a body holding a
million entries is validated whole (in the event loop, for the queue's async endpoints) before
it is refused. `BoundedModel` compares the raw list's length with the field's `max_length`
first, so such a body costs one `len()`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from annotated_types import MaxLen
from pydantic import BaseModel, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

# Responses of one item: imports refuse more, so no request needs to name more.
MAX_RESPONSES = 16
# Harm categories of a custom taxonomy.
MAX_CATEGORIES = 100


@cache
def _list_limits(model: type[BaseModel]) -> dict[str, int]:
    limits = {}
    for name, field in model.model_fields.items():
        for constraint in field.metadata:
            if isinstance(constraint, MaxLen):
                limits[name] = constraint.max_length
    return limits


class BoundedModel(BaseModel):
    """A request body whose list fields (with `Field(max_length=...)`) are refused on their
    length before their items are validated."""

    @field_validator("*", mode="before")
    @classmethod
    def _length_first(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, list) and info.field_name is not None:
            limit = _list_limits(cls).get(info.field_name)
            if limit is not None and len(value) > limit:
                raise PydanticCustomError(
                    "too_long",
                    "List should have at most {max_length} items, not {actual_length}",
                    {"field_type": "List", "max_length": limit, "actual_length": len(value)},
                )
        return value
