"""Skip, undo of a skip, leaving a batch and closed batches, through the queue's service
functions: the statuses, the slots counted in `taken`, and each refusal's message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.annotations.models import Annotation, AnnotationRevision
from app.annotations.schemas import AnnotationIn
from app.batches.models import Assignment, Batch, BatchItem, BatchMember, QualificationState
from app.batches.service import add_member, create_batch, set_open
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.items.models import Response
from app.queue import front
from app.queue.messages import QualificationRequired
from tests.queue.test_queue import body_for, make_batch, taken
from tests.support.queue_factory import quick_users, seed_project, valid_annotation


def counts(db: Session, batch: Batch, item_id: int) -> tuple[int, int]:
    row = db.execute(
        select(BatchItem.taken, BatchItem.submitted).where(
            BatchItem.batch_id == batch.id, BatchItem.item_id == item_id
        )
    ).one()
    return row[0], row[1]


def status(db: Session, assignment_id: int) -> str:
    value = db.scalar(
        select(Assignment.status)
        .where(Assignment.id == assignment_id)
        .execution_options(populate_existing=True)
    )
    return str(value)


def test_undoing_a_skip_leases_the_item_again_and_takes_its_slot_back(db: Session) -> None:
    batch, (alice,), (item,) = make_batch(db, 1, 1, overlap=1, lease_seconds=600)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    aid = lease.assignment.id
    assert front.skip(db, aid, alice, "   ").assignment.skip_reason is None
    assert front.skip(db, aid, alice, "later").changed is False
    db.execute(
        update(Assignment)
        .where(Assignment.id == aid)
        .values(skip_reason="later")
        .execution_options(synchronize_session=False)
    )
    assert counts(db, batch, item) == (0, 0)
    # Undone an hour later: a fresh lease from then, and the reason is gone.
    now = utcnow() + timedelta(hours=1)
    back = front.unskip(db, aid, alice, now)
    assert back.id == aid and status(db, aid) == "leased"
    stored = db.execute(
        select(Assignment.skip_reason, Assignment.leased_until).where(Assignment.id == aid)
    ).one()
    assert stored[0] is None and back.skip_reason is None
    assert stored[1] is not None
    assert abs((stored[1] - (now + timedelta(seconds=600))).total_seconds()) < 1
    assert counts(db, batch, item) == (1, 0)
    # Undoing again changes nothing: still one slot.
    assert front.unskip(db, aid, alice, now).id == aid
    assert counts(db, batch, item) == (1, 0)
    # And the lease can be submitted as any other.
    result = front.submit(db, aid, alice, body_for(db, item))
    assert result.outcome == "created" and counts(db, batch, item) == (1, 1)
    with pytest.raises(Conflict) as caught:
        front.unskip(db, aid, alice, now)
    assert caught.value.detail == f"assignment {aid} is not skipped"


def test_a_skip_cannot_be_undone_once_its_slot_went_to_someone_else(db: Session) -> None:
    batch, (alice, bob), (item,) = make_batch(db, 1, 2, overlap=1)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    front.skip(db, lease.assignment.id, alice)
    assert front.next_assignment(db, batch, bob) is not None
    with pytest.raises(Conflict) as caught:
        front.unskip(db, lease.assignment.id, alice)
    assert caught.value.detail == (
        f"assignment {lease.assignment.id}: the skipped item has gone to other annotators "
        "meanwhile, so the skip stays"
    )
    assert status(db, lease.assignment.id) == "skipped" and taken(db, batch, item) == 1


def test_with_overlap_two_a_skip_is_undone_while_one_slot_is_still_free(db: Session) -> None:
    batch, (alice, bob, carol), (item,) = make_batch(db, 1, 3, overlap=2)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    front.skip(db, lease.assignment.id, alice, "later")
    assert front.next_assignment(db, batch, bob) is not None
    assert taken(db, batch, item) == 1
    front.unskip(db, lease.assignment.id, alice)
    assert taken(db, batch, item) == 2
    assert front.next_assignment(db, batch, carol) is None


def test_skipping_an_expired_lease_does_not_give_its_slot_back_twice(db: Session) -> None:
    batch, (alice,), (item,) = make_batch(db, 1, 1, overlap=1, lease_seconds=10)
    past = utcnow() - timedelta(seconds=60)
    lease = front.next_assignment(db, batch, alice, past)
    assert lease is not None
    assert front.sweep_expired(db, batch.id, utcnow()) == 1
    assert taken(db, batch, item) == 0
    result = front.skip(db, lease.assignment.id, alice, " gone for lunch ")
    assert result.changed and result.assignment.skip_reason == "gone for lunch"
    assert status(db, lease.assignment.id) == "skipped" and taken(db, batch, item) == 0


def test_a_skip_reason_that_cannot_be_stored_is_refused(db: Session) -> None:
    batch, (alice,), _ = make_batch(db, 1, 1, overlap=1)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    with pytest.raises(Exception) as caught:
        front.skip(db, lease.assignment.id, alice, "a\x00b")
    assert getattr(caught.value, "detail", "").startswith("reason: ")
    assert status(db, lease.assignment.id) == "leased"


def test_a_closed_batch_refuses_skip_undo_and_submit_with_its_message(db: Session) -> None:
    batch, (alice,), _ = make_batch(db, 2, 1, overlap=1)
    first = front.next_assignment(db, batch, alice)
    assert first is not None
    front.skip(db, first.assignment.id, alice)
    second = front.next_assignment(db, batch, alice)
    assert second is not None
    set_open(db, batch, False)
    db.flush()
    for call in (
        lambda: front.skip(db, second.assignment.id, alice),
        lambda: front.unskip(db, first.assignment.id, alice),
        lambda: front.next_assignment(db, batch, alice),
    ):
        with pytest.raises(Conflict) as caught:
            call()
        assert caught.value.detail == f"batch {batch.id} is closed"
    with pytest.raises(Conflict) as caught:
        front.submit(db, second.assignment.id, alice, body_for(db, second.item.id))
    assert caught.value.detail == (
        f"batch {batch.id} is closed: annotations can no longer be submitted"
    )
    assert status(db, second.assignment.id) == "leased"


def test_only_the_owner_reaches_an_assignment(db: Session) -> None:
    batch, (alice, bob), _ = make_batch(db, 1, 2, overlap=2)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    aid = lease.assignment.id
    for wanted, call in (
        (aid, lambda: front.skip(db, aid, bob)),
        (aid, lambda: front.unskip(db, aid, bob)),
        (aid, lambda: front.submit(db, aid, bob, body_for(db, lease.item.id))),
        (987_654, lambda: front.skip(db, 987_654, alice)),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.detail == f"no assignment {wanted}"
    assert status(db, aid) == "leased"


def test_leaving_a_batch_gives_live_leases_back_and_keeps_submitted_work(db: Session) -> None:
    batch, (alice, bob), items = make_batch(db, 3, 2, overlap=1)
    done = front.next_assignment(db, batch, alice)
    assert done is not None
    front.submit(db, done.assignment.id, alice, body_for(db, done.item.id))
    live = front.next_assignment(db, batch, alice)
    assert live is not None
    assert taken(db, batch, live.item.id) == 1
    front.remove_member(db, batch, alice)
    assert status(db, live.assignment.id) == "expired"
    assert taken(db, batch, live.item.id) == 0
    assert status(db, done.assignment.id) == "submitted"
    assert counts(db, batch, done.item.id) == (1, 1)
    # The former member reaches neither the batch nor their assignments.
    with pytest.raises(NotFound) as caught:
        front.next_assignment(db, batch, alice)
    assert caught.value.detail == f"no batch {batch.id}"
    with pytest.raises(NotFound):
        front.submit(db, done.assignment.id, alice, body_for(db, done.item.id))
    # The given-back item is served to the remaining member.
    served = set()
    while (lease := front.next_assignment(db, batch, bob)) is not None:
        served.add(lease.item.id)
        front.submit(db, lease.assignment.id, bob, body_for(db, lease.item.id))
    assert served == set(items) - {done.item.id}
    # Removing someone who is not a member changes nothing.
    front.remove_member(db, batch, alice)


def test_an_admin_who_is_not_a_member_is_told_how_to_join(db: Session) -> None:
    batch, (alice,), _ = make_batch(db, 1, 1, overlap=1)
    alice.role = "admin"
    db.flush()
    front.remove_member(db, batch, alice)
    with pytest.raises(NotFound) as caught:
        front.next_assignment(db, batch, alice, admin_hint=True)
    assert caught.value.detail == (
        f"batch {batch.id}: you are not a member of it; add yourself to annotate"
    )
    with pytest.raises(NotFound) as caught:
        front.next_assignment(db, batch, alice)
    assert caught.value.detail == f"no batch {batch.id}"
    # The hint is for admins only: another non-member learns nothing about the batch.
    (stranger,) = quick_users(db, 1, prefix="qs")
    with pytest.raises(NotFound) as caught:
        front.next_assignment(db, batch, stranger, admin_hint=True)
    assert caught.value.detail == f"no batch {batch.id}"


def test_a_member_yet_to_qualify_is_sent_to_the_qualification(db: Session) -> None:
    batch, (alice,), _ = make_batch(db, 1, 1, overlap=1)
    db.execute(
        update(BatchMember)
        .where(BatchMember.batch_id == batch.id, BatchMember.user_id == alice.id)
        .values(qualification=QualificationState.PENDING)
        .execution_options(synchronize_session=False)
    )
    with pytest.raises(QualificationRequired) as caught:
        front.next_assignment(db, batch, alice)
    # The qualification flow serves the batch the refusal names.
    assert caught.value.batch_id == batch.id
    assert caught.value.detail == f"batch {batch.id}: complete its qualification before annotating"


def test_a_revision_adds_time_spent_and_keeps_the_suggestion_flag(db: Session) -> None:
    batch, (alice,), (item,) = make_batch(db, 1, 1, overlap=1)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    aid = lease.assignment.id
    first = body_for(db, item).model_copy(update={"duration_ms": None})
    created = front.submit(db, aid, alice, first)
    assert created.outcome == "created" and created.annotation.duration_ms is None
    assert created.annotation.suggestion_viewed is False
    # The same answer, now with the suggestion viewed: unchanged, but the flag sticks.
    seen = first.model_copy(update={"suggestion_viewed": True})
    again = front.submit(db, aid, alice, seen)
    assert again.outcome == "unchanged" and again.annotation.revision == 1
    assert again.annotation.suggestion_viewed is True
    changed = seen.model_copy(
        update={"helpfulness": list(reversed(seen.helpfulness or [])), "duration_ms": 700}
    )
    revised = front.submit(db, aid, alice, changed.model_copy(update={"suggestion_viewed": False}))
    assert revised.outcome == "revised" and revised.annotation.revision == 2
    assert revised.annotation.duration_ms == 700
    assert revised.annotation.suggestion_viewed is True
    assert counts(db, batch, item) == (1, 1)


def test_a_first_answer_given_after_viewing_the_suggestion_says_so(db: Session) -> None:
    batch, (alice,), (item,) = make_batch(db, 1, 1, overlap=1)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    viewed = body_for(db, item).model_copy(update={"suggestion_viewed": True})
    created = front.submit(db, lease.assignment.id, alice, viewed)
    assert created.outcome == "created" and created.annotation.suggestion_viewed is True
    stored = db.scalar(
        select(Annotation.suggestion_viewed).where(Annotation.id == created.annotation.id)
    )
    assert stored is True


def test_each_revision_is_kept_whole_and_numbered_from_the_stored_row(db: Session) -> None:
    batch, (alice,), (item,) = make_batch(db, 1, 1, overlap=1)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    aid = lease.assignment.id
    t1 = utcnow() - timedelta(minutes=5)
    first = body_for(db, item).model_copy(update={"duration_ms": 100})
    created = front.submit(db, aid, alice, first, t1)
    original = dict(created.annotation.payload)
    assert created.annotation.created_at == t1 and created.annotation.revision == 1
    t2 = t1 + timedelta(minutes=1)
    same = front.submit(db, aid, alice, first, t2)
    assert same.outcome == "unchanged" and same.assignment.id == aid
    assert same.annotation.updated_at == t1
    # Another request moved the stored row on (the session's copy is now stale).
    db.execute(
        update(Annotation)
        .where(Annotation.id == created.annotation.id)
        .values(revision=4)
        .execution_options(synchronize_session=False)
    )
    changed = first.model_copy(
        update={"helpfulness": list(reversed(first.helpfulness or [])), "duration_ms": 50}
    )
    revised = front.submit(db, aid, alice, changed, t2)
    assert revised.outcome == "revised" and revised.assignment.id == aid
    assert revised.annotation.revision == 5
    assert revised.annotation.payload["helpfulness"] == changed.helpfulness
    assert revised.annotation.payload != original
    assert revised.annotation.updated_at == t2 and revised.annotation.duration_ms == 150
    # Not viewed before, not viewed now: the flag stays off.
    assert revised.annotation.suggestion_viewed is False
    rows = db.execute(
        select(
            AnnotationRevision.revision,
            AnnotationRevision.payload,
            AnnotationRevision.duration_ms,
            AnnotationRevision.created_at,
        )
        .where(AnnotationRevision.annotation_id == created.annotation.id)
        .order_by(AnnotationRevision.revision)
    ).all()
    assert [tuple(r) for r in rows] == [
        (1, original, 100, t1),
        (5, revised.annotation.payload, 50, t2),
    ]


def test_leaving_one_batch_releases_only_that_members_leases_in_it(db: Session) -> None:
    batch, (alice, bob), _ = make_batch(db, 2, 2, overlap=1)
    other, (carol,), _ = make_batch(db, 1, 1, overlap=1)
    add_member(db, other, alice)
    mine = front.next_assignment(db, batch, alice)
    bobs = front.next_assignment(db, batch, bob)
    elsewhere = front.next_assignment(db, other, alice)
    assert mine is not None and bobs is not None and elsewhere is not None
    front.remove_member(db, batch, alice)
    assert status(db, mine.assignment.id) == "expired"
    assert status(db, bobs.assignment.id) == "leased"
    assert status(db, elsewhere.assignment.id) == "leased"
    assert taken(db, batch, bobs.item.id) == 1 and taken(db, other, elsewhere.item.id) == 1
    assert front.next_assignment(db, other, carol) is None


def two_batches_of_one_item(db: Session) -> tuple[Batch, Batch, int, list[Any]]:
    """The same item in two batches of one project (each with overlap 1), and two members of
    both; the first batch's row of the item comes first in the table."""
    project, (item,) = seed_project(db, 1)
    first = create_batch(db, project, "first", overlap=1, lease_seconds=10)
    second = create_batch(db, project, "second", overlap=1, lease_seconds=10)
    users = quick_users(db, 2)
    for batch in (first, second):
        for user in users:
            add_member(db, batch, user)
    return first, second, item, users


