"""Excluding annotations and members (app/queue/exclusion.py), through the real queue.

An excluded annotation gives its slot back: the batch still completes with exactly k counted
annotations per item, the excluded annotator never gets the item again, and the excluded
annotations are absent from consensus, metrics and every export format. Including them again
counts them again, even above k.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.annotations.counted import counted
from app.annotations.models import Annotation
from app.annotations.schemas import AnnotationIn
from app.auth.models import User
from app.batches.models import Assignment, AssignmentStatus, Batch, BatchItem, BatchMember
from app.batches.service import add_member, create_batch
from app.consensus.batch_metrics import batch_metrics
from app.consensus.service import item_consensus_view
from app.dashboard.disagreements import compute_disagreements
from app.dashboard.gold import gold_scores, mark_gold
from app.dashboard.service import fingerprint, hourly_completions, label_distributions
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.exports.filters import ExportFilters
from app.exports.formats import FORMATS
from app.exports.service import export_lines, resolve_scope
from app.items.models import Item
from app.queue import front
from tests.support.dashboard_factory import GOLD_KEY
from tests.support.queue_factory import quick_users, response_ids, seed_project, valid_annotation


def make_batch(db: Session, n_items: int, n_users: int, overlap: int) -> tuple[Batch, list[User]]:
    # Every question asked, so that every export format has something to write.
    project, _ = seed_project(db, n_items, ask_single=True)
    batch = create_batch(db, project, "x", overlap=overlap)
    users = quick_users(db, n_users)
    for user in users:
        add_member(db, batch, user)
    return batch, users


def annotate_next(db: Session, batch: Batch, user: User) -> Annotation | None:
    """The user's next item, annotated; None when the queue has nothing for them."""
    lease = front.next_assignment(db, batch, user)
    if lease is None:
        return None
    ids = response_ids(db, lease.item.id)
    body = AnnotationIn.model_validate({**valid_annotation(ids), "single": ids})
    return front.submit(db, lease.assignment.id, user, body).annotation


def run_to_completion(db: Session, batch: Batch, users: list[User]) -> None:
    """Everyone annotates in turn until nobody gets anything."""
    while True:
        served = [annotate_next(db, batch, user) for user in users]
        if not any(served):
            return


def counted_per_item(db: Session, batch: Batch) -> Counter[int]:
    rows = db.scalars(select(Annotation.item_id).where(Annotation.batch_id == batch.id, counted()))
    return Counter(rows)


def counters(db: Session, batch: Batch) -> dict[int, tuple[int, int]]:
    rows = db.execute(
        select(BatchItem.item_id, BatchItem.taken, BatchItem.submitted).where(
            BatchItem.batch_id == batch.id
        )
    )
    return {item_id: (taken, submitted) for item_id, taken, submitted in rows}


def annotation_ids(db: Session, batch: Batch, user: User) -> list[int]:
    return list(
        db.scalars(
            select(Annotation.id).where(
                Annotation.batch_id == batch.id, Annotation.annotator_id == user.id
            )
        )
    )


def test_excluded_slots_return_and_the_batch_completes_with_k_counted_per_item(
    db: Session,
) -> None:
    batch, users = make_batch(db, 6, 4, overlap=2)
    spammer, others = users[0], users[1:]
    # The spammer goes first and takes a slot on several items.
    for _ in range(4):
        assert annotate_next(db, batch, spammer) is not None
    front.next_assignment(db, batch, spammer)  # and holds one live lease
    mine = annotation_ids(db, batch, spammer)
    assert len(mine) == 4

    excluded = front.exclude_member(db, batch_id=batch.id, user_id=spammer.id, reason="spam")
    assert excluded == 4
    member = db.get_one(BatchMember, (batch.id, spammer.id))
    assert member.excluded_at is not None and member.exclusion_reason == "spam"
    assert (
        db.scalar(
            select(func.count()).where(
                Assignment.annotator_id == spammer.id, Assignment.status == AssignmentStatus.LEASED
            )
        )
        == 0
    )

    run_to_completion(db, batch, others)
    assert counted_per_item(db, batch) == dict.fromkeys(counters(db, batch), 2)
    assert all(c == (2, 2) for c in counters(db, batch).values())
    # The excluded annotations are kept, marked with their kind and reason.
    kept = db.scalars(select(Annotation).where(Annotation.id.in_(mine))).all()
    assert {(a.exclusion_kind, a.exclusion_reason) for a in kept} == {("member", "spam")}
    # Nobody got the same item twice (the unique assignment constraint holds) and the
    # spammer's items went to the others.
    pairs = db.execute(
        select(Assignment.item_id, Assignment.annotator_id).where(Assignment.batch_id == batch.id)
    ).all()
    assert len(pairs) == len(set(pairs))
    # Metrics count two annotations per item: the excluded ones are gone from them.
    metrics = batch_metrics(db, batch.id)
    assert metrics.progress.annotations == 12 and metrics.progress.items_complete == 6


