"""Projects: guidelines, harm taxonomy and which questions are asked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    guidelines: Mapped[str] = mapped_column(Text, default="")
    # "pku-saferlhf-19", "beavertails-14" or "custom"; the names themselves are in `taxonomy`.
    taxonomy_preset: Mapped[str] = mapped_column(String(32), default="pku-saferlhf-19")
    taxonomy: Mapped[list[Any]] = mapped_column()
    ask_safety: Mapped[bool] = mapped_column(default=True)
    ask_dual: Mapped[bool] = mapped_column(default=True)
    ask_single: Mapped[bool] = mapped_column(default=False)
    ask_rationale: Mapped[bool] = mapped_column(default=False)
    show_suggestions: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Archived: hidden from annotators and from default lists; nothing is deleted.
    archived_at: Mapped[datetime | None] = mapped_column(default=None)


# The project fields that make up a guideline version, besides the guidelines text.
QUESTION_FIELDS = ("ask_safety", "ask_dual", "ask_single", "ask_rationale", "show_suggestions")


class GuidelineVersion(Base):
    """One state of a project's guidelines and asked questions; each edit adds one.

    Annotations record the version they were made under (annotations.guideline_version_id,
    set by a database trigger on insert and on revision, whichever path wrote the row)."""

    __tablename__ = "guideline_versions"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    guidelines: Mapped[str] = mapped_column(Text, default="")
    questions: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