def test_a_slot_is_counted_in_its_own_batch_when_an_item_is_in_two(db: Session) -> None:
    first, second, item, (alice, bob) = two_batches_of_one_item(db)
    assert front.next_assignment(db, first, bob) is not None  # full in the first batch
    # Undoing a skip in the second batch looks at the second batch's slot only.
    lease = front.next_assignment(db, second, alice)
    assert lease is not None
    front.skip(db, lease.assignment.id, alice)
    assert front.unskip(db, lease.assignment.id, alice).status == "leased"
    assert taken(db, second, item) == 1 and taken(db, first, item) == 1
    # So does a late submit of an expired lease.
    front.skip(db, lease.assignment.id, alice)
    front.unskip(db, lease.assignment.id, alice, utcnow() - timedelta(seconds=60))
    assert front.sweep_expired(db, second.id, utcnow()) == 1
    late = utcnow()
    result = front.submit(db, lease.assignment.id, alice, body_for(db, item), late)
    assert result.outcome == "created"
    assert counts(db, second, item) == (1, 1) and counts(db, first, item) == (1, 0)
    submitted_at = db.scalar(
        select(Assignment.submitted_at)
        .where(Assignment.id == lease.assignment.id)
        .execution_options(populate_existing=True)
    )
    assert submitted_at == late


