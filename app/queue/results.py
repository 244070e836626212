"""What the queue hands back: ORM objects for pages and services, plain values for the API.

The API's `next` and submit answer from plain values (`LeaseView`, `Stored`) that both backends
produce, so the PostgreSQL hot path never builds an ORM object and the routers shape one
response whichever backend served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from app.annotations.models import Annotation
from app.batches.models import Assignment
from app.items.models import Item, Response

# "created" (first submit), "revised" (a new revision kept) or "unchanged" (the same payload
# again: idempotent, no new revision).
Outcome = Literal["created", "revised", "unchanged"]


@dataclass(frozen=True)
class Lease:
    """A lease with its item, responses in display order. `resumed` is True when the caller's
    own lease was handed back (and renewed)."""

    assignment: Assignment
    item: Item
    responses: list[Response]
    resumed: bool


@dataclass(frozen=True)
class LeaseView:
    """A lease as the API answers it (responses in display order, as three parallel lists)."""

    assignment_id: int
    batch_id: int
    resumed: bool
    leased_until: datetime
    item_id: int
    prompt: str
    prompt_source: str
    response_ids: Sequence[int]
    response_texts: Sequence[str]
    response_sources: Sequence[str]
    # Whether the caller is an admin: only admins see where the prompt and answers come from.
    caller_is_admin: bool


def lease_view(lease: Lease, *, caller_is_admin: bool) -> LeaseView:
    a, item = lease.assignment, lease.item
    return LeaseView(
        a.id,
        a.batch_id,
        lease.resumed,
        a.leased_until,
        item.id,
        item.prompt,
        item.prompt_source,
        [r.id for r in lease.responses],
        [r.text for r in lease.responses],
        [r.source for r in lease.responses],
        caller_is_admin,
    )


@dataclass(frozen=True)
class SubmitResult:
    assignment: Assignment
    annotation: Annotation
    outcome: Outcome
    # A gold answer in a batch whose gold floor excludes: check the annotator's accuracy.
    check_gold_floor: bool = False


@dataclass(frozen=True)
class Stored:
    """A submit as the API answers it."""

    outcome: Outcome
    assignment_id: int
    annotation_id: int
    revision: int
    batch_id: int
    item_id: int
    submitted_at: datetime
    updated_at: datetime
    duration_ms: int | None
    suggestion_viewed: bool
    payload: dict[str, Any]
    check_gold_floor: bool = False  # as in SubmitResult


def stored(result: SubmitResult) -> Stored:
    a, ann = result.assignment, result.annotation
    assert a.submitted_at is not None
    return Stored(
        result.outcome,
        a.id,
        ann.id,
        ann.revision,
        a.batch_id,
        a.item_id,
        a.submitted_at,
        ann.updated_at,
        ann.duration_ms,
        ann.suggestion_viewed,
        ann.payload,
        result.check_gold_floor,
    )


@dataclass(frozen=True)
class SkipResult:
    assignment: Assignment
    # False when the assignment was already skipped (a repeated skip changes nothing).
    changed: bool


def load_item(session: Session, item_id: int) -> Item:
    return (
        session.scalars(select(Item).where(Item.id == item_id).options(joinedload(Item.responses)))
        .unique()
        .one()
    )


def ordered_responses(item: Item, assignment: Assignment) -> list[Response]:
    """The item's responses in the assignment's display order."""
    by_id = {r.id: r for r in item.responses}
    shown = set(assignment.display_order)
    ordered = [by_id[i] for i in assignment.display_order if i in by_id]
    # Responses added after the assignment was made (not expected) go last, never dropped.
    return ordered + [r for r in item.responses if r.id not in shown]


def reload_lease(session: Session, assignment_id: int, *, resumed: bool) -> Lease:
    """The lease as stored now (after a SQL function changed it behind the session's back)."""
    assignment = session.scalars(
        select(Assignment)
        .where(Assignment.id == assignment_id)
        .execution_options(populate_existing=True)
    ).one()
    item = load_item(session, assignment.item_id)
    return Lease(assignment, item, ordered_responses(item, assignment), resumed=resumed)
