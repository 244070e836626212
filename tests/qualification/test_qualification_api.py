"""Qualification through the API: pending members get the qualification items first, are
graded on their first answers, pass into the regular queue or fail out of the batch; their
answers count nowhere; admins see standings and can reset them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.batches.models import Assignment, BatchItem, BatchMember
from app.items.models import GoldLabel
from tests.support.consensus_factory import Built, build
from tests.support.dashboard_factory import GOLD_KEY

MakeUser = Callable[..., tuple[Any, str]]


def gold(db: Session, built: Built, *indexes: int) -> list[int]:
    ids = []
    for i in indexes:
        item = built.items[i]
        db.get(BatchItem, (built.batch.id, item.id)).is_gold = True  # type: ignore[union-attr]
        db.add(GoldLabel(item_id=item.id, payload=GOLD_KEY))
        ids.append(item.id)
    db.commit()
    return ids


def answer(built: Built, item_id: int, *, right: bool) -> dict[str, Any]:
    """GOLD_KEY's answer (p0 safe, p1 unsafe severe Violence, both rankings p0 first), or one
    that differs on every question."""
    item = next(i for i in built.items if i.id == item_id)
    p0, p1 = built.ids(item)
    if right:
        labels = [
            {"response_id": p0, "is_safe": True, "harm_categories": [], "severity": None},
            {
                "response_id": p1,
                "is_safe": False,
                "harm_categories": ["Violence"],
                "severity": "severe",
            },
        ]
        return {"responses": labels, "helpfulness": [p0, p1], "harmlessness": [p0, p1]}
    labels = [
        {
            "response_id": p0,
            "is_safe": False,
            "harm_categories": ["Cybercrime"],
            "severity": "minor",
        },
        {"response_id": p1, "is_safe": True, "harm_categories": [], "severity": None},
    ]
    return {"responses": labels, "helpfulness": [p1, p0], "harmlessness": [p1, p0]}


def setup(
    client: TestClient, db: Session, admin: dict[str, str], make_user: MakeUser, threshold: float
) -> tuple[Built, list[int], dict[str, str], str]:
    built = build(db, 4, overlap=2)
    db.commit()
    keyed = gold(db, built, 0, 1)
    url = f"/api/v1/batches/{built.batch.id}/qualification"
    r = client.put(url, json={"item_ids": keyed, "threshold": threshold}, headers=admin)
    assert r.status_code == 200, r.text
    person, token = make_user()
    r = client.post(
        f"/api/v1/batches/{built.batch.id}/members",
        json={"username": person.username},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    return built, keyed, {"Authorization": f"Bearer {token}"}, person.username


def next_item(client: TestClient, built: Built, headers: dict[str, str]) -> Any:
    return client.post(f"/api/v1/batches/{built.batch.id}/next", headers=headers)


def submit(client: TestClient, lease: dict[str, Any], body: dict[str, Any], headers: Any) -> None:
    r = client.put(
        f"/api/v1/assignments/{lease['assignment_id']}/annotation", json=body, headers=headers
    )
    assert r.status_code in (200, 201), r.text


def standing(client: TestClient, built: Built, admin: dict[str, str], username: str) -> Any:
    r = client.get(f"/api/v1/batches/{built.batch.id}/qualification", headers=admin)
    assert r.status_code == 200
    return next(m for m in r.json()["members"] if m["username"] == username)


def test_a_member_who_answers_well_qualifies_then_gets_regular_work(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    built, keyed, me, name = setup(client, db, admin_headers, make_user, 0.75)
    assert standing(client, built, admin_headers, name)["state"] == "pending"

    served = []
    for _ in keyed:
        lease = next_item(client, built, me).json()
        served.append(lease["item"]["id"])
        submit(client, lease, answer(built, lease["item"]["id"], right=True), me)
    assert served == keyed  # in the order the admin listed them

    lease = next_item(client, built, me).json()
    assert lease["item"]["id"] not in keyed  # regular work now
    mine = standing(client, built, admin_headers, name)
    assert mine["state"] == "passed"
    assert mine["answered"] == 2 and mine["asked"] == 2
    assert mine["scores"]["is_safe"] == {"correct": 4, "compared": 4, "accuracy": 1.0}
    assert mine["scores"]["helpfulness"]["accuracy"] == 1.0

    # The answers count nowhere: no annotation, no gold answer, nothing of mine in progress.
    metrics = client.get(f"/api/v1/batches/{built.batch.id}/metrics", headers=admin_headers)
    assert metrics.status_code == 200
    assert metrics.json()["progress"]["annotations"] == 0
    progress = client.get(f"/api/v1/batches/{built.batch.id}/progress", headers=me).json()
    assert progress["submitted"] == 0 and progress["mine"]["submitted"] == 0
    export = client.get(
        f"/api/v1/exports/annotations?batch_id={built.batch.id}", headers=admin_headers
    )
    assert export.status_code == 200 and export.text.strip() == ""


def test_a_member_below_the_threshold_fails_and_an_admin_can_reset_them(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    built, keyed, me, name = setup(client, db, admin_headers, make_user, 0.75)
    first = next_item(client, built, me).json()
    submit(client, first, answer(built, first["item"]["id"], right=True), me)
    second = next_item(client, built, me).json()
    submit(client, second, answer(built, second["item"]["id"], right=False), me)

    r = next_item(client, built, me)
    assert r.status_code == 403
    assert "did not pass its qualification" in r.json()["detail"]
    assert "75%" in r.json()["detail"]
    failed = standing(client, built, admin_headers, name)
    assert failed["state"] == "failed"
    assert failed["scores"]["is_safe"] == {"correct": 2, "compared": 4, "accuracy": 0.5}
    # Still refused on the next try: failing ends their access.
    assert next_item(client, built, me).status_code == 403

    r = client.post(
        f"/api/v1/batches/{built.batch.id}/members/{name}/qualification/reset",
        headers=admin_headers,
    )
    assert r.status_code == 200 and r.json()["state"] == "pending"
    assert r.json()["answered"] == 0
    again = next_item(client, built, me).json()
    assert again["item"]["id"] == keyed[0]
    db.expire_all()
    # The reset gave the counts back: one live lease on the first key item, nothing else.
    counts = {
        row.item_id: (row.taken, row.submitted)
        for row in db.scalars(select(BatchItem).where(BatchItem.batch_id == built.batch.id))
    }
    assert counts[keyed[0]] == (1, 0) and counts[keyed[1]] == (0, 0)


def test_only_the_first_answer_counts_even_if_revised_after_the_key_was_shown(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    built, _keyed, me, name = setup(client, db, admin_headers, make_user, 1.0)
    first = next_item(client, built, me).json()
    submit(client, first, answer(built, first["item"]["id"], right=False), me)
    submit(client, first, answer(built, first["item"]["id"], right=True), me)  # a revision
    second = next_item(client, built, me).json()
    submit(client, second, answer(built, second["item"]["id"], right=True), me)
    assert next_item(client, built, me).status_code == 403
    assert standing(client, built, admin_headers, name)["state"] == "failed"


def test_qualification_items_cannot_be_skipped(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    built, _keyed, me, _name = setup(client, db, admin_headers, make_user, 0.5)
    lease = next_item(client, built, me).json()
    r = client.post(f"/api/v1/assignments/{lease['assignment_id']}/skip", json={}, headers=me)
    assert r.status_code == 409 and "cannot be skipped" in r.json()["detail"]
    db.expire_all()
    stored = db.get(Assignment, lease["assignment_id"])
    assert stored is not None and stored.status == "leased"


def test_members_who_joined_before_keep_working_and_turning_it_off_lets_pending_in(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    built = build(db, 4, overlap=2)
    db.commit()
    early, early_token = make_user()
    client.post(
        f"/api/v1/batches/{built.batch.id}/members",
        json={"username": early.username},
        headers=admin_headers,
    )
    keyed = gold(db, built, 0)
    url = f"/api/v1/batches/{built.batch.id}/qualification"
    assert client.put(url, json={"item_ids": keyed, "threshold": 0.8}, headers=admin_headers)
    late, late_token = make_user()
    client.post(
        f"/api/v1/batches/{built.batch.id}/members",
        json={"username": late.username},
        headers=admin_headers,
    )
    early_lease = next_item(client, built, {"Authorization": f"Bearer {early_token}"}).json()
    assert early_lease["item"]["id"] not in keyed
    late_lease = next_item(client, built, {"Authorization": f"Bearer {late_token}"}).json()
    assert late_lease["item"]["id"] == keyed[0]

    r = client.put(url, json={"item_ids": []}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["threshold"] is None
    db.expire_all()
    member = db.get(BatchMember, (built.batch.id, late.id))
    assert member is not None and member.qualification is None


def test_bad_settings_are_refused_naming_the_problem_and_nothing_is_written(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    built = build(db, 3)
    db.commit()
    keyed = gold(db, built, 0)
    plain = built.items[2].id
    url = f"/api/v1/batches/{built.batch.id}/qualification"
    cases = [
        ({"item_ids": [keyed[0], plain], "threshold": 0.8}, f"item {plain} is not a gold item"),
        ({"item_ids": [keyed[0], keyed[0]], "threshold": 0.8}, "listed twice"),
        ({"item_ids": keyed}, "threshold"),
        ({"item_ids": keyed, "threshold": 0}, "threshold"),
        ({"item_ids": keyed, "threshold": 1.5}, "threshold"),
        ({"item_ids": "x"}, "item_ids"),
    ]
    for body, said in cases:
        r = client.put(url, json=body, headers=admin_headers)
        assert r.status_code == 422, (body, r.text)
        assert said in r.text, (body, r.text)
    shown = client.get(url, headers=admin_headers).json()
    assert shown["threshold"] is None and shown["item_ids"] == []
    assert (
        client.put(
            "/api/v1/batches/999999/qualification", json={"item_ids": []}, headers=admin_headers
        ).status_code
        == 404
    )


def test_the_work_report_shows_the_state_and_leaves_the_test_out_of_the_work(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    built, keyed, me, name = setup(client, db, admin_headers, make_user, 0.5)
    for _ in keyed:
        lease = next_item(client, built, me).json()
        submit(
            client,
            lease,
            answer(built, lease["item"]["id"], right=True) | {"duration_ms": 9000},
            me,
        )
    regular = next_item(client, built, me).json()
    submit(
        client,
        regular,
        answer(built, regular["item"]["id"], right=True) | {"duration_ms": 4000},
        me,
    )
    r = client.get(f"/api/v1/batches/{built.batch.id}/work-report", headers=admin_headers)
    mine = next(row for row in r.json() if row["username"] == name)
    assert mine["qualification"] == "passed"
    assert mine["submitted"] == 1 and mine["active_seconds"] == 4.0
