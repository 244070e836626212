"""Adaptive overlap and per-annotator quotas, through the queue's front and the API.

Every test runs on SQLite and PostgreSQL (on PostgreSQL the submit and the target are the SQL
functions of app/queue/sql/; the last test checks that SQL and Python give the same targets).
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.annotations.schemas import AnnotationIn
from app.auth.service import create_token, create_user
from app.batches.models import Assignment, AssignmentStatus, Batch, BatchItem
from app.batches.service import add_member, batch_progress, create_batch
from app.db import utcnow
from app.errors import Conflict
from app.queue import front, targets
from tests.conftest import DatabaseFactory
from tests.support.authkit import PASSWORD, csrf_from, logged_in
from tests.support.live_server import app_server, migrated
from tests.support.queue_factory import quick_users, response_ids, seed_project, valid_annotation

MakeUser = Callable[..., tuple[Any, str]]


def adaptive_batch(
    db: Session, n_items: int, n_users: int, **options: Any
) -> tuple[Batch, list[Any], list[int]]:
    project, ids = seed_project(db, n_items)
    overlap = options.pop("overlap", 3)
    batch = create_batch(db, project, "adaptive", overlap=overlap, options=options)
    users = quick_users(db, n_users)
    for user in users:
        add_member(db, batch, user)
    return batch, users, ids


def item_row(db: Session, batch: Batch, item_id: int) -> tuple[int, int, int]:
    db.expire_all()
    row = db.execute(
        select(BatchItem.taken, BatchItem.submitted, BatchItem.wanted).where(
            BatchItem.batch_id == batch.id, BatchItem.item_id == item_id
        )
    ).one()
    return row[0], row[1], row[2]


def annotate(db: Session, batch: Batch, user: Any, *, flip: bool = False) -> int | None:
    """The user's next item, answered (`flip`: the other helpfulness order); its id."""
    lease = front.next_assignment(db, batch, user)
    if lease is None:
        return None
    item_id = lease.assignment.item_id
    body = AnnotationIn.model_validate(valid_annotation(response_ids(db, item_id), flip=flip))
    front.submit(db, lease.assignment.id, user, body)
    return item_id


def test_unanimous_first_votes_complete_the_item_at_the_minimum(db: Session) -> None:
    batch, (a, b, c), (item,) = adaptive_batch(db, 1, 3, overlap=3, overlap_min=2)
    assert item_row(db, batch, item) == (0, 0, 2)
    assert annotate(db, batch, a) == item
    assert item_row(db, batch, item) == (1, 1, 2)
    assert annotate(db, batch, b) == item
    assert item_row(db, batch, item) == (2, 2, 2)
    assert front.next_assignment(db, batch, c) is None  # complete: no third annotation
    progress = batch_progress(db, batch)
    assert (progress.items_complete, progress.wanted, progress.wanted_at_most) == (1, 2, 2)


def test_disagreement_escalates_one_vote_at_a_time_up_to_the_maximum_never_beyond(
    db: Session,
) -> None:
    batch, users, (item,) = adaptive_batch(db, 1, 6, overlap=4, overlap_min=2)
    # Two annotations that disagree on helpfulness: one more vote is wanted, then another
    # while the votes stay split, and never a fifth.
    assert annotate(db, batch, users[0]) == item
    assert annotate(db, batch, users[1], flip=True) == item
    assert item_row(db, batch, item) == (2, 2, 3)
    progress = batch_progress(db, batch)
    assert (progress.items_complete, progress.wanted, progress.wanted_at_most) == (0, 3, 4)
    assert annotate(db, batch, users[2], flip=True) == item
    # 2 against 1 is a majority, not unanimity (the default early_stop_agreement is 1.0).
    assert item_row(db, batch, item) == (3, 3, 4)
    assert annotate(db, batch, users[3]) == item
    assert item_row(db, batch, item) == (4, 4, 4)
    assert front.next_assignment(db, batch, users[4]) is None
    assert front.next_assignment(db, batch, users[5]) is None
    assert item_row(db, batch, item) == (4, 4, 4)


def test_a_lower_early_stop_agreement_stops_at_a_large_enough_majority(db: Session) -> None:
    batch, users, (item,) = adaptive_batch(
        db, 1, 5, overlap=5, overlap_min=2, early_stop_agreement=0.75
    )
    annotate(db, batch, users[0])
    annotate(db, batch, users[1], flip=True)
    annotate(db, batch, users[2])  # 2 of 3 = 0.67 < 0.75: one more
    assert item_row(db, batch, item)[2] == 4
    annotate(db, batch, users[3])  # 3 of 4 = 0.75: complete
    assert item_row(db, batch, item) == (4, 4, 4)
    assert front.next_assignment(db, batch, users[4]) is None


