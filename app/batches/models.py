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
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from app.db import Base, utcnow

# A target no item reaches (the overlap bounds it): rows written without one.
NO_TARGET = 32767


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
        CheckConstraint("review_rate >= 0 AND review_rate <= 1", name="review_rate_share"),
        CheckConstraint("min_seconds IS NULL OR min_seconds >= 0", name="min_seconds_valid"),
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
    # Adaptive overlap (app/queue/targets.py): each item gets at least `overlap_min`
    # annotations (None: `overlap`, a fixed overlap) and more, up to `overlap`, while its
    # gating dimensions (None: every asked one) agree less than `early_stop_agreement`.
    overlap_min: Mapped[int | None] = mapped_column(default=None)
    early_stop_agreement: Mapped[float] = mapped_column(default=1.0, server_default="1.0")
    gating: Mapped[list[Any] | None] = mapped_column(default=None)
    # The queue serves a member no more live-or-submitted items than this (None: no limit).
    max_items_per_annotator: Mapped[int | None] = mapped_column(default=None)

    @property
    def min_overlap(self) -> int:
        """The annotations every item gets: `overlap` unless the overlap is adaptive."""
        return self.overlap if self.overlap_min is None else min(self.overlap_min, self.overlap)

    @property
    def is_adaptive(self) -> bool:
        return self.min_overlap < self.overlap

    # Review (app/reviews/): the share of each annotator's work spot-checked, and the time
    # under which a submitted annotation is flagged as too fast (None: no such flag).
    review_rate: Mapped[float] = mapped_column(default=0.0, server_default="0")
    min_seconds: Mapped[float | None] = mapped_column(default=None)
    # Gold floor (app/dashboard/gold_floor.py): a member whose gold accuracy is below
    # `gold_floor` after at least `gold_floor_min_answers` gold answers is flagged, or
    # excluded when `gold_floor_excludes` is set. No floor when null.
    gold_floor: Mapped[float | None] = mapped_column(default=None)
    gold_floor_min_answers: Mapped[int] = mapped_column(default=10, server_default="10")
    gold_floor_excludes: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Qualification (app/qualification/): the accuracy a new member must reach on every asked
    # dimension of the batch's qualification items; None when the batch asks for none.
    qualification_threshold: Mapped[float | None] = mapped_column(default=None)


class QualificationState(StrEnum):
    """A member's standing on the batch's qualification. The queue serves regular items only
    to members without one (the batch asked none when they joined) or who passed."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


class BatchMember(Base):
    __tablename__ = "batch_members"
    __table_args__ = (
        CheckConstraint(
            "qualification IN ({})".format(", ".join(f"'{s}'" for s in QualificationState)),
            name="qualification_valid",
        ),
    )

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Excluded by an admin (app/queue/exclusion.py): still a member, never served again, and
    # their annotations in the batch no longer counted until they are included again.
    excluded_at: Mapped[datetime | None] = mapped_column(default=None)
    exclusion_reason: Mapped[str | None] = mapped_column(Text, default=None)
    qualification: Mapped[str | None] = mapped_column(String(16), default=None)
    # Per dimension [matching answers, compared answers], set when the qualification is graded.
    qualification_scores: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class QualificationItem(Base):
    """A gold item of the batch that new members answer first, with feedback, to qualify."""

    __tablename__ = "qualification_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["batch_id", "item_id"],
            ["batch_items.batch_id", "batch_items.item_id"],
            ondelete="CASCADE",
        ),
    )

    batch_id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(primary_key=True)
    # The order members answer them in.
    position: Mapped[int] = mapped_column(default=0)


class BatchItem(Base):
    """An item in a batch, with the counters the queue keeps under a row lock."""

    __tablename__ = "batch_items"
    __table_args__ = (
        CheckConstraint("taken >= 0", name="taken_non_negative"),
        CheckConstraint("submitted >= 0 AND submitted <= taken", name="submitted_within_taken"),
        # Only items below their target are in the queue's order: complete ones drop out.
        Index(
            "ix_batch_items_queue",
            "batch_id",
            "taken",
            "shuffle_key",
            postgresql_where=text("taken < wanted"),
            sqlite_where=text("taken < wanted"),
        ),
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
    # How many live-or-submitted assignments the queue serves this item up to (app/queue/
    # targets.py); the batch's `overlap` bounds it in any case (NO_TARGET: that bound alone).
    wanted: Mapped[int] = mapped_column(default=NO_TARGET, server_default=str(NO_TARGET))


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
    # A qualification answer (app/qualification/): a gold item answered to qualify; it is
    # graded on its first revision and never counted anywhere else.
    is_qualification: Mapped[bool] = mapped_column(default=False, server_default=false())
    skip_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