def test_an_excluded_member_is_refused_next_and_submit(db: Session) -> None:
    batch, (alice, bob) = make_batch(db, 4, 2, overlap=2)
    assert annotate_next(db, batch, alice) is not None
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    front.exclude_member(db, batch_id=batch.id, user_id=alice.id, reason=None)
    ids = response_ids(db, lease.item.id)
    body = AnnotationIn.model_validate({**valid_annotation(ids), "single": ids})
    for call in (
        lambda: front.next_assignment(db, batch, alice),
        lambda: front.submit(db, lease.assignment.id, alice, body),
        lambda: front.skip(db, lease.assignment.id, alice),
    ):
        with pytest.raises(Forbidden) as caught:
            call()
        assert caught.value.detail == (
            f"batch {batch.id}: you are excluded from this batch, so it has no more work for "
            "you; ask the batch's admin if you think this is a mistake"
        )
    assert annotate_next(db, batch, bob) is not None  # others are served as before


def test_revising_an_excluded_annotation_is_a_conflict(db: Session) -> None:
    batch, (alice,) = make_batch(db, 2, 1, overlap=1)
    annotation = annotate_next(db, batch, alice)
    assert annotation is not None
    n = front.exclude_annotations(
        db, batch_id=batch.id, annotation_ids=[annotation.id], kind="review", reason="off topic"
    )
    assert n == 1
    ids = response_ids(db, annotation.item_id)
    body = AnnotationIn.model_validate({**valid_annotation(ids, flip=True), "single": ids})
    with pytest.raises(Conflict) as caught:
        front.submit(db, annotation.assignment_id, alice, body)
    assert caught.value.detail == (
        f"assignment {annotation.assignment_id}: this annotation has been excluded from the "
        "batch's results and can no longer be revised"
    )
    db.refresh(annotation)
    assert annotation.revision == 1