def test_gating_leaves_other_dimensions_out(db: Session) -> None:
    # Only the safety labels gate: a split helpfulness ranking does not call a third vote.
    batch, users, (item,) = adaptive_batch(db, 1, 3, overlap=3, overlap_min=2, gating=["is_safe"])
    annotate(db, batch, users[0])
    annotate(db, batch, users[1], flip=True)
    assert item_row(db, batch, item) == (2, 2, 2)
    assert front.next_assignment(db, batch, users[2]) is None


def test_a_revision_recomputes_the_target(db: Session) -> None:
    batch, users, (item,) = adaptive_batch(db, 1, 3, overlap=3, overlap_min=2)
    annotate(db, batch, users[0])
    lease = front.next_assignment(db, batch, users[1])
    assert lease is not None
    ids = response_ids(db, item)
    front.submit(
        db, lease.assignment.id, users[1], AnnotationIn(**valid_annotation(ids, flip=True))
    )
    assert item_row(db, batch, item)[2] == 3
    front.submit(db, lease.assignment.id, users[1], AnnotationIn(**valid_annotation(ids)))
    assert item_row(db, batch, item) == (2, 2, 2)
    assert front.next_assignment(db, batch, users[2]) is None


def test_an_item_needing_one_more_vote_is_served_before_untouched_items(db: Session) -> None:
    batch, users, _ = adaptive_batch(db, 8, 3, overlap=3, overlap_min=2)
    first = annotate(db, batch, users[0])
    assert first is not None
    lease = front.next_assignment(db, batch, users[1])
    assert lease is not None and lease.assignment.item_id == first  # closest to its target
    body = valid_annotation(response_ids(db, first), flip=True)
    front.submit(db, lease.assignment.id, users[1], AnnotationIn(**body))
    # users[1] has nothing open; users[2] gets the disputed item before any untouched one.
    third = front.next_assignment(db, batch, users[2])
    assert third is not None and third.assignment.item_id == first


def test_options_are_checked_and_a_change_retargets_items(db: Session) -> None:
    batch, users, (item,) = adaptive_batch(db, 1, 3, overlap=3)
    assert item_row(db, batch, item)[2] >= 3  # fixed overlap: the overlap is the bound
    annotate(db, batch, users[0])
    annotate(db, batch, users[1])
    from app.batches.service import set_queue_options

    assert set_queue_options(batch, overlap_min=2)
    front.refresh_targets(db, batch.id)
    assert item_row(db, batch, item) == (2, 2, 2)  # the two agree: complete at two
    assert front.next_assignment(db, batch, users[2]) is None
    assert set_queue_options(batch, overlap_min=None)
    front.refresh_targets(db, batch.id, [item])
    assert item_row(db, batch, item)[2] == 3
    assert annotate(db, batch, users[2]) == item


