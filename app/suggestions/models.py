"""Which suggestion origins an annotator was sent, per assignment (and so per annotation).

The suggestions themselves are `reference_labels` rows (app/items/models.py), one per item and
origin; the labels imported with the data are the origin "import".
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class SuggestionView(Base):
    """Written by the server when it sends an origin's suggestion to the assignment's owner.

    Keyed by assignment: an annotation is one per assignment, and a suggestion is usually opened
    before the annotation exists.
    """

    __tablename__ = "suggestion_views"
    __table_args__ = (UniqueConstraint("assignment_id", "origin"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(64))
    viewed_at: Mapped[datetime] = mapped_column(default=utcnow)