def test_only_members_can_be_excluded_or_included(db: Session) -> None:
    batch, (alice,) = make_batch(db, 1, 1, overlap=1)
    (stranger,) = quick_users(db, 1, prefix="qx")
    for call in (
        lambda: front.exclude_member(db, batch_id=batch.id, user_id=stranger.id, reason=None),
        lambda: front.include_member(db, batch_id=batch.id, user_id=stranger.id),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.detail == f"user {stranger.id} is not a member of batch {batch.id}"
    # A member with nothing done yet: excluded, then included, with no annotation to move.
    assert front.exclude_member(db, batch_id=batch.id, user_id=alice.id, reason=None) == 0
    assert db.get_one(BatchMember, (batch.id, alice.id)).excluded_at is not None
    assert front.include_member(db, batch_id=batch.id, user_id=alice.id) == 0
    assert db.get_one(BatchMember, (batch.id, alice.id)).excluded_at is None


def test_include_counts_them_again_even_above_k_and_only_member_exclusions(
    db: Session,
) -> None:
    batch, (alice, bob, carol) = make_batch(db, 2, 3, overlap=2)
    first = [annotate_next(db, batch, alice) for _ in range(2)]
    assert all(first)
    reviewed = first[0]
    assert reviewed is not None
    front.exclude_annotations(
        db, batch_id=batch.id, annotation_ids=[reviewed.id], kind="review", reason=None
    )
    front.exclude_member(db, batch_id=batch.id, user_id=alice.id, reason="slow")
    run_to_completion(db, batch, [bob, carol])
    assert all(c == (2, 2) for c in counters(db, batch).values())

    back = front.include_member(db, batch_id=batch.id, user_id=alice.id)
    assert back == 1  # the reviewer's exclusion stays
    assert db.get_one(BatchMember, (batch.id, alice.id)).excluded_at is None
    per_item = counted_per_item(db, batch)
    assert sorted(per_item.values()) == [2, 3]
    assert sorted(counters(db, batch).values()) == [(2, 2), (3, 3)]
    # An item above k is never served; alice has done or been given both.
    assert front.next_assignment(db, batch, alice) is None
    # Including a counted annotation, or excluding an excluded one, changes nothing.
    assert front.include_annotations(db, batch_id=batch.id, annotation_ids=[first[1].id]) == 0
    again = front.exclude_annotations(
        db, batch_id=batch.id, annotation_ids=[reviewed.id], kind="review", reason=None
    )
    assert again == 0
    assert sorted(counters(db, batch).values()) == [(2, 2), (3, 3)]


def test_an_unknown_kind_is_refused_and_writes_nothing(db: Session) -> None:
    batch, (alice,) = make_batch(db, 1, 1, overlap=1)
    annotation = annotate_next(db, batch, alice)
    assert annotation is not None
    with pytest.raises(Invalid, match="kind: 'ban' is not one of member, review"):
        front.exclude_annotations(
            db, batch_id=batch.id, annotation_ids=[annotation.id], kind="ban", reason=None
        )
    db.refresh(annotation)
    assert annotation.excluded_at is None
    assert counters(db, batch)[annotation.item_id] == (1, 1)


def test_annotations_of_another_batch_are_left_alone(db: Session) -> None:
    batch, (alice,) = make_batch(db, 1, 1, overlap=1)
    other, _ = make_batch(db, 1, 0, overlap=1)
    annotation = annotate_next(db, batch, alice)
    assert annotation is not None
    n = front.exclude_annotations(
        db, batch_id=other.id, annotation_ids=[annotation.id], kind="review", reason=None
    )
    assert n == 0
    db.refresh(annotation)
    assert annotation.excluded_at is None


def exported_items(db: Session, batch: Batch, fmt: Any) -> set[int]:
    """The items the export's lines are about (by item id, or by prompt for the formats
    that carry no id)."""
    filters = ExportFilters(batch_id=batch.id, include_unresolved=True)
    text = b"".join(export_lines(db, fmt, filters, resolve_scope(db, filters))).decode()
    prompts = dict(
        db.execute(select(Item.prompt, Item.id).where(Item.project_id == batch.project_id)).all()
    )
    found = set()
    for line in text.splitlines():
        record = orjson.loads(line)
        found.add(record["item_id"] if "item_id" in record else prompts[record["prompt"]])
    return found


@pytest.mark.parametrize("fmt", FORMATS)
def test_excluded_annotations_are_absent_from_every_export_format(db: Session, fmt: Any) -> None:
    # One annotator per item (k = 1): an item's only vote is alice's or bob's, so a line
    # about alice's item exists exactly while her annotation counts.
    batch, (alice, bob) = make_batch(db, 2, 2, overlap=1)
    mine, theirs = annotate_next(db, batch, alice), annotate_next(db, batch, bob)
    assert mine is not None and theirs is not None
    assert exported_items(db, batch, fmt) == {mine.item_id, theirs.item_id}

    front.exclude_member(db, batch_id=batch.id, user_id=alice.id, reason=None)
    assert exported_items(db, batch, fmt) == {theirs.item_id}

    front.include_member(db, batch_id=batch.id, user_id=alice.id)
    assert exported_items(db, batch, fmt) == {mine.item_id, theirs.item_id}


def test_every_other_read_path_leaves_excluded_annotations_out(db: Session) -> None:
    """Consensus of an item, gold accuracy, the dashboard's label distributions and hourly
    figures, and the disagreement list: each sees alice's votes until she is excluded."""
    batch, (alice, bob) = make_batch(db, 2, 2, overlap=2)
    # alice flags the first response unsafe; bob calls everything safe: they disagree.
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None
    item_id = lease.item.id
    ids = response_ids(db, item_id)
    unsafe_body = {**valid_annotation(ids, unsafe=ids[:1]), "single": ids}
    front.submit(db, lease.assignment.id, alice, AnnotationIn.model_validate(unsafe_body))
    mine = front.next_assignment(db, batch, bob)
    assert mine is not None and mine.item.id == item_id  # breadth first: the same item
    body = {**valid_annotation(ids), "single": ids}
    front.submit(db, mine.assignment.id, bob, AnnotationIn.model_validate(body))
    mark_gold(db, batch, item_id, alice, GOLD_KEY)

    assert set(gold_scores(db, batch.id)) == {alice.id, bob.id}
    # Ordinary again: gold items are outside distributions and disagreements.
    db.execute(update(BatchItem).values(is_gold=False))

    def figures() -> tuple[Any, ...]:
        view = item_consensus_view(db, batch.id, item_id)
        severity, _ = label_distributions(db, batch.id)
        return (
            sorted(v.annotator for v in view.annotations),
            severity.get("moderate", 0),
            sum(n for _, n in hourly_completions(db, batch.id)),
            [d.n_votes for d in compute_disagreements(db, batch.id) if d.item_id == item_id],
        )

    before, print_before = figures(), fingerprint(db, batch.id)
    assert before == (sorted([alice.username, bob.username]), 1, 2, [2])
    front.exclude_member(db, batch_id=batch.id, user_id=alice.id, reason=None)
    assert figures() == ([bob.username], 0, 1, [])
    assert fingerprint(db, batch.id) != print_before  # the dashboard's cache sees it
    db.execute(update(BatchItem).values(is_gold=True))
    assert set(gold_scores(db, batch.id)) == {bob.id}
