"""Archive and delete: archived projects and batches are hidden from annotators and default
lists with nothing lost; delete only without annotations, after a confirmation step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.batches.models import Batch
from app.items.models import Item
from app.projects.models import Project
from tests.support.authkit import logged_in
from tests.support.queue_factory import seed_project, valid_annotation

MakeUser = Callable[..., tuple[Any, str]]


def new_batch(
    client: TestClient, admin_headers: dict[str, str], project_id: int, members: list[str]
) -> int:
    r = client.post(
        "/api/v1/batches",
        json={"project_id": project_id, "name": "b", "overlap": 1, "members": members},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_archived_batches_and_projects_are_hidden_from_annotators_and_kept(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    project, _ = seed_project(db, 3)
    annotator, token = make_user()
    db.commit()
    worker = {"Authorization": f"Bearer {token}"}
    name = annotator.username  # type: ignore[attr-defined]
    batch_id = new_batch(client, admin_headers, project.id, [name])
    lease = client.post(f"/api/v1/batches/{batch_id}/next", headers=worker).json()
    ids = sorted(x["id"] for x in lease["item"]["responses"])
    put = client.put(
        f"/api/v1/assignments/{lease['assignment_id']}/annotation",
        json=valid_annotation(ids),
        headers=worker,
    )
    assert put.status_code == 200

    admin, _ = make_user(None, "admin")
    csrf = logged_in(client, admin.username)  # type: ignore[attr-defined]
    page = client.get(f"/batches/{batch_id}")
    assert f'action="/batches/{batch_id}/archive"' in page.text
    assert f'href="/batches/{batch_id}/delete"' not in page.text  # it holds an annotation
    r = client.post(
        f"/batches/{batch_id}/archive", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    batch = db.get(Batch, batch_id)
    db.refresh(batch)
    assert batch is not None and batch.archived_at is not None and not batch.is_open
    # Reopening an archived batch is refused: unarchive first.
    assert client.post(f"/api/v1/batches/{batch_id}/open", headers=admin_headers).status_code == 409

    # Hidden from the annotator: lists, the batch itself, the queue.
    assert client.get("/api/v1/batches", headers=worker).json() == []
    assert client.get(f"/api/v1/batches/{batch_id}", headers=worker).status_code == 404
    assert client.post(f"/api/v1/batches/{batch_id}/next", headers=worker).status_code in (404, 409)
    # Hidden from the admin's default lists, shown on request.
    listed = client.get("/api/v1/batches", headers=admin_headers).json()
    assert batch_id not in [b["id"] for b in listed]
    everything = client.get(
        "/api/v1/batches", params={"include_archived": True}, headers=admin_headers
    ).json()
    assert batch_id in [b["id"] for b in everything]
    assert f'href="/batches/{batch_id}"' not in client.get("/batches").text
    assert f'href="/batches/{batch_id}"' in client.get("/batches?archived=1").text
    # Nothing lost: the annotation is still exported.
    exported = client.get(
        "/api/v1/exports/annotations", params={"batch_id": batch_id}, headers=admin_headers
    )
    assert len(exported.text.splitlines()) == 1

    client.post(f"/batches/{batch_id}/unarchive", data={"csrf_token": csrf})
    client.post(f"/api/v1/batches/{batch_id}/open", headers=admin_headers)
    assert [b["id"] for b in client.get("/api/v1/batches", headers=worker).json()] == [batch_id]

    # Archiving the project hides its batches too, and the project from the project list.
    client.post(f"/projects/{project.id}/archive", data={"csrf_token": csrf})
    assert client.get("/api/v1/batches", headers=worker).json() == []
    assert client.get(f"/api/v1/batches/{batch_id}", headers=worker).status_code == 404
    projects = client.get("/api/v1/projects", headers=admin_headers).json()
    assert project.id not in [p["id"] for p in projects]
    assert f'href="/projects/{project.id}"' not in client.get("/projects").text
    assert f'href="/projects/{project.id}"' in client.get("/projects?archived=1").text
    db.expire_all()
    assert db.get(Batch, batch_id).is_open is False  # type: ignore[union-attr]
    # Deleting it is refused: it holds an annotation.
    confirm = client.get(f"/projects/{project.id}/delete")
    assert "cannot be deleted" in confirm.text and 'name="confirm"' not in confirm.text
    refused = client.post(
        f"/projects/{project.id}/delete", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert refused.status_code == 409
    assert db.scalar(select(func.count()).select_from(Annotation)) == 1
    client.post(f"/projects/{project.id}/unarchive", data={"csrf_token": csrf})
    projects = client.get("/api/v1/projects", headers=admin_headers).json()
    assert project.id in [p["id"] for p in projects]


def test_delete_needs_no_annotations_and_a_confirmation(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    project, item_ids = seed_project(db, 2)
    db.commit()
    batch_id = new_batch(client, admin_headers, project.id, [])
    admin, _ = make_user(None, "admin")
    csrf = logged_in(client, admin.username)  # type: ignore[attr-defined]
    assert f'href="/batches/{batch_id}/delete"' in client.get(f"/batches/{batch_id}").text
    # Without the confirmation step's field, nothing is deleted: back to the step.
    skipped = client.post(
        f"/batches/{batch_id}/delete", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert skipped.status_code == 303
    assert skipped.headers["location"] == f"/batches/{batch_id}/delete"
    assert db.get(Batch, batch_id) is not None
    step = client.get(f"/batches/{batch_id}/delete")
    assert "cannot be undone" in step.text and 'name="confirm" value="yes"' in step.text
    done = client.post(
        f"/batches/{batch_id}/delete",
        data={"csrf_token": csrf, "confirm": "yes"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    db.expire_all()
    assert db.get(Batch, batch_id) is None
    assert db.scalar(select(func.count()).select_from(Item).where(Item.id.in_(item_ids))) == 2

    client.post(f"/projects/{project.id}/delete", data={"csrf_token": csrf, "confirm": "yes"})
    db.expire_all()
    assert db.get(Project, project.id) is None
    assert db.scalar(select(func.count()).select_from(Item).where(Item.id.in_(item_ids))) == 0
