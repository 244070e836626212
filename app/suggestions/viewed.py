"""Which suggestion origins the server has sent to an assignment's owner."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.suggestions.models import SuggestionView


def viewed_origins(session: Session, assignment_id: int) -> set[str]:
    query = select(SuggestionView.origin).where(SuggestionView.assignment_id == assignment_id)
    return set(session.scalars(query))


def record_view(session: Session, assignment_id: int, origin: str) -> None:
    """Records that `origin`'s suggestion was sent (once per assignment and origin)."""
    if origin not in viewed_origins(session, assignment_id):
        session.add(SuggestionView(assignment_id=assignment_id, origin=origin))
        session.flush()


def origins_viewed(session: Session, assignment_ids: Iterable[int]) -> dict[int, list[str]]:
    """Assignment id -> the origins viewed, sorted (assignments with none left out)."""
    ids = list(assignment_ids)
    found: dict[int, list[str]] = {}
    for start in range(0, len(ids), 1000):
        query = select(SuggestionView.assignment_id, SuggestionView.origin).where(
            SuggestionView.assignment_id.in_(ids[start : start + 1000])
        )
        for assignment_id, origin in session.execute(query):
            found.setdefault(assignment_id, []).append(origin)
    return {k: sorted(v) for k, v in found.items()}
