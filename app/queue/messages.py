"""The queue's refusals, each written once: a code and the error it becomes.

The PostgreSQL functions (app/queue/sql/) answer with a code in their `outcome` column and no
text; the ORM path (app/queue/orm.py) raises the same errors directly. Both go through the
functions below, so a refusal reads the same whichever backend served it.
"""

from __future__ import annotations

from enum import StrEnum

from app.errors import Conflict, DomainError, Forbidden, NotFound, Unauthorized


class Refusal(StrEnum):
    """Why a queue operation wrote nothing (the `outcome` codes of the SQL functions)."""

    UNAUTHENTICATED = "unauthenticated"
    NO_BATCH = "no_batch"
    NOT_MEMBER = "not_member"
    NOT_MEMBER_ADMIN = "not_member_admin"  # not a member, and an admin: told how to join
    CLOSED = "closed"
    NOT_FOUND = "not_found"  # no such assignment of the caller's (or they left the batch)
    SKIPPED = "skipped"
    GONE = "gone"  # the lease expired and the item has since gone to others
    EXCLUDED = "excluded"  # the caller is excluded from the batch (app/queue/exclusion.py)
    ANNOTATION_EXCLUDED = "annotation_excluded"  # no revising an excluded annotation


def unauthenticated() -> Unauthorized:
    return Unauthorized("not authenticated")


def no_batch(batch_id: int) -> NotFound:
    return NotFound(f"no batch {batch_id}")


def not_member_admin(batch_id: int) -> NotFound:
    return NotFound(f"batch {batch_id}: you are not a member of it; add yourself to annotate")


def closed(batch_id: int) -> Conflict:
    return Conflict(f"batch {batch_id} is closed")


def excluded(batch_id: int) -> Forbidden:
    return Forbidden(
        f"batch {batch_id}: an admin has excluded you from this batch, so it has no more "
        "work for you; ask the batch's admin if you think this is a mistake"
    )


def annotation_excluded(assignment_id: int) -> Conflict:
    return Conflict(
        f"assignment {assignment_id}: this annotation has been excluded from the batch's "
        "results and can no longer be revised"
    )


def not_skipped(assignment_id: int) -> Conflict:
    return Conflict(f"assignment {assignment_id} is not skipped")


def skip_slot_taken(assignment_id: int) -> Conflict:
    return Conflict(
        f"assignment {assignment_id}: the skipped item has gone to other annotators meanwhile, "
        "so the skip stays"
    )


def closed_for_submit(batch_id: int) -> Conflict:
    return Conflict(f"batch {batch_id} is closed: annotations can no longer be submitted")


def no_assignment(assignment_id: int) -> NotFound:
    return NotFound(f"no assignment {assignment_id}")


def skipped(assignment_id: int) -> Conflict:
    return Conflict(f"assignment {assignment_id} was skipped; the item went to other annotators")


def gone(assignment_id: int, overlap: int) -> Conflict:
    return Conflict(
        f"assignment {assignment_id}: your lease expired and the item has since gone to "
        f"other annotators ({overlap} of {overlap} slots taken); this answer was not saved"
    )


def already_submitted(assignment_id: int) -> Conflict:
    return Conflict(
        f"assignment {assignment_id} is already submitted; revise it instead of skipping"
    )


def next_refused(code: str, batch_id: int, *, admin_hint: bool) -> DomainError:
    """The error for a `next` that was refused with `code`. An admin who is not a member is
    told how to join only where the caller is known to be one (`admin_hint`)."""
    match Refusal(code):
        case Refusal.UNAUTHENTICATED:
            return unauthenticated()
        case Refusal.CLOSED:
            return closed(batch_id)
        case Refusal.EXCLUDED:
            return excluded(batch_id)
        case Refusal.NOT_MEMBER_ADMIN if admin_hint:
            return not_member_admin(batch_id)
        case _:
            return no_batch(batch_id)


def submit_refused(code: str, assignment_id: int, batch_id: int, overlap: int) -> DomainError:
    """The error for a submit (or its context) that was refused with `code`."""
    match Refusal(code):
        case Refusal.UNAUTHENTICATED:
            return unauthenticated()
        case Refusal.CLOSED:
            return closed_for_submit(batch_id)
        case Refusal.SKIPPED:
            return skipped(assignment_id)
        case Refusal.GONE:
            return gone(assignment_id, overlap)
        case Refusal.EXCLUDED:
            return excluded(batch_id)
        case Refusal.ANNOTATION_EXCLUDED:
            return annotation_excluded(assignment_id)
        case _:
            return no_assignment(assignment_id)
