"""Batches through the API and the admin pages: creation, members, open/close, progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.batches.models import Assignment, BatchItem, BatchMember
from app.projects.models import Project
from tests.support.queue_factory import seed_project

MakeUser = Callable[..., tuple[Any, str]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_batch(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = client.post("/api/v1/batches", json={"name": "b", **body}, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def batch_item_ids(db: Session, batch_id: int) -> list[int]:
    return list(
        db.scalars(
            select(BatchItem.item_id)
            .where(BatchItem.batch_id == batch_id)
            .order_by(BatchItem.item_id)
        )
    )


def test_create_batch_from_all_items_then_list_and_progress(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    project, ids = seed_project(db, 7)
    body = new_batch(client, admin_headers, project_id=project.id, overlap=2, lease_seconds=90)
    assert (body["items"], body["overlap"], body["wanted"], body["lease_seconds"]) == (7, 2, 14, 90)
    assert body["is_open"] is True
    assert batch_item_ids(db, body["id"]) == ids
    listed = client.get("/api/v1/batches", params={"project_id": project.id}, headers=admin_headers)
    assert [b["id"] for b in listed.json()] == [body["id"]]
    progress = client.get(f"/api/v1/batches/{body['id']}/progress", headers=admin_headers).json()
    assert progress["items"] == 7 and progress["submitted"] == 0
    assert progress["items_untouched"] == 7 and progress["percent"] == 0.0
    assert progress["mine"] == {"submitted": 0, "skipped": 0, "leased": 0}


def test_create_batch_from_selection_prompt_source_and_sample(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    project, ids = seed_project(db, 12, sources=("Alpaca3-70B", "Beavertails", "Beavertails"))
    chosen = new_batch(client, admin_headers, project_id=project.id, item_ids=ids[:4], name="sel")
    assert batch_item_ids(db, chosen["id"]) == ids[:4]
    beaver = [i for n, i in enumerate(ids) if n % 3 != 0]
    by_source = new_batch(
        client, admin_headers, project_id=project.id, prompt_source="Beavertails", name="src"
    )
    assert batch_item_ids(db, by_source["id"]) == beaver
    both = new_batch(
        client,
        admin_headers,
        project_id=project.id,
        item_ids=ids[:6],
        prompt_source="Beavertails",
        name="sel+src",
    )
    assert batch_item_ids(db, both["id"]) == [i for i in beaver if i in ids[:6]]
    s1 = new_batch(
        client, admin_headers, project_id=project.id, sample_size=5, sample_seed=7, name="s1"
    )
    s2 = new_batch(
        client, admin_headers, project_id=project.id, sample_size=5, sample_seed=7, name="s2"
    )
    sample = batch_item_ids(db, s1["id"])
    assert len(sample) == 5 and set(sample) <= set(ids)
    assert batch_item_ids(db, s2["id"]) == sample  # the seed makes the sample reproducible


def test_create_batch_refusals_name_the_field(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    project, ids = seed_project(db, 3)
    new_batch(client, admin_headers, project_id=project.id)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"name": "b"}, 409, "already exists"),
        ({"name": "x", "item_ids": [ids[0], 999_999]}, 422, "item_ids"),
        ({"name": "x", "sample_size": 4}, 422, "sample_size"),
        ({"name": "x", "prompt_source": "nowhere"}, 422, "prompt_source"),
        ({"name": "x", "members": ["nobody-here"]}, 404, "nobody-here"),
    ]
    for extra, status, needle in cases:
        r = client.post(
            "/api/v1/batches", json={"project_id": project.id, **extra}, headers=admin_headers
        )
        assert r.status_code == status, (extra, r.text)
        assert needle in r.text
    r = client.post(
        "/api/v1/batches",
        json={"project_id": project.id, "name": "y", "overlap": 0},
        headers=admin_headers,
    )
    assert r.status_code == 422 and "overlap" in r.text
    _, token = make_user()
    r = client.post(
        "/api/v1/batches", json={"project_id": project.id, "name": "z"}, headers=bearer(token)
    )
    assert r.status_code == 403


def test_members_decide_what_an_annotator_sees(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    project, _ = seed_project(db, 3)
    user, token = make_user("ann-m")
    mine = new_batch(client, admin_headers, project_id=project.id, name="mine")
    other = new_batch(client, admin_headers, project_id=project.id, name="other")
    h = bearer(token)
    for url in (f"/api/v1/batches/{mine['id']}", f"/api/v1/batches/{mine['id']}/progress"):
        assert client.get(url, headers=h).status_code == 404
    assert client.post(f"/api/v1/batches/{mine['id']}/next", headers=h).status_code == 404
    r = client.post(
        f"/api/v1/batches/{mine['id']}/members", json={"username": "ann-m"}, headers=admin_headers
    )
    assert r.status_code == 200 and [m["username"] for m in r.json()] == ["ann-m"]
    # Adding twice changes nothing.
    client.post(
        f"/api/v1/batches/{mine['id']}/members", json={"username": "ann-m"}, headers=admin_headers
    )
    assert (
        db.scalars(select(BatchMember).where(BatchMember.user_id == user.id)).all().__len__() == 1
    )
    assert client.get(f"/api/v1/batches/{mine['id']}", headers=h).status_code == 200
    assert [b["id"] for b in client.get("/api/v1/batches", headers=h).json()] == [mine["id"]]
    assert client.get(f"/api/v1/batches/{other['id']}", headers=h).status_code == 404

    lease = client.post(f"/api/v1/batches/{mine['id']}/next", headers=h).json()
    item_id = lease["item"]["id"]
    taken = select(BatchItem.taken).where(
        BatchItem.batch_id == mine["id"], BatchItem.item_id == item_id
    )
    assert db.scalar(taken) == 1
    r = client.request(
        "DELETE",
        f"/api/v1/batches/{mine['id']}/members",
        json={"username": "ann-m"},
        headers=admin_headers,
    )
    assert r.status_code == 204
    # Removal gives the live lease back and locks the annotator out again.
    assert db.scalar(taken) == 0
    assert db.get(Assignment, lease["assignment_id"]).status == "expired"  # type: ignore[union-attr]
    assert client.post(f"/api/v1/batches/{mine['id']}/next", headers=h).status_code == 404
    assert client.get(f"/api/v1/assignments/{lease['assignment_id']}", headers=h).status_code == 200
    r = client.delete(f"/api/v1/batches/{mine['id']}/members/ann-m", headers=admin_headers)
    assert r.status_code == 404  # no longer a member


def test_closing_a_batch_stops_next_submit_and_skip(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    project, _ = seed_project(db, 3)
    _, token = make_user("ann-c")
    batch = new_batch(client, admin_headers, project_id=project.id, members=["ann-c"])
    h = bearer(token)
    lease = client.post(f"/api/v1/batches/{batch['id']}/next", headers=h).json()
    r = client.post(f"/api/v1/batches/{batch['id']}/close", headers=admin_headers)
    assert r.status_code == 200 and r.json()["is_open"] is False
    assert client.post(f"/api/v1/batches/{batch['id']}/next", headers=h).status_code == 409
    aid = lease["assignment_id"]
    r = client.put(f"/api/v1/assignments/{aid}/annotation", json={}, headers=h)
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    assert client.post(f"/api/v1/assignments/{aid}/skip", headers=h).status_code == 409
    assert client.get("/api/v1/batches", params={"open_only": True}, headers=h).json() == []
    client.post(f"/api/v1/batches/{batch['id']}/open", headers=admin_headers)
    again = client.post(f"/api/v1/batches/{batch['id']}/next", headers=h).json()
    assert again["assignment_id"] == aid and again["resumed"] is True
    assert client.post(f"/api/v1/batches/{batch['id']}/close", headers=h).status_code == 403


def test_patch_raises_overlap_and_changes_lease(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    project, _ = seed_project(db, 2)
    batch = new_batch(client, admin_headers, project_id=project.id, overlap=2)
    r = client.patch(
        f"/api/v1/batches/{batch['id']}",
        json={"overlap": 3, "lease_seconds": 60},
        headers=admin_headers,
    )
    assert r.status_code == 200 and (r.json()["overlap"], r.json()["lease_seconds"]) == (3, 60)
    r = client.patch(f"/api/v1/batches/{batch['id']}", json={"overlap": 1}, headers=admin_headers)
    assert r.status_code == 422 and "overlap" in r.json()["detail"]


def test_admin_pages_create_project_and_batch_without_javascript(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    make_user("ann-page")
    r = client.get("/projects/new", headers=admin_headers)
    assert r.status_code == 200 and 'name="custom_taxonomy"' in r.text
    form = {
        "name": "Custom one",
        "taxonomy_preset": "custom",
        "custom_taxonomy": "Spam\nScam\n",
        "guidelines": "# Be kind\n<script>alert(1)</script>",
        "ask_safety": "on",
        "ask_dual": "on",
        "ask_rationale": "on",
    }
    r = client.post("/projects", data=form, headers=admin_headers, follow_redirects=False)
    assert r.status_code == 303, r.text
    project = db.scalar(select(Project).where(Project.name == "Custom one"))
    assert project is not None
    assert (project.taxonomy_preset, project.taxonomy) == ("custom", ["Spam", "Scam"])
    assert (project.ask_safety, project.ask_dual, project.ask_single, project.ask_rationale) == (
        True,
        True,
        False,
        True,
    )
    r = client.post("/projects", data={**form, "name": "Custom one"}, headers=admin_headers)
    assert r.status_code == 409 and "already exists" in r.text and "Custom one" in r.text
    _, ids = seed_project(db, 4, name="with-items")
    page_project = db.scalar(select(Project).where(Project.name == "with-items"))
    assert page_project is not None
    r = client.get(f"/projects/{page_project.id}/batches/new", headers=admin_headers)
    assert r.status_code == 200 and "ann-page" in r.text
    data = {
        "name": "paged",
        "overlap": "2",
        "lease_minutes": "5",
        "item_ids": f"{ids[0]}, {ids[2]}",
        "members": "ann-page",
        "is_open": "on",
    }
    r = client.post(
        f"/projects/{page_project.id}/batches",
        data=data,
        headers=admin_headers,
        follow_redirects=False,
    )
    assert r.status_code == 303
    batch_url = r.headers["location"]
    page = client.get(batch_url, headers=admin_headers)
    assert page.status_code == 200 and "ann-page" in page.text and "0 of 4 annotations" in page.text
    listing = client.get("/batches", headers=admin_headers)
    assert "paged" in listing.text
    bad = client.post(
        f"/projects/{page_project.id}/batches",
        data={**data, "item_ids": "1, x"},
        headers=admin_headers,
    )
    assert bad.status_code == 422 and "item_ids" in bad.text
    r = client.post(f"{batch_url}/close", headers=admin_headers, follow_redirects=False)
    assert r.status_code == 303
    assert "Reopen batch" in client.get(batch_url, headers=admin_headers).text


def test_annotator_home_lists_open_batches_and_next_button_leads_to_the_item(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    project, _ = seed_project(db, 1)
    _, token = make_user("ann-home")
    batch = new_batch(
        client,
        admin_headers,
        project_id=project.id,
        overlap=1,
        members=["ann-home"],
        name="Home batch",
    )
    h = bearer(token)
    home = client.get("/", headers=h)
    assert (
        home.status_code == 200
        and "Home batch" in home.text
        and f"/batches/{batch['id']}/next" in home.text
    )
    r = client.post(f"/batches/{batch['id']}/next", headers=h, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/assignments/")
    aid = int(r.headers["location"].rsplit("/", 1)[1])
    assert "Resume my item" in client.get("/", headers=h).text
    client.post(f"/api/v1/assignments/{aid}/skip", json={"reason": "not my language"}, headers=h)
    r = client.post(f"/batches/{batch['id']}/next", headers=h, follow_redirects=False)
    assert r.headers["location"] == f"/batches/{batch['id']}/done"
    done = client.get(r.headers["location"], headers=h)
    assert done.status_code == 200 and "Nothing left for you" in done.text
