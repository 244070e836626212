"""Annotations, their kept revisions, and admin adjudications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class Annotation(Base):
    """The current labels of one assignment. `payload` is the validated submit body."""

    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint("revision >= 1", name="revision_positive"),
        Index("ix_annotations_batch_item", "batch_id", "item_id"),
        Index("ix_annotations_annotator", "annotator_id", "batch_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), unique=True
    )
    # Copied from the assignment so that metrics and exports need no join to read them.
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(default=1)
    payload: Mapped[dict[str, Any]] = mapped_column()
    duration_ms: Mapped[int | None] = mapped_column(default=None)
    suggestion_viewed: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The project's guideline version (guideline_versions.id) when the annotation was made or
    # last revised; set by a trigger (migrations: admin console), so both queue paths record it
    # the same way. No foreign key: SQLite cannot add one to an existing table without
    # rebuilding it, and versions are only ever deleted with their project (and its batches).
    guideline_version_id: Mapped[int | None] = mapped_column(default=None)
    # Excluded annotations are kept but no longer counted (app/annotations/counted.py): their
    # slot went back to the queue. `exclusion_kind` says who excluded it ('member': the
    # annotator's exclusion from the batch, undone when they are included again; 'review': a
    # reviewer's decision on this one annotation), so including a member again restores only
    # what excluding them did.
    excluded_at: Mapped[datetime | None] = mapped_column(default=None)
    exclusion_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    exclusion_reason: Mapped[str | None] = mapped_column(Text, default=None)


class AnnotationRevision(Base):
    """Every submitted version, the current one included: nothing is overwritten untraced."""

    __tablename__ = "annotation_revisions"
    __table_args__ = (UniqueConstraint("annotation_id", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column()
    duration_ms: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Adjudication(Base):
    """An admin's final labels for an item in a batch; the newest one replaces the consensus."""

    __tablename__ = "adjudications"
    __table_args__ = (Index("ix_adjudications_batch_item", "batch_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column()
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Draft(Base):
    """Answers posted after the poster's session had ended, kept to refill the form after login.

    The request that brings them is unauthenticated, so a draft is bound twice: to a random
    token kept (hashed) here and in the browser's draft cookie, and to the assignment, whose
    owner alone sees it again after logging in. Short-lived: stale drafts are purged.
    """

    __tablename__ = "drafts"
    __table_args__ = (Index("ix_drafts_token_hash", "token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(Text)
    # The posted form as [name, value] pairs, the CSRF token left out.
    fields: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