def test_patch_sets_the_options_and_refuses_bad_ones(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    project, _ = seed_project(db, 2)
    r = client.post(
        "/api/v1/batches",
        json={"project_id": project.id, "name": "p", "overlap": 3},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    assert (r.json()["overlap_min"], r.json()["max_items_per_annotator"]) == (3, None)
    url = f"/api/v1/batches/{r.json()['id']}"
    ok = client.patch(
        url,
        json={"overlap_min": 2, "max_items_per_annotator": 5, "gating": ["is_safe"]},
        headers=admin_headers,
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert (body["overlap_min"], body["max_items_per_annotator"], body["gating"]) == (
        2,
        5,
        ["is_safe"],
    )
    wanted = db.scalars(select(BatchItem.wanted).where(BatchItem.batch_id == body["id"])).all()
    assert set(wanted) == {2}
    for bad, field in (
        ({"overlap_min": 4}, "overlap_min"),
        ({"overlap_min": 0}, "overlap_min"),
        ({"max_items_per_annotator": 0}, "max_items_per_annotator"),
        ({"early_stop_agreement": 0.4}, "early_stop_agreement"),
        ({"gating": ["severity"]}, "gating"),
        ({"gating": []}, "gating"),
    ):
        refused = client.patch(url, json=bad, headers=admin_headers)
        assert refused.status_code == 422, (bad, refused.text)
        assert field in refused.text
    cleared = client.patch(url, json={"max_items_per_annotator": None}, headers=admin_headers)
    assert cleared.json()["max_items_per_annotator"] is None
    assert cleared.json()["overlap_min"] == 2  # untouched by a body that does not name it


# ---------------------------------------------------------------- quotas


def test_quota_stops_the_queue_and_the_api_says_204(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    project, _ = seed_project(db, 5)
    _, token = make_user("ann-quota")
    r = client.post(
        "/api/v1/batches",
        json={
            "project_id": project.id,
            "name": "quota",
            "overlap": 1,
            "members": ["ann-quota"],
            "max_items_per_annotator": 2,
        },
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    batch_url = f"/api/v1/batches/{r.json()['id']}"
    h = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        lease = client.post(f"{batch_url}/next", headers=h)
        assert lease.status_code == 200
        # The lease held is handed back, whatever the quota.
        assert (
            client.post(f"{batch_url}/next", headers=h).json()["assignment_id"]
            == (lease.json()["assignment_id"])
        )
        ids = [x["id"] for x in lease.json()["item"]["responses"]]
        put = client.put(
            f"/api/v1/assignments/{lease.json()['assignment_id']}/annotation",
            json=valid_annotation(ids),
            headers=h,
        )
        assert put.status_code == 200
    stopped = client.post(f"{batch_url}/next", headers=h)
    assert stopped.status_code == 204 and stopped.content == b""
    # Raising the quota serves the member again.
    client.patch(batch_url, json={"max_items_per_annotator": 3}, headers=admin_headers)
    assert client.post(f"{batch_url}/next", headers=h).status_code == 200


def test_a_skip_frees_a_quota_place_and_unskip_respects_the_quota(db: Session) -> None:
    batch, (alice,), _ = adaptive_batch(db, 4, 1, overlap=1, max_items_per_annotator=1)
    first = front.next_assignment(db, batch, alice)
    assert first is not None
    front.skip(db, first.assignment.id, alice)
    second = front.next_assignment(db, batch, alice)
    assert second is not None  # a skipped item does not count
    assert front.next_assignment(db, batch, alice) is not None  # the held lease, again
    with pytest.raises(Conflict) as caught:
        front.unskip(db, first.assignment.id, alice)
    assert caught.value.detail == f"you have done your 1 items for batch {batch.id}"
    held = db.scalars(
        select(Assignment.status).where(
            Assignment.batch_id == batch.id, Assignment.annotator_id == alice.id
        )
    ).all()
    assert sorted(held) == [AssignmentStatus.LEASED, AssignmentStatus.SKIPPED]


def test_the_quota_counts_my_live_and_submitted_work_in_this_batch_only(db: Session) -> None:
    batch, (alice, bob), _ = adaptive_batch(db, 8, 2, overlap=2, max_items_per_annotator=2)
    other, _, _ = adaptive_batch(db, 1, 0, overlap=1)
    add_member(db, other, alice)
    # Not counted: alice's lease in another batch, bob's work, a skip, an expired lease and a
    # qualification answer.
    assert front.next_assignment(db, other, alice) is not None
    assert annotate(db, batch, bob) is not None and annotate(db, batch, bob) is not None
    skipped = front.next_assignment(db, batch, alice)
    assert skipped is not None
    front.skip(db, skipped.assignment.id, alice)
    late = front.next_assignment(db, batch, alice, utcnow() - timedelta(hours=1))
    assert late is not None and front.sweep_expired(db, batch.id, utcnow()) == 1
    test_item = annotate(db, batch, alice)
    assert test_item is not None
    db.execute(
        update(Assignment)
        .where(Assignment.batch_id == batch.id, Assignment.item_id == test_item)
        .where(Assignment.annotator_id == alice.id)
        .values(is_qualification=True)
        .execution_options(synchronize_session=False)
    )
    # Counted: a submitted answer and a live lease, two of two.
    assert annotate(db, batch, alice) is not None
    assert front.next_assignment(db, batch, alice) is not None
    with pytest.raises(Conflict) as caught:
        front.unskip(db, skipped.assignment.id, alice)
    assert caught.value.detail == f"you have done your 2 items for batch {batch.id}"


# ---------------------------------------------------------------- Python and SQL agree


def random_payload(rng: random.Random, ids: list[int]) -> dict[str, Any]:
    unsafe = [r for r in ids if rng.random() < 0.3]
    body = valid_annotation(ids, unsafe=unsafe, flip=rng.random() < 0.3)
    if rng.random() < 0.3:
        body["helpfulness"] = list(reversed(body["helpfulness"]))
    return body


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQL exists there only
def test_the_sql_target_is_the_python_rule(db: Session) -> None:
    """PostgreSQL computes the target in SQL (sql/target.sql) on every submit; over random
    annotations, options and gating it must equal app/queue/targets.py's rule."""
    assert db.get_bind().dialect.name == "postgresql"
    rng = random.Random(18)
    project, ids = seed_project(db, 80, responses=3)
    project.ask_single = rng.random() < 0.5
    users = quick_users(db, 5)
    choices: list[list[str] | None] = [
        None,
        ["is_safe"],
        ["helpfulness"],
        ["harmlessness", "is_safe"],
    ]
    compared = 0
    for round_ in range(4):
        batch = create_batch(
            db,
            project,
            f"rule-{round_}",
            overlap=5,
            options={
                "overlap_min": rng.randint(1, 3),
                "early_stop_agreement": rng.choice([1.0, 0.75, 0.6]),
                "gating": choices[round_],
            },
        )
        for item_id in ids:
            rids = response_ids(db, item_id)
            for user in users[: rng.randint(0, 5)]:
                assignment = Assignment(
                    batch_id=batch.id,
                    item_id=item_id,
                    annotator_id=user.id,
                    status=AssignmentStatus.SUBMITTED,
                    leased_until=utcnow(),
                    display_order=rids,
                )
                db.add(assignment)
                db.flush()
                payload = random_payload(rng, rids)
                if project.ask_single:
                    payload["single"] = payload["helpfulness"]
                db.add(
                    Annotation(
                        assignment_id=assignment.id,
                        batch_id=batch.id,
                        item_id=item_id,
                        annotator_id=user.id,
                        payload=payload,
                    )
                )
        db.flush()
        rule = targets.batch_rule(batch, project)
        in_sql = dict(
            db.execute(
                text(
                    "SELECT item_id, safepref_target(batch_id, item_id) FROM batch_items "
                    "WHERE batch_id = :b"
                ),
                {"b": batch.id},
            ).all()
        )
        for item_id in ids:
            payloads = list(
                db.scalars(
                    select(Annotation.payload).where(
                        Annotation.batch_id == batch.id, Annotation.item_id == item_id
                    )
                )
            )
            assert in_sql[item_id] == targets.target(payloads, **rule), (round_, payloads)
            compared += 1
    assert compared == 320


def test_the_page_says_the_quota_is_reached(
    client: TestClient, db: Session, make_user: MakeUser
) -> None:
    project, _ = seed_project(db, 3)
    user, _ = make_user("ann-page-quota")
    batch = create_batch(
        db, project, "page-quota", overlap=1, options={"max_items_per_annotator": 1}
    )
    add_member(db, batch, user)
    db.commit()
    csrf = logged_in(client, "ann-page-quota")
    first = client.post(
        f"/batches/{batch.id}/next", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert first.headers["location"].startswith("/assignments/")
    lease = front.next_assignment(db, batch, user)
    assert lease is not None
    body = AnnotationIn(**valid_annotation(response_ids(db, lease.assignment.item_id)))
    front.submit(db, lease.assignment.id, user, body)
    db.commit()
    done = client.post(f"/batches/{batch.id}/next", data={"csrf_token": csrf})
    assert done.status_code == 200
    assert "You have done your 1 items for this batch" in done.text
    assert 'id="quota-reached"' in done.text


@pytest.mark.live
def test_the_quota_page_on_a_live_server(backend: str, databases: DatabaseFactory) -> None:
    """The real `safepref serve`, real cookies: logging in, the next button, a submit through
    the API, then the page's explanation."""
    url = migrated(databases.new_url())
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        project, _ = seed_project(session, 3)
        user = create_user(session, "live-quota", PASSWORD, "annotator")
        token = create_token(session, user)[1]
        batch = create_batch(
            session, project, "live-quota", overlap=1, options={"max_items_per_annotator": 1}
        )
        add_member(session, batch, user)
        batch_id = batch.id
    engine.dispose()
    with app_server(url, workers=1, secret="q" * 40) as base, httpx.Client(base_url=base) as web:
        form = web.get("/login")
        web.post(
            "/login",
            data={
                "username": "live-quota",
                "password": PASSWORD,
                "csrf_token": csrf_from(form.text),
            },
        )
        api = {"Authorization": f"Bearer {token}"}
        lease = web.post(f"/api/v1/batches/{batch_id}/next", headers=api).json()
        ids = [x["id"] for x in lease["item"]["responses"]]
        put = web.put(
            f"/api/v1/assignments/{lease['assignment_id']}/annotation",
            json=valid_annotation(ids),
            headers=api,
        )
        assert put.status_code == 200
        assert web.post(f"/api/v1/batches/{batch_id}/next", headers=api).status_code == 204
        csrf = csrf_from(web.get("/account/password").text)
        page = web.post(
            f"/batches/{batch_id}/next", data={"csrf_token": csrf}, follow_redirects=True
        )
        assert page.status_code == 200
        assert str(page.url).endswith(f"/batches/{batch_id}/done")
        assert "You have done your 1 items for this batch" in page.text


def test_exports_take_items_at_their_own_counts(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    """An adaptive batch ends with items of 2 and of 3 annotations: every complete item is
    exported (min_annotations defaults to overlap_min), each from its own votes."""
    batch, users, ids = adaptive_batch(db, 2, 3, overlap=3, overlap_min=2)
    # Item one: two agreeing votes. Item two: split 2 to 1 on helpfulness.
    for who, flips in ((0, (False, False)), (1, (False, True))):
        for flip in flips:
            annotate(db, batch, users[who], flip=flip)
    annotate(db, batch, users[2])
    counts = sorted(item_row(db, batch, i)[1] for i in ids)
    assert counts == [2, 3]
    db.commit()
    url = "/api/v1/exports/pku-saferlhf"
    r = client.get(url, params={"batch_id": batch.id}, headers=admin_headers)
    assert r.status_code == 200, r.text
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == 2
    strict = client.get(
        url, params={"batch_id": batch.id, "min_annotations": 3}, headers=admin_headers
    )
    assert len(strict.text.splitlines()) == 1


def test_dashboard_shows_annotations_per_item_and_what_was_saved(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    batch, users, _ = adaptive_batch(db, 2, 3, overlap=3, overlap_min=2)
    for who, flips in ((0, (False, False)), (1, (False, True))):
        for flip in flips:
            annotate(db, batch, users[who], flip=flip)
    annotate(db, batch, users[2])
    db.commit()
    r = client.get(f"/batches/{batch.id}/dashboard/live", headers=admin_headers)
    assert r.status_code == 200, r.text
    html = r.text
    # One item at 2 annotations, one at 3: 5 submitted, 6 for a fixed overlap, 1 saved.
    assert re.search(r'data-annotations="2"><td class="num">2</td><td class="num">1</td>', html)
    assert re.search(r'data-annotations="3"><td class="num">3</td><td class="num">1</td>', html)
    assert re.search(r'data-figure="saved">1<', html)
    assert re.search(r'data-figure="wanted_at_most">5<', html)
    assert re.search(r'data-figure="submitted">5 / 5<', html)


def test_the_batch_page_sets_adaptive_overlap_and_the_quota(
    db: Session, client: TestClient, make_user: Any
) -> None:
    from tests.support.queue_factory import seed_project

    project, _ = seed_project(db, 3)
    batch = create_batch(db, project, f"page-{uuid.uuid4().hex[:6]}", overlap=3)
    admin, _ = make_user(role="admin")
    db.commit()
    csrf = logged_in(client, admin.username)
    url = f"/batches/{batch.id}/queue-settings"
    form = {
        "overlap_min": "2",
        "early_stop_percent": "100",
        "gating": ["is_safe", "helpfulness"],
        "max_items": "40",
        "csrf_token": csrf,
    }
    assert client.post(url, data=form, follow_redirects=False).status_code == 303
    db.expire_all()
    db.refresh(batch)
    assert batch.overlap_min == 2 and batch.max_items_per_annotator == 40
    assert batch.gating == ["helpfulness", "is_safe"]
    # Every item's target was recomputed: two annotations to start with.
    wanted = db.scalars(select(BatchItem.wanted).where(BatchItem.batch_id == batch.id)).all()
    assert wanted == [2, 2, 2]
    page = client.get(f"/batches/{batch.id}").text
    assert 'id="overlap-min"' in page and 'value="40"' in page

    for bad, said in (
        ({"overlap_min": "7"}, "overlap_min"),
        ({"overlap_min": "two"}, "At least"),
        ({"max_items": "-3"}, "Items per person"),
        ({"early_stop_percent": "30"}, "early_stop_agreement"),
    ):
        refused = client.post(url, data={**form, **bad}, follow_redirects=False)
        assert refused.status_code == 422 and said in refused.text, (bad, refused.text)

    # Blank fields and every question ticked: back to a fixed overlap and no quota.
    reset = {
        "early_stop_percent": "",
        "gating": list(("helpfulness", "harmlessness", "single", "is_safe")),
        "csrf_token": csrf,
    }
    assert client.post(url, data=reset, follow_redirects=False).status_code == 303
    db.expire_all()
    db.refresh(batch)
    assert batch.overlap_min is None and batch.max_items_per_annotator is None
    assert batch.gating is None and batch.early_stop_agreement == 1.0
