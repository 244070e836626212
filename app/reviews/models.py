"""Reviews: one row per (annotation, revision) drawn for review, its lease and its decision."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class ReviewStatus(StrEnum):
    """`leased` while a reviewer holds it; `expired` when the lease ran out undecided (anyone
    but the annotator may take it again); otherwise the decision."""

    LEASED = "leased"
    EXPIRED = "expired"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXCLUDED = "excluded"


DECIDED = (ReviewStatus.ACCEPTED, ReviewStatus.REJECTED, ReviewStatus.EXCLUDED)


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (
        # The same revision of an annotation is never drawn twice: a second draw would be a
        # second insert, which this refuses whatever the timing.
        UniqueConstraint("annotation_id", "revision"),
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in ReviewStatus)),
            name="status_valid",
        ),
        # One live lease per reviewer, held by the database as well as by the draw's lock.
        Index(
            "ux_reviews_one_lease",
            "reviewer_id",
            unique=True,
            sqlite_where=text("status = 'leased'"),
            postgresql_where=text("status = 'leased'"),
        ),
        Index("ix_reviews_batch_status", "batch_id", "status"),
        Index("ix_reviews_annotator", "batch_id", "annotator_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"))
    # Copied from the annotation: outcomes per annotator need no join.
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column()
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Why it was drawn: a flag's name, `disagrees_with_consensus`, `spot_check` or `revised`.
    reason: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default=ReviewStatus.LEASED.value)
    leased_until: Mapped[datetime] = mapped_column()
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
