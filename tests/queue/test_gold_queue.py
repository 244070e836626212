"""Gold items in the queue: mixed into each annotator's stream at the batch's gold rate, given
to every member whatever the overlap, and indistinguishable from other items."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.schemas import AnnotationIn
from app.auth.models import User
from app.batches.models import Assignment, Batch, BatchItem
from app.batches.service import add_member, batch_progress, create_batch, list_batches
from app.db import utcnow
from app.items.models import GoldLabel, ReferenceLabel
from app.queue import front, order
from tests.support.queue_factory import quick_users, response_ids, seed_project, valid_annotation

KEY = {"helpfulness": [0, 1], "harmlessness": [0, 1]}


def gold_batch(
    db: Session,
    n_items: int,
    n_gold: int,
    n_users: int,
    *,
    rate: float,
    overlap: int = 1,
    **kw: Any,
) -> tuple[Batch, list[User], list[int], set[int]]:
    project, ids = seed_project(db, n_items + n_gold, **kw)
    batch = create_batch(db, project, "gold", overlap=overlap)
    batch.gold_rate = rate
    gold = set(ids[:: max(1, (n_items + n_gold) // n_gold)][:n_gold])
    for item_id in gold:
        row = db.get(BatchItem, (batch.id, item_id))
        assert row is not None
        row.is_gold = True
        db.add(GoldLabel(item_id=item_id, payload=KEY))
    users = quick_users(db, n_users, prefix="gq")
    for user in users:
        add_member(db, batch, user)
    db.flush()
    return batch, users, ids, gold


def draw(db: Session, batch: Batch, user: User) -> tuple[int, bool] | None:
    """One item from the queue (then skipped, to move on): its id and the assignment's flag."""
    lease = front.next_assignment(db, batch, user)
    if lease is None:
        return None
    front.skip(db, lease.assignment.id, user)
    return lease.item.id, lease.assignment.is_gold