def test_the_slot_of_the_skipped_or_late_item_itself_decides(db: Session) -> None:
    batch, users, _ = make_batch(db, 4, 4, overlap=1, lease_seconds=10)
    past = utcnow() - timedelta(seconds=60)
    leases = [front.next_assignment(db, batch, user, past) for user in users]
    assert all(lease is not None for lease in leases)
    first_row = db.scalar(select(BatchItem.item_id).where(BatchItem.batch_id == batch.id))
    # Two members whose items are not the table's first row (whose slot stays taken).
    (user, lease), (late_user, late) = [
        (u, x) for u, x in zip(users, leases, strict=True) if x and x.item.id != first_row
    ][:2]
    assert lease is not None and late is not None
    front.skip(db, lease.assignment.id, user)
    assert front.unskip(db, lease.assignment.id, user).status == "leased"
    # An expired lease re-taken on submit counts as taken and submitted.
    db.execute(
        update(Assignment)
        .where(Assignment.id != late.assignment.id, Assignment.batch_id == batch.id)
        .values(leased_until=utcnow() + timedelta(hours=1))
        .execution_options(synchronize_session=False)
    )
    assert front.sweep_expired(db, batch.id, utcnow()) == 1
    assert counts(db, batch, late.item.id) == (0, 0)
    result = front.submit(db, late.assignment.id, late_user, body_for(db, late.item.id))
    assert result.outcome == "created" and counts(db, batch, late.item.id) == (1, 1)


