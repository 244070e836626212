"""Member exclusion through the API and the batch page, and the gold floor option."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.auth.models import User
from app.batches.models import Assignment, AssignmentStatus, Batch, BatchItem, BatchMember
from app.batches.service import add_member, create_batch
from app.dashboard.gold import mark_gold
from app.queue import front
from tests.support.htmlkit import parse
from tests.support.queue_factory import response_ids, seed_project, valid_annotation

MakeUser = Callable[..., tuple[Any, str]]
# Every response safe, both rankings in position order: `right` below matches it.
KEY = {
    "responses": [
        {"position": 0, "is_safe": True, "harm_categories": [], "severity": None},
        {"position": 1, "is_safe": True, "harm_categories": [], "severity": None},
    ],
    "helpfulness": [0, 1],
    "harmlessness": [0, 1],
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def setup_batch(
    db: Session, make_user: MakeUser, n_items: int, n_people: int, **kw: Any
) -> tuple[Batch, list[tuple[User, dict[str, str]]]]:
    project, _ = seed_project(db, n_items)
    batch = create_batch(db, project, "b", **kw)
    people = []
    for _ in range(n_people):
        user, token = make_user()
        add_member(db, batch, user)
        people.append((user, bearer(token)))
    db.commit()
    return batch, people


def work(
    client: TestClient, db: Session, batch: Batch, headers: dict[str, str], *, right: bool = True
) -> dict[str, Any] | None:
    """Takes the caller's next item and submits an answer (`right`: matching KEY)."""
    r = client.post(f"/api/v1/batches/{batch.id}/next", headers=headers)
    if r.status_code == 204:
        return None
    assert r.status_code == 200, r.text
    lease = r.json()
    ids = response_ids(db, lease["item"]["id"])
    body = valid_annotation(ids) if right else valid_annotation(ids, unsafe=ids[:1], flip=True)
    put = client.put(
        f"/api/v1/assignments/{lease['assignment_id']}/annotation", json=body, headers=headers
    )
    assert put.status_code == 200, put.text
    result: dict[str, Any] = put.json()
    return result


def member(db: Session, batch: Batch, user: User) -> BatchMember:
    db.expire_all()
    return db.get_one(BatchMember, (batch.id, user.id))


