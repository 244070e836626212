"""Projects: guidelines, harm taxonomy and which questions are asked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
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