def test_a_late_submit_whose_slot_is_gone_says_so(db: Session) -> None:
    batch, (alice, bob), (item,) = make_batch(db, 1, 2, overlap=1, lease_seconds=10)
    lease = front.next_assignment(db, batch, alice, utcnow() - timedelta(seconds=60))
    assert lease is not None
    assert front.next_assignment(db, batch, bob) is not None
    with pytest.raises(Conflict) as caught:
        front.submit(db, lease.assignment.id, alice, body_for(db, item))
    assert caught.value.detail == (
        f"assignment {lease.assignment.id}: your lease expired and the item has since gone to "
        "other annotators (1 of 1 slots taken); this answer was not saved"
    )


def test_labels_are_stored_in_position_order_whatever_the_row_order(db: Session) -> None:
    batch, (alice,), (item,) = make_batch(db, 1, 1, overlap=1)
    first, second = db.scalars(
        select(Response).where(Response.item_id == item).order_by(Response.id)
    ).all()
    # The response inserted first is shown second.
    first.position, second.position = 99, 0
    db.flush()
    first.position = 1
    db.flush()
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    body = AnnotationIn.model_validate(valid_annotation([second.id, first.id], unsafe=[first.id]))
    result = front.submit(db, lease.assignment.id, alice, body)
    assert [x["response_id"] for x in result.annotation.payload["responses"]] == [
        second.id,
        first.id,
    ]


