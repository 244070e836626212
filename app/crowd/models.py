"""A batch's crowd entry link, and the participants who came in through one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class BatchEntry(Base):
    """The entry link of a batch (at most one): `/enter/{slug}?{param}=ID`."""

    __tablename__ = "batch_entries"

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    param: Mapped[str] = mapped_column(String(64))
    completion_code: Mapped[str] = mapped_column(String(100))
    redirect_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    consent: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Participant(Base):
    """A password-less annotator account bound to a crowd platform's participant id: the same
    id always comes back to the same account, whichever entry link it uses."""

    __tablename__ = "crowd_participants"
    __table_args__ = (Index("ix_crowd_participants_client_created_at", "client", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    # The address that created the account: creation is throttled per address.
    client: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchParticipant(Base):
    """A participant who entered a batch by its link; a batch member once consent is given."""

    __tablename__ = "batch_participants"

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    consented_at: Mapped[datetime | None] = mapped_column(default=None)
