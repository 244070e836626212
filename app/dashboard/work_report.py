"""The work report: per batch and annotator, what they did and for how long (for payment).

One row per person who is a member of the batch or holds an assignment in it (a member
removed after working still gets paid). Figures cover all their submitted work, excluded
annotations included (the `excluded_annotations` column says how many): the report is about
the work people did, not about which answers the dataset keeps.

- `active_seconds`: the sum of the stored durations (the annotation page counts only time
  the page was visible, and a revision adds its time to the same annotation);
- `median_seconds`: the median of those per-annotation durations (annotations without a
  stored duration, e.g. API submits that sent none, are left out of both);
- `gold_accuracy`: overall accuracy on gold answers, left out only those a reviewer excluded.

Rows are built column by column: each `Column` reads its values for every person at once.
Another figure (a qualification state, review outcomes) is one more entry in `COLUMNS`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotations.counted import own_work
from app.annotations.models import Annotation
from app.auth.models import User
from app.batches.models import Assignment, AssignmentStatus, Batch, BatchMember
from app.consensus.metrics import median
from app.dashboard.gold import gold_scores
from app.reviews.models import Review, ReviewStatus

Values = dict[int, Any]  # user id -> the column's value


@dataclass(frozen=True)
class Column:
    name: str
    values: Callable[[Session, Batch, Sequence[int]], Values]
    default: Any = None


def _status_counts(status: AssignmentStatus) -> Callable[[Session, Batch, Sequence[int]], Values]:
    def values(session: Session, batch: Batch, users: Sequence[int]) -> Values:
        rows = session.execute(
            select(Assignment.annotator_id, func.count())
            .where(
                Assignment.batch_id == batch.id,
                Assignment.status == status,
                Assignment.is_qualification.is_(False),  # the test, shown as its state
            )
            .group_by(Assignment.annotator_id)
        )
        return {user_id: int(n) for user_id, n in rows}

    return values


def _durations(session: Session, batch: Batch) -> dict[int, list[int]]:
    durations: dict[int, list[int]] = {}
    for user_id, ms in session.execute(
        select(Annotation.annotator_id, Annotation.duration_ms)
        .join(Assignment, Assignment.id == Annotation.assignment_id)
        .where(
            Annotation.batch_id == batch.id,
            Annotation.duration_ms.is_not(None),
            Assignment.is_qualification.is_(False),
        )
    ):
        if ms is not None:
            durations.setdefault(user_id, []).append(ms)
    return durations


def _active_seconds(session: Session, batch: Batch, users: Sequence[int]) -> Values:
    return {u: sum(ms) / 1000 for u, ms in _durations(session, batch).items()}


def _median_seconds(session: Session, batch: Batch, users: Sequence[int]) -> Values:
    out: Values = {}
    for user_id, ms in _durations(session, batch).items():
        middle = median(ms)
        out[user_id] = None if middle is None else middle / 1000
    return out


def _gold(session: Session, batch: Batch, users: Sequence[int]) -> dict[int, Any]:
    return gold_scores(session, batch.id, which=own_work())


def _gold_accuracy(session: Session, batch: Batch, users: Sequence[int]) -> Values:
    return {u: score.overall for u, score in _gold(session, batch, users).items()}


def _gold_answers(session: Session, batch: Batch, users: Sequence[int]) -> Values:
    return {u: score.items for u, score in _gold(session, batch, users).items()}


def _excluded(session: Session, batch: Batch, users: Sequence[int]) -> Values:
    rows = session.scalars(
        select(BatchMember.user_id).where(
            BatchMember.batch_id == batch.id, BatchMember.excluded_at.is_not(None)
        )
    )
    return dict.fromkeys(rows, True)


def _excluded_annotations(session: Session, batch: Batch, users: Sequence[int]) -> Values:
    rows = session.execute(
        select(Annotation.annotator_id, func.count())
        .where(Annotation.batch_id == batch.id, Annotation.excluded_at.is_not(None))
        .group_by(Annotation.annotator_id)
    )
    return {user_id: int(n) for user_id, n in rows}


def _qualification(session: Session, batch: Batch, users: Sequence[int]) -> Values:
    """pending, passed or failed (app/qualification/); absent when the member was not asked."""
    rows = session.execute(
        select(BatchMember.user_id, BatchMember.qualification).where(
            BatchMember.batch_id == batch.id, BatchMember.qualification.is_not(None)
        )
    )
    return {user_id: state for user_id, state in rows}


def _reviews(status: ReviewStatus) -> Callable[[Session, Batch, Sequence[int]], Values]:
    """How many of the person's annotations a reviewer decided this way (app/reviews/)."""

    def values(session: Session, batch: Batch, users: Sequence[int]) -> Values:
        rows = session.execute(
            select(Review.annotator_id, func.count())
            .where(Review.batch_id == batch.id, Review.status == status.value)
            .group_by(Review.annotator_id)
        )
        return {user_id: int(n) for user_id, n in rows}

    return values


COLUMNS: list[Column] = [
    Column("submitted", _status_counts(AssignmentStatus.SUBMITTED), 0),
    Column("skipped", _status_counts(AssignmentStatus.SKIPPED), 0),
    Column("active_seconds", _active_seconds, 0.0),
    Column("median_seconds", _median_seconds),
    Column("gold_accuracy", _gold_accuracy),
    Column("gold_answers", _gold_answers, 0),
    Column("excluded", _excluded, False),
    Column("excluded_annotations", _excluded_annotations, 0),
    Column("qualification", _qualification),
    Column("reviews_accepted", _reviews(ReviewStatus.ACCEPTED), 0),
    Column("reviews_returned", _reviews(ReviewStatus.REJECTED), 0),
    Column("reviews_excluded", _reviews(ReviewStatus.EXCLUDED), 0),
]
FIELDS = ("username", *(c.name for c in COLUMNS))


def work_report(session: Session, batch: Batch) -> list[dict[str, Any]]:
    """One row per person (username order): `FIELDS`, in that order."""
    people = (
        select(BatchMember.user_id)
        .where(BatchMember.batch_id == batch.id)
        .union(select(Assignment.annotator_id).where(Assignment.batch_id == batch.id))
    )
    names = dict(
        session.execute(
            select(User.id, User.username)
            .where(User.id.in_(people.scalar_subquery()))
            .order_by(User.username)
        ).all()
    )
    users = list(names)
    rows: dict[int, dict[str, Any]] = {u: {"username": names[u]} for u in users}
    for column in COLUMNS:
        values = column.values(session, batch, users)
        for user_id in users:
            rows[user_id][column.name] = values.get(user_id, column.default)
    return [rows[u] for u in users]


# Spreadsheets run a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return value


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """The report as CSV with a header row; text cells that a spreadsheet would read as a
    formula are quoted with a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow([_cell(row[name]) for name in FIELDS])
    return out.getvalue()