def test_submitting_a_skipped_assignment_says_it_was_skipped(db: Session) -> None:
    batch, (alice,), (item,) = make_batch(db, 1, 1, overlap=1)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    first = front.skip(db, lease.assignment.id, alice)
    assert first.changed is True and first.assignment.skip_reason is None
    again = front.skip(db, lease.assignment.id, alice)
    assert again.changed is False and again.assignment.id == lease.assignment.id
    with pytest.raises(Conflict) as caught:
        front.submit(db, lease.assignment.id, alice, body_for(db, item))
    assert caught.value.detail == (
        f"assignment {lease.assignment.id} was skipped; the item went to other annotators"
    )


def test_skipping_a_submitted_assignment_says_to_revise_instead(db: Session) -> None:
    batch, (alice,), (item,) = make_batch(db, 1, 1, overlap=1)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    front.submit(db, lease.assignment.id, alice, body_for(db, item))
    with pytest.raises(Conflict) as caught:
        front.skip(db, lease.assignment.id, alice)
    assert caught.value.detail == (
        f"assignment {lease.assignment.id} is already submitted; revise it instead of skipping"
    )


def test_a_qualification_item_cannot_be_skipped_and_the_refusal_names_it(db: Session) -> None:
    batch, (alice,), _ = make_batch(db, 1, 1, overlap=1)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    aid = lease.assignment.id
    # The qualification flow hands out such assignments; the queue's skip refuses them.
    db.execute(
        update(Assignment)
        .where(Assignment.id == aid)
        .values(is_qualification=True)
        .execution_options(synchronize_session=False)
    )
    with pytest.raises(Conflict) as caught:
        front.skip(db, aid, alice)
    assert caught.value.detail == (
        f"assignment {aid} is a qualification item: answer it (it cannot be skipped)"
    )
    assert status(db, aid) == "leased"