def test_gold_items_are_mixed_in_at_the_configured_rate(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(order, "gold_rng", random.Random(20251127))
    rate, per_user = 0.2, 200
    batch, users, _, gold = gold_batch(db, 220, 90, 2, rate=rate, overlap=2)
    drawn = []
    for user in users:
        for _ in range(per_user):
            found = draw(db, batch, user)
            assert found is not None
            drawn.append(found)
    n_gold = sum(1 for item_id, _ in drawn if item_id in gold)
    # Binomial(400, 0.2): mean 80, sd 8; 4 sd either side.
    assert 48 <= n_gold <= 112, n_gold
    assert all(flag == (item_id in gold) for item_id, flag in drawn)
    for user in users:  # never the same gold item twice to one person
        mine = [
            a.item_id
            for a in db.scalars(select(Assignment).where(Assignment.annotator_id == user.id))
        ]
        assert len(mine) == len(set(mine))


def test_a_gold_item_reaches_every_member_whatever_the_overlap(db: Session) -> None:
    batch, users, _, gold = gold_batch(db, 3, 1, 4, rate=1.0, overlap=1)
    (gold_id,) = gold
    for user in users:
        lease = front.next_assignment(db, batch, user)
        assert lease is not None and lease.item.id == gold_id and lease.assignment.is_gold
        body = AnnotationIn.model_validate(valid_annotation(response_ids(db, gold_id)))
        front.submit(db, lease.assignment.id, user, body)
    row = db.get(BatchItem, (batch.id, gold_id))
    assert row is not None and row.taken == 4 and row.submitted == 4  # overlap is 1
    # No gold left for them: ordinary items, still at most `overlap` (1) per item.
    leases = [front.next_assignment(db, batch, user) for user in users]
    ordinary = [lease.item.id for lease in leases if lease is not None]
    assert len(ordinary) == 3 and gold_id not in ordinary and len(set(ordinary)) == 3


def test_progress_counts_ordinary_items_only(db: Session) -> None:
    batch, users, _, gold = gold_batch(db, 3, 1, 4, rate=1.0, overlap=1)
    (gold_id,) = gold
    body = AnnotationIn.model_validate(valid_annotation(response_ids(db, gold_id)))
    for user in users:  # four gold answers on an overlap of 1
        lease = front.next_assignment(db, batch, user)
        assert lease is not None and lease.item.id == gold_id
        front.submit(db, lease.assignment.id, user, body)
    progress = batch_progress(db, batch)
    assert (progress.items, progress.wanted, progress.submitted) == (3, 3, 0)
    assert progress.items_untouched == 3
    (summary,) = [s for s in list_batches(db, users[0]) if s.batch.id == batch.id]
    assert (summary.items, summary.submitted, summary.wanted) == (3, 0, 3)


def test_without_a_gold_rate_gold_items_are_never_served(db: Session) -> None:
    batch, (user,), ids, gold = gold_batch(db, 4, 2, 1, rate=0.0)
    served = []
    while (found := draw(db, batch, user)) is not None:
        served.append(found[0])
    assert sorted(served) == sorted(set(ids) - gold)


def test_an_expired_gold_lease_can_still_be_submitted(db: Session) -> None:
    batch, users, _, gold = gold_batch(db, 2, 1, 3, rate=1.0, overlap=1)
    (gold_id,) = gold
    t0 = utcnow()
    late = front.next_assignment(db, batch, users[0], t0)
    assert late is not None and late.item.id == gold_id
    body = AnnotationIn.model_validate(valid_annotation(response_ids(db, gold_id)))
    for user in users[1:]:  # two others answer it: 2 taken, past the overlap of 1
        lease = front.next_assignment(db, batch, user, t0)
        assert lease is not None and lease.item.id == gold_id
        front.submit(db, lease.assignment.id, user, body, t0)
    assert front.sweep_expired(db, batch.id, t0 + timedelta(seconds=batch.lease_seconds + 1)) == 1
    result = front.submit(db, late.assignment.id, users[0], body)
    assert result.outcome == "created"


def test_gold_assignments_look_like_any_other(
    client: TestClient, db: Session, make_user: Any
) -> None:
    project_kw = {"show_suggestions": True}
    batch, _, ids, gold = gold_batch(db, 1, 1, 0, rate=1.0, overlap=1, **project_kw)
    (gold_id,) = gold
    (ordinary_id,) = set(ids) - gold
    reference = {**KEY, "responses": []}
    for item_id in ids:
        db.add(ReferenceLabel(item_id=item_id, origin="ref", payload=reference))
    person, token = make_user()
    add_member(db, batch, person)  # type: ignore[arg-type]
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}
    shapes, pages = [], {}
    for _ in range(2):
        r = client.post(f"/api/v1/batches/{batch.id}/next", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        shapes.append((sorted(body), sorted(body["item"])))
        assert "gold" not in r.text.lower()
        item_id = body["item"]["id"]
        pages[item_id] = client.get(f"/assignments/{body['assignment_id']}", headers=headers).text
        r = client.post(
            f"/api/v1/assignments/{body['assignment_id']}/skip", headers=headers, json={}
        )
        assert r.status_code == 200, r.text
    assert set(pages) == {gold_id, ordinary_id}
    assert shapes[0] == shapes[1]
    # A batch with an answer key shows no suggestion on any item (the key may be the
    # reference label the suggestion would show): gold and ordinary pages look alike.
    assert 'class="suggestion"' not in pages[ordinary_id]
    assert 'class="suggestion"' not in pages[gold_id]


@pytest.mark.parametrize("excludes", [True, False])
def test_a_gold_answer_asks_for_the_floor_check_when_the_floor_excludes(
    db: Session, excludes: bool
) -> None:
    batch, (user,), ids, gold = gold_batch(db, 1, 1, 1, rate=1.0, overlap=1)
    batch.gold_floor, batch.gold_floor_excludes = 0.5, excludes
    (gold_id,) = gold
    (ordinary_id,) = set(ids) - gold
    lease = front.next_assignment(db, batch, user)
    assert lease is not None and lease.item.id == gold_id
    answer = AnnotationIn.model_validate(valid_annotation(response_ids(db, gold_id)))
    created = front.submit(db, lease.assignment.id, user, answer)
    assert created.outcome == "created" and created.check_gold_floor is excludes
    # A revision can bring the accuracy below the floor too; the same answer changes nothing.
    revised_answer = AnnotationIn.model_validate(
        valid_annotation(response_ids(db, gold_id), flip=True)
    )
    revised = front.submit(db, lease.assignment.id, user, revised_answer)
    assert revised.outcome == "revised" and revised.check_gold_floor is excludes
    unchanged = front.submit(db, lease.assignment.id, user, revised_answer)
    assert unchanged.outcome == "unchanged" and unchanged.check_gold_floor is False
    # An ordinary item never asks for it, neither created nor revised.
    lease = front.next_assignment(db, batch, user)
    assert lease is not None and lease.item.id == ordinary_id
    for flip in (False, True):
        body = AnnotationIn.model_validate(
            valid_annotation(response_ids(db, ordinary_id), flip=flip)
        )
        plain = front.submit(db, lease.assignment.id, user, body)
        assert plain.outcome == ("revised" if flip else "created")
        assert plain.check_gold_floor is False


def test_each_annotator_meets_the_gold_items_from_their_own_point_of_the_shuffle(
    db: Session,
) -> None:
    batch, users, _, gold = gold_batch(db, 6, 20, 5, rate=1.0, overlap=1)
    keys = dict(
        db.execute(
            select(BatchItem.item_id, BatchItem.shuffle_key).where(
                BatchItem.batch_id == batch.id, BatchItem.is_gold.is_(True)
            )
        ).all()
    )
    assert set(keys) == gold
    ring = sorted(keys, key=lambda i: keys[i])
    firsts = []
    for user in users:
        lease = front.next_assignment(db, batch, user)
        assert lease is not None and lease.assignment.is_gold
        # Gold items have no overlap limit: each person's ring holds all of them, from the
        # point of their own rotation for gold (level -1), wrapping round at the end.
        start = order.rotation_start(batch.id, user.id, -1)
        assert lease.item.id == next((i for i in ring if keys[i] >= start), ring[0])
        firsts.append(lease.item.id)
    assert len(set(firsts)) > 1  # not everyone starts on the same gold item