def test_admin_excludes_and_includes_a_member_through_the_api(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, [(alice, alice_h), (bob, _)] = setup_batch(db, make_user, 4, 2, overlap=2)
    done = work(client, db, batch, alice_h)
    assert done is not None
    held = client.post(f"/api/v1/batches/{batch.id}/next", headers=alice_h).json()

    url = f"/api/v1/batches/{batch.id}/members/{alice.username}"
    r = client.post(f"{url}/exclude", json={"reason": "random answers"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["username"] == alice.username and out["excluded"] is True
    assert out["exclusion_reason"] == "random answers" and out["leased"] == 0
    # Her lease went back; she is refused with a message that says why.
    r = client.post(f"/api/v1/batches/{batch.id}/next", headers=alice_h)
    assert r.status_code == 403 and "you are excluded from this batch" in r.json()["detail"]
    body = valid_annotation(response_ids(db, held["item"]["id"]))
    r = client.put(
        f"/api/v1/assignments/{held['assignment_id']}/annotation", json=body, headers=alice_h
    )
    assert r.status_code == 403
    # Revising her excluded annotation is refused too (as an excluded member: 403).
    ids = response_ids(db, done["item_id"])
    r = client.put(
        f"/api/v1/assignments/{done['assignment_id']}/annotation",
        json=valid_annotation(ids, flip=True),
        headers=alice_h,
    )
    assert r.status_code == 403
    listed = client.get(f"/api/v1/batches/{batch.id}/members", headers=admin_headers).json()
    assert {m["username"]: m["excluded"] for m in listed} == {
        alice.username: True,
        bob.username: False,
    }

    r = client.post(f"{url}/include", headers=admin_headers)
    assert r.status_code == 200 and r.json()["excluded"] is False
    assert client.post(f"/api/v1/batches/{batch.id}/next", headers=alice_h).status_code == 200
    db.expire_all()
    annotation = db.scalars(select(Annotation).where(Annotation.annotator_id == alice.id)).one()
    assert annotation.excluded_at is None


def test_exclude_without_a_body_is_fine(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, [(alice, _)] = setup_batch(db, make_user, 1, 1)
    r = client.post(
        f"/api/v1/batches/{batch.id}/members/{alice.username}/exclude", headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["exclusion_reason"] is None
    assert member(db, batch, alice).excluded_at is not None


def test_revising_an_annotation_a_reviewer_excluded_is_a_409(
    client: TestClient, db: Session, make_user: MakeUser
) -> None:
    batch, [(_, alice_h)] = setup_batch(db, make_user, 2, 1, overlap=1)
    done = work(client, db, batch, alice_h)
    assert done is not None
    front.exclude_annotations(
        db, batch_id=batch.id, annotation_ids=[done["annotation_id"]], kind="review", reason="x"
    )
    db.commit()
    ids = response_ids(db, done["item_id"])
    r = client.put(
        f"/api/v1/assignments/{done['assignment_id']}/annotation",
        json=valid_annotation(ids, flip=True),
        headers=alice_h,
    )
    assert r.status_code == 409
    assert "has been excluded from the batch's results" in r.json()["detail"]


@pytest.mark.parametrize(
    ("who", "status", "detail"),
    [
        ("nobody-here", 404, "no user 'nobody-here'"),
        ("outsider", 404, "is not a member of batch"),
    ],
)
def test_bad_targets_are_refused_and_nothing_is_written(
    client: TestClient,
    db: Session,
    make_user: MakeUser,
    admin_headers: dict[str, str],
    who: str,
    status: int,
    detail: str,
) -> None:
    batch, _ = setup_batch(db, make_user, 1, 1)
    outsider, _ = make_user()
    name = outsider.username if who == "outsider" else who
    for action in ("exclude", "include"):
        r = client.post(
            f"/api/v1/batches/{batch.id}/members/{name}/{action}",
            json={"reason": "x"} if action == "exclude" else None,
            headers=admin_headers,
        )
        assert r.status_code == status and detail in r.json()["detail"], r.text
    assert db.scalar(select(func.count()).where(BatchMember.excluded_at.is_not(None))) == 0


def test_only_admins_may_exclude(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, [(_, alice_h), (bob, _)] = setup_batch(db, make_user, 1, 2)
    _, outsider_token = make_user()
    for headers in (alice_h, bearer(outsider_token)):
        r = client.post(
            f"/api/v1/batches/{batch.id}/members/{bob.username}/exclude",
            json={"reason": "x"},
            headers=headers,
        )
        assert r.status_code == 403, r.text
    r = client.post(
        f"/api/v1/batches/{batch.id}/members/{bob.username}/exclude",
        json={"reason": "x" * 2001},
        headers=admin_headers,
    )
    assert r.status_code == 422 and "reason" in r.text
    assert member(db, batch, bob).excluded_at is None


def gold_batch(
    db: Session, make_user: MakeUser, admin_id: int, n_people: int
) -> tuple[Batch, list[tuple[User, dict[str, str]]]]:
    """Two gold items among six; every claim is swapped for a gold item while any is left."""
    batch, people = setup_batch(db, make_user, 6, n_people, overlap=1)
    item_ids = sorted(db.scalars(select(BatchItem.item_id).where(BatchItem.batch_id == batch.id)))
    admin = db.get_one(User, admin_id)
    for item_id in item_ids[:2]:
        mark_gold(db, batch, item_id, admin, KEY)
    batch.gold_rate = 1.0
    db.commit()
    return batch, people


def test_the_gold_floor_excludes_after_m_gold_answers_below_it(
    client: TestClient, db: Session, make_user: MakeUser
) -> None:
    admin, admin_token = make_user(role="admin")
    admin_h = bearer(admin_token)
    batch, [(bad, bad_h), (good, good_h)] = gold_batch(db, make_user, admin.id, 2)
    r = client.patch(
        f"/api/v1/batches/{batch.id}",
        json={"gold_floor": 0.5, "gold_floor_min_answers": 2, "gold_floor_excludes": True},
        headers=admin_h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["gold_floor"] == 0.5 and r.json()["gold_floor_excludes"] is True

    # One wrong gold answer (accuracy 1/4): fewer than M = 2, not yet.
    assert work(client, db, batch, bad_h, right=False) is not None
    assert member(db, batch, bad).excluded_at is None
    assert work(client, db, batch, good_h) is not None
    # The second brings M answers below the floor: excluded at once, with the figures.
    assert work(client, db, batch, bad_h, right=False) is not None
    excluded = member(db, batch, bad)
    assert excluded.excluded_at is not None
    assert excluded.exclusion_reason == (
        "gold accuracy 25% on 2 gold answers, below the batch's floor of 50%"
    )
    assert client.post(f"/api/v1/batches/{batch.id}/next", headers=bad_h).status_code == 403
    assert work(client, db, batch, good_h) is not None
    assert member(db, batch, good).excluded_at is None


def test_the_gold_floor_only_flags_unless_told_to_exclude(
    client: TestClient, db: Session, make_user: MakeUser
) -> None:
    admin, admin_token = make_user(role="admin")
    admin_h = bearer(admin_token)
    batch, [(bad, bad_h), (good, good_h)] = gold_batch(db, make_user, admin.id, 2)
    r = client.patch(
        f"/api/v1/batches/{batch.id}",
        json={"gold_floor": 0.5, "gold_floor_min_answers": 2},
        headers=admin_h,
    )
    assert r.status_code == 200
    for _ in range(2):
        work(client, db, batch, bad_h, right=False)
        work(client, db, batch, good_h)
    assert member(db, batch, bad).excluded_at is None
    page = parse(client.get(f"/batches/{batch.id}", headers=admin_h).text)
    rows = page.one(id="members").find_all("tr")
    flagged = [tr.cells()[0] for tr in rows if tr.find_all(class_="flagged")]
    assert len(flagged) == 1 and bad.username in flagged[0]
    assert "gold 25% on 2" in flagged[0]
    dashboard = client.get(f"/batches/{batch.id}/dashboard", headers=admin_h).text
    assert dashboard.count("below the batch&#39;s gold floor of 50%") == 1

    # Turning exclusion on now excludes those below the floor at once.
    r = client.patch(
        f"/api/v1/batches/{batch.id}", json={"gold_floor_excludes": True}, headers=admin_h
    )
    assert r.status_code == 200
    assert member(db, batch, bad).excluded_at is not None
    assert member(db, batch, good).excluded_at is None


def test_bad_gold_floor_values_are_refused(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, _ = setup_batch(db, make_user, 1, 1)
    for body in ({"gold_floor": 1.5}, {"gold_floor_min_answers": 0}, {"gold_floor": "high"}):
        r = client.patch(f"/api/v1/batches/{batch.id}", json=body, headers=admin_headers)
        assert r.status_code == 422, r.text
    r = client.post(
        f"/batches/{batch.id}/gold-floor", data={"gold_floor": "150"}, headers=admin_headers
    )
    assert r.status_code == 422 and "gold_floor: must be a percentage" in r.text
    db.expire_all()
    assert db.get_one(Batch, batch.id).gold_floor is None


def test_the_batch_page_excludes_after_confirmation_and_includes_again(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, [(alice, alice_h)] = setup_batch(db, make_user, 2, 1)
    work(client, db, batch, alice_h)
    page = parse(client.get(f"/batches/{batch.id}", headers=admin_headers).text)
    action = f"/batches/{batch.id}/members/{alice.username}/exclude"
    assert [a for a in page.find_all("a", href=action) if a.text == "Exclude…"]
    confirm = client.get(action, headers=admin_headers)
    assert confirm.status_code == 200
    form = parse(confirm.text).one("form", action=action)
    assert form.one("textarea", name="reason") and form.one("button", id="confirm-exclude")
    assert member(db, batch, alice).excluded_at is None  # asking changes nothing
    r = client.post(
        action, data={"reason": "copy-paste"}, headers=admin_headers, follow_redirects=False
    )
    assert r.status_code == 303
    assert member(db, batch, alice).exclusion_reason == "copy-paste"
    page = parse(client.get(f"/batches/{batch.id}", headers=admin_headers).text)
    assert "copy-paste" in page.one(id="members").text
    include = f"/batches/{batch.id}/members/{alice.username}/include"
    assert "Include again" in page.one("form", action=include).text
    r = client.post(include, headers=admin_headers, follow_redirects=False)
    assert r.status_code == 303
    assert member(db, batch, alice).excluded_at is None


def test_an_excluded_member_pressing_next_sees_why(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, [(alice, alice_h)] = setup_batch(db, make_user, 2, 1)
    client.post(
        f"/api/v1/batches/{batch.id}/members/{alice.username}/exclude", headers=admin_headers
    )
    r = client.post(f"/batches/{batch.id}/next", headers=alice_h)
    assert r.status_code == 200  # followed to the done page
    assert "You are excluded from this batch" in parse(r.text).one(id="excluded").text
    assert (
        db.scalar(
            select(func.count()).where(
                Assignment.annotator_id == alice.id, Assignment.status == AssignmentStatus.LEASED
            )
        )
        == 0
    )
