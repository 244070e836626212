"""Items (a prompt with 2..K responses) and the labels imported with them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utcnow


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("project_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    prompt: Mapped[str] = mapped_column(Text)
    prompt_source: Mapped[str] = mapped_column(String(200), default="")
    meta: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # sha256 of the prompt and the sorted response texts: the de-duplication key.
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    responses: Mapped[list[Response]] = relationship(
        lazy="raise", order_by="Response.position", back_populates="item"
    )


class Response(Base):
    __tablename__ = "responses"
    __table_args__ = (
        UniqueConstraint("item_id", "position"),
        CheckConstraint("position >= 0", name="position_non_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column()
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200), default="")
    # sha256((prompt + text).encode()), as in the public dataset.
    sha256: Mapped[str] = mapped_column(String(64), index=True)

    item: Mapped[Item] = relationship(lazy="raise", back_populates="responses")


class ReferenceLabel(Base):
    """Labels that came with the data (e.g. the public dataset's own), never a human vote.

    `payload` uses response positions: {"responses": [{"position", "is_safe",
    "harm_categories", "severity"}], "helpfulness": [...], "harmlessness": [...], "single": [...]}
    with rankings as positions, best first; any part may be missing.
    """

    __tablename__ = "reference_labels"
    __table_args__ = (UniqueConstraint("item_id", "origin"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by suggestion uploads (app/suggestions/): how sure the origin is (0..1), and its
    # explanation as Markdown.
    confidence: Mapped[float | None] = mapped_column(default=None)
    analysis: Mapped[str | None] = mapped_column(Text, default=None)


class GoldLabel(Base):
    """The answer key of a gold item (same payload shape as ReferenceLabel)."""

    __tablename__ = "gold_labels"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column()
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
