"""The queue's rules, through its service functions (explicit clocks) and the API."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from app.annotations.schemas import AnnotationIn
from app.batches.models import Assignment, Batch, BatchItem
from app.batches.service import add_member, create_batch
from app.db import utcnow
from app.errors import Conflict
from app.queue import front, order
from tests.support.queue_factory import quick_users, response_ids, seed_project, valid_annotation

MakeUser = Callable[..., tuple[Any, str]]


def make_batch(
    db: Session, n_items: int, n_users: int, **kw: Any
) -> tuple[Batch, list[Any], list[int]]:
    project, ids = seed_project(db, n_items, responses=kw.pop("responses", 2))
    batch = create_batch(db, project, "q", **kw)
    users = quick_users(db, n_users)
    for user in users:
        add_member(db, batch, user)
    return batch, users, ids


def taken(db: Session, batch: Batch, item_id: int) -> int:
    value = db.scalar(
        select(BatchItem.taken).where(BatchItem.batch_id == batch.id, BatchItem.item_id == item_id)
    )
    assert value is not None
    return value


def body_for(db: Session, item_id: int) -> AnnotationIn:
    return AnnotationIn.model_validate(valid_annotation(response_ids(db, item_id)))


def test_unexpired_lease_is_handed_back_and_renewed(db: Session) -> None:
    batch, (alice,), _ = make_batch(db, 5, 1, lease_seconds=60)
    t0 = utcnow()
    first = front.next_assignment(db, batch, alice, t0)
    again = front.next_assignment(db, batch, alice, t0 + timedelta(seconds=30))
    assert first is not None and again is not None
    assert again.assignment.id == first.assignment.id and again.resumed and not first.resumed
    assert again.assignment.leased_until == t0 + timedelta(seconds=90)
    assert first.assignment.created_at == t0  # stamped with the request's clock
    assert taken(db, batch, first.item.id) == 1


def test_breadth_first_items_closest_to_k_go_first(db: Session) -> None:
    batch, users, _ = make_batch(db, 6, 4, overlap=3)
    leases = [front.next_assignment(db, batch, u) for u in users]
    assert all(lease is not None for lease in leases)
    items = [lease.item.id for lease in leases if lease is not None]
    # The first three people share one item until it has k = 3 holders; the fourth moves on.
    assert items[0] == items[1] == items[2] and items[3] != items[0]
    assert taken(db, batch, items[0]) == 3


def test_each_annotator_starts_at_their_own_point_of_the_shuffle(
    db: Session,
) -> None:
    batch, users, _ = make_batch(db, 40, 6, overlap=1)
    keys = dict(
        db.execute(
            select(BatchItem.item_id, BatchItem.shuffle_key).where(BatchItem.batch_id == batch.id)
        ).all()
    )
    ring = sorted(keys, key=lambda i: keys[i])
    firsts = []
    for user in users:
        lease = front.next_assignment(db, batch, user)
        assert lease is not None
        start = order.rotation_start(batch.id, user.id, 0)
        free = [i for i in ring if taken(db, batch, i) == 0 or i == lease.item.id]
        expected = next((i for i in free if keys[i] >= start), free[0])
        assert lease.item.id == expected
        firsts.append(lease.item.id)
    assert len(set(firsts)) == len(firsts)


def test_an_item_at_my_exact_starting_point_is_mine_first(db: Session) -> None:
    # The rotation's arc starts at the start itself: an item on it is neither skipped over
    # nor lost between the two arcs (then it would never be served to this person).
    batch, (alice,), ids = make_batch(db, 5, 1, overlap=1)
    start = order.rotation_start(batch.id, alice.id, 0)
    db.execute(
        update(BatchItem)
        .where(BatchItem.batch_id == batch.id, BatchItem.item_id == ids[2])
        .values(shuffle_key=start)
        .execution_options(synchronize_session=False)
    )
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None and lease.item.id == ids[2]


def test_display_order_is_a_shuffled_permutation_per_assignment(
    db: Session,
) -> None:
    batch, users, _ = make_batch(db, 1, 40, overlap=40, responses=4)
    orders = set()
    for user in users:
        lease = front.next_assignment(db, batch, user)
        assert lease is not None
        ids = response_ids(db, lease.item.id)
        assert sorted(lease.assignment.display_order) == sorted(ids)
        assert [r.id for r in lease.responses] == lease.assignment.display_order
        orders.add(tuple(lease.assignment.display_order))
    assert len(orders) > 5  # 24 possible orders; 40 draws giving <= 5 is vanishingly unlikely


def test_never_the_same_item_twice_never_above_k_then_none(
    db: Session,
) -> None:
    batch, users, _ = make_batch(db, 4, 3, overlap=2)
    done: dict[int, list[int]] = {u.id: [] for u in users}
    for _ in range(20):
        for user in users:
            lease = front.next_assignment(db, batch, user)
            if lease is not None:
                front.submit(db, lease.assignment.id, user, body_for(db, lease.item.id))
                done[user.id].append(lease.item.id)
    for items in done.values():
        assert len(items) == len(set(items))
    assert sum(len(v) for v in done.values()) == 4 * 2
    counts = db.execute(
        select(BatchItem.item_id, BatchItem.taken, BatchItem.submitted).where(
            BatchItem.batch_id == batch.id
        )
    ).all()
    assert {(t, s) for _, t, s in counts} == {(2, 2)}
    assert all(front.next_assignment(db, batch, u) is None for u in users)


def test_expired_lease_is_reclaimed_and_late_submit_is_refused_when_slot_gone(
    db: Session,
) -> None:
    batch, (alice, bob), (item,) = make_batch(db, 1, 2, overlap=1, lease_seconds=10)
    t0 = utcnow() - timedelta(seconds=60)
    lease_a = front.next_assignment(db, batch, alice, t0)
    assert lease_a is not None
    assert front.next_assignment(db, batch, bob, t0 + timedelta(seconds=5)) is None  # held
    lease_b = front.next_assignment(db, batch, bob, t0 + timedelta(seconds=11))
    assert lease_b is not None and lease_b.item.id == item
    assert db.get(Assignment, lease_a.assignment.id).status == "expired"  # type: ignore[union-attr]
    assert taken(db, batch, item) == 1
    with pytest.raises(Conflict, match="not saved"):
        front.submit(db, lease_a.assignment.id, alice, body_for(db, item))
    result = front.submit(db, lease_b.assignment.id, bob, body_for(db, item))
    assert result.outcome == "created"


def test_late_submit_succeeds_while_the_slot_is_free(db: Session) -> None:
    batch, (alice, bob), _ = make_batch(db, 2, 2, overlap=1, lease_seconds=10)
    past = utcnow() - timedelta(seconds=60)
    lease = front.next_assignment(db, batch, alice, past)
    lease2 = front.next_assignment(db, batch, bob, past)
    assert lease is not None and lease2 is not None
    # Past its time but not swept: the slot is still held, the submit is simply accepted.
    assert (
        front.submit(db, lease.assignment.id, alice, body_for(db, lease.item.id)).outcome
        == "created"
    )
    # Swept (status expired, slot freed) and nobody took it: re-taken under the row lock.
    assert front.sweep_expired(db, batch.id, utcnow()) == 1
    assert taken(db, batch, lease2.item.id) == 0
    result = front.submit(db, lease2.assignment.id, bob, body_for(db, lease2.item.id))
    assert result.outcome == "created" and result.assignment.status == "submitted"
    assert taken(db, batch, lease2.item.id) == 1


def test_expired_item_can_come_back_to_the_same_annotator(db: Session) -> None:
    batch, (alice,), (item,) = make_batch(db, 1, 1, overlap=1, lease_seconds=10)
    t0 = utcnow() - timedelta(seconds=60)
    first = front.next_assignment(db, batch, alice, t0)
    assert first is not None
    front.sweep_expired(db, batch.id, t0 + timedelta(seconds=20))
    again = front.next_assignment(db, batch, alice, t0 + timedelta(seconds=30))
    assert again is not None and again.assignment.id == first.assignment.id
    assert again.resumed is False  # a revived lease, not one held all along
    assert again.assignment.status == "leased" and taken(db, batch, item) == 1
    assert again.assignment.display_order == first.assignment.display_order
    assert db.scalar(select(func.count()).select_from(Assignment)) >= 1


def test_a_due_sweep_frees_expired_leases_before_the_claim_and_only_then(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Overlap 3: item `half` has two answers and an expired lease, `fresh` nothing. Once the
    # lease is freed, `half` (two slots taken) comes before `fresh` in breadth-first order.
    batch, (bob, carl, dave, carol, erin), (half, fresh) = make_batch(db, 2, 5, overlap=3)
    first = front.next_assignment(db, batch, bob)
    assert first is not None
    half, fresh = (half, fresh) if first.item.id == half else (fresh, half)
    front.submit(db, first.assignment.id, bob, body_for(db, half))
    second = front.next_assignment(db, batch, carl)
    assert second is not None and second.item.id == half
    front.submit(db, second.assignment.id, carl, body_for(db, half))
    stale = front.next_assignment(db, batch, dave, utcnow() - timedelta(hours=2))
    assert stale is not None and stale.item.id == half
    # This process swept the batch a moment ago (never due again in this test): the claim
    # does not sweep while it finds a free item.
    monkeypatch.setattr(order, "_last_sweep", {batch.id: math.inf})
    lease = front.next_assignment(db, batch, carol)
    assert lease is not None and lease.item.id == fresh
    assert taken(db, batch, half) == 3
    # Due again: the sweep runs first, and the freed slot of `half` is served.
    monkeypatch.setattr(order, "_last_sweep", {})
    lease = front.next_assignment(db, batch, erin)
    assert lease is not None and lease.item.id == half
    assert taken(db, batch, half) == 3 and taken(db, batch, fresh) == 1


def test_a_lease_freed_by_the_last_resort_sweep_comes_back_to_its_former_holder(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch, (alice, bob), (item,) = make_batch(db, 1, 2, overlap=1, lease_seconds=10)
    monkeypatch.setattr(order, "_last_sweep", {batch.id: math.inf})  # no sweep due
    t0 = utcnow() - timedelta(minutes=5)
    mine = front.next_assignment(db, batch, alice, t0)
    assert mine is not None
    assert front.sweep_expired(db, batch.id, t0 + timedelta(seconds=20)) == 1
    assert front.next_assignment(db, batch, bob, t0 + timedelta(seconds=30)) is not None
    # Bob's lease has expired too: alice's claim finds nothing free, so it sweeps and claims
    # again, and her own expired assignment of the item comes back as it was.
    again = front.next_assignment(db, batch, alice)
    assert again is not None and again.assignment.id == mine.assignment.id
    assert again.assignment.display_order == mine.assignment.display_order
    assert taken(db, batch, item) == 1


def test_skip_sends_the_item_to_others_never_back(db: Session) -> None:
    batch, (alice, bob), (item,) = make_batch(db, 1, 2, overlap=1)
    lease = front.next_assignment(db, batch, alice)
    assert lease is not None and front.next_assignment(db, batch, bob) is None
    result = front.skip(db, lease.assignment.id, alice, "  too long  ")
    assert result.changed and result.assignment.skip_reason == "too long"
    assert taken(db, batch, item) == 0
    assert not front.skip(db, lease.assignment.id, alice).changed  # idempotent
    assert taken(db, batch, item) == 0
    assert front.next_assignment(db, batch, alice) is None
    lease_b = front.next_assignment(db, batch, bob)
    assert lease_b is not None and lease_b.item.id == item
    with pytest.raises(Conflict, match="skipped"):
        front.submit(db, lease.assignment.id, alice, body_for(db, item))
    front.submit(db, lease_b.assignment.id, bob, body_for(db, item))
    with pytest.raises(Conflict, match="already submitted"):
        front.skip(db, lease_b.assignment.id, bob)


def test_sweep_is_bounded_per_call(db: Session) -> None:
    n = order.SWEEP_LIMIT + 8
    batch, users, _ = make_batch(db, n, n, overlap=1, lease_seconds=1)
    past = utcnow() - timedelta(seconds=60)
    for user in users:
        assert front.next_assignment(db, batch, user, past) is not None
    assert front.sweep_expired(db, batch.id, utcnow()) == order.SWEEP_LIMIT
    assert front.sweep_expired(db, batch.id, utcnow()) == 8
    assert front.sweep_expired(db, batch.id, utcnow()) == 0
    assert db.scalar(select(func.sum(BatchItem.taken)).where(BatchItem.batch_id == batch.id)) == 0


def test_api_next_returns_pinned_shape_then_204(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    project, _ = seed_project(db, 1, responses=3)
    _, token = make_user("ann-next")
    r = client.post(
        "/api/v1/batches",
        json={"project_id": project.id, "name": "n", "overlap": 1, "members": ["ann-next"]},
        headers=admin_headers,
    )
    h = {"Authorization": f"Bearer {token}"}
    body = client.post(f"/api/v1/batches/{r.json()['id']}/next", headers=h).json()
    assert set(body) >= {"assignment_id", "leased_until", "item"}
    assert set(body["item"]) >= {"id", "prompt", "prompt_source", "responses"}
    assert [set(x) for x in body["item"]["responses"]] == [{"id", "text", "source"}] * 3
    shown = client.get(f"/api/v1/assignments/{body['assignment_id']}", headers=h).json()
    assert [x["id"] for x in shown["item"]["responses"]] == [
        x["id"] for x in body["item"]["responses"]
    ]
    ids = [x["id"] for x in body["item"]["responses"]]
    ok = client.put(
        f"/api/v1/assignments/{body['assignment_id']}/annotation",
        json=valid_annotation(ids),
        headers=h,
    )
    assert ok.status_code == 200
    r2 = client.post(f"/api/v1/batches/{r.json()['id']}/next", headers=h)
    assert r2.status_code == 204 and r2.content == b""


def test_rotation_is_the_same_number_in_python_and_in_postgresql(db: Session) -> None:
    # The first 31 bits of sha256("batch:user:level"): one annotator's queue order must not
    # depend on which implementation (Python on SQLite, a function on PostgreSQL) claims.
    expected = {
        (1, 2, 0): 1584912024,
        (7, 123456, -1): 586022557,
        (2**31 - 1, 2**31 - 1, 63): 784352552,
    }
    for (batch_id, user_id, level), number in expected.items():
        assert order.rotation_start(batch_id, user_id, level) == number
        if db.get_bind().dialect.name == "postgresql":
            found = db.scalar(
                text("SELECT safepref_rotation(:b, :u, :l)"),
                {"b": batch_id, "u": user_id, "l": level},
            )
            assert found == number
