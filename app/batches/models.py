"""Batches, their members and items, and the assignments the queue hands out."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from app.db import Base, utcnow


class AssignmentStatus(StrEnum):
    """Where an assignment stands. A lease is live until it is submitted or skipped, or a
    sweep marks it expired (its slot back in the queue; its annotator may get it again)."""

    LEASED = "leased"
    SUBMITTED = "submitted"
    SKIPPED = "skipped"
    EXPIRED = "expired"


class _StatusColumn(TypeDecorator[AssignmentStatus]):
    """Stored as its word (a short string, as before); read back as an AssignmentStatus."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else AssignmentStatus(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> AssignmentStatus | None:
        return None if value is None else AssignmentStatus(value)


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint("overlap >= 1", name="overlap_positive"),
        CheckConstraint("lease_seconds >= 1", name="lease_positive"),
        CheckConstraint("gold_rate >= 0 AND gold_rate <= 1", name="gold_rate_share"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    overlap: Mapped[int] = mapped_column(default=3)
    lease_seconds: Mapped[int] = mapped_column(default=30 * 60)
    is_open: Mapped[bool] = mapped_column(default=True)
    gold_rate: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Archived (app/projects/archive.py): closed, hidden from annotators and default lists.
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    # Model pre-screening: an annotation contradicting a suggestion this confident (or more)
    # is flagged for review (app/suggestions/prescreen.py); null flags nothing.
    suggestion_threshold: Mapped[float | None] = mapped_column(default=None)


class BatchMember(Base):
    __tablename__ = "batch_members"

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchItem(Base):
    """An item in a batch, with the counters the queue keeps under a row lock."""

    __tablename__ = "batch_items"
    __table_args__ = (
        CheckConstraint("taken >= 0", name="taken_non_negative"),
        CheckConstraint("submitted >= 0 AND submitted <= taken", name="submitted_within_taken"),
        Index("ix_batch_items_queue", "batch_id", "taken", "shuffle_key"),
    )

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # Live leases plus submitted assignments: never above the batch overlap.
    taken: Mapped[int] = mapped_column(default=0)
    submitted: Mapped[int] = mapped_column(default=0)
    # Random per batch item; spreads annotators over equals without a per-request sort.
    shuffle_key: Mapped[int] = mapped_column(default=0)
    is_gold: Mapped[bool] = mapped_column(default=False)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("batch_id", "item_id", "annotator_id"),
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in AssignmentStatus)),
            name="status_valid",
        ),
        ForeignKeyConstraint(
            ["batch_id", "item_id"],
            ["batch_items.batch_id", "batch_items.item_id"],
            ondelete="CASCADE",
        ),
        Index("ix_assignments_annotator_status", "batch_id", "annotator_id", "status"),
        Index("ix_assignments_lease", "batch_id", "status", "leased_until"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[AssignmentStatus] = mapped_column(
        _StatusColumn(), default=AssignmentStatus.LEASED
    )
    leased_until: Mapped[datetime] = mapped_column()
    # Response ids in the order this annotator sees them (position-bias control).
    display_order: Mapped[list[Any]] = mapped_column()
    is_gold: Mapped[bool] = mapped_column(default=False)
    # Set by the server when it sends this annotator the item's model suggestion.
    suggestion_viewed: Mapped[bool] = mapped_column(default=False, server_default=false())
    skip_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
