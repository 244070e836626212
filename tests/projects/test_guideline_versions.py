"""Guideline versions: edits make versions, annotations record theirs (on both queue paths,
through the database trigger), the annotations export shows it, annotators see what changed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.projects.models import GuidelineVersion, Project
from tests.support.authkit import logged_in
from tests.support.queue_factory import seed_project, valid_annotation

MakeUser = Callable[..., tuple[Any, str]]
QUESTIONS = {"ask_safety": "on", "ask_dual": "on"}


def versions(db: Session, project_id: int) -> list[tuple[int, str, dict[str, Any]]]:
    rows = db.scalars(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project_id)
        .order_by(GuidelineVersion.version)
    )
    return [(v.version, v.guidelines, v.questions) for v in rows]


def submit_next(client: TestClient, batch_id: int, headers: dict[str, str]) -> dict[str, Any]:
    lease = client.post(f"/api/v1/batches/{batch_id}/next", headers=headers)
    assert lease.status_code == 200, lease.text
    body = lease.json()
    ids = sorted(x["id"] for x in body["item"]["responses"])
    put = client.put(
        f"/api/v1/assignments/{body['assignment_id']}/annotation",
        json=valid_annotation(ids),
        headers=headers,
    )
    assert put.status_code == 200, put.text
    out: dict[str, Any] = put.json()
    out["assignment_id"] = body["assignment_id"]
    return out


def test_edits_make_versions_that_annotations_record(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    project, _ = seed_project(db, 4, guidelines="Be careful.\nFlag violence.")
    assert versions(db, project.id) == [
        (
            1,
            "Be careful.\nFlag violence.",
            {
                "ask_safety": True,
                "ask_dual": True,
                "ask_single": False,
                "ask_rationale": False,
                "show_suggestions": False,
            },
        )
    ]
    annotator, token = make_user()
    db.commit()
    created = client.post(
        "/api/v1/batches",
        json={"project_id": project.id, "name": "b", "overlap": 1, "members": [annotator.username]},  # type: ignore[attr-defined]
        headers=admin_headers,
    )
    batch_id = created.json()["id"]
    worker = {"Authorization": f"Bearer {token}"}
    first = submit_next(client, batch_id, worker)

    admin, _ = make_user(None, "admin")
    csrf = logged_in(client, admin.username)  # type: ignore[attr-defined]
    page = client.get(f"/projects/{project.id}/guidelines")
    assert page.status_code == 200 and "Flag violence." in page.text
    url = f"/projects/{project.id}/guidelines"
    text = "Be careful.\r\nFlag violence and weapons."
    saved = client.post(
        url,
        data={"guidelines": text, **QUESTIONS, "ask_rationale": "on", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert saved.status_code == 303 and saved.headers["location"].endswith("done=saved")
    same = client.post(
        url,
        data={"guidelines": text, **QUESTIONS, "ask_rationale": "on", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert same.headers["location"].endswith("done=unchanged")
    refused = client.post(url, data={"guidelines": "x", "csrf_token": csrf})
    assert refused.status_code == 422 and "ask at least one" in refused.text
    assert [v[0] for v in versions(db, project.id)] == [1, 2]
    db.expire_all()
    stored = db.get(Project, project.id)
    assert stored is not None and stored.guidelines == "Be careful.\nFlag violence and weapons."
    assert stored.ask_rationale is True
    history = client.get(url)
    assert 'id="version-2"' in history.text and admin.username in history.text  # type: ignore[attr-defined]

    # The annotator's next item: the page shows what changed, once.
    client.cookies.clear()
    lease = client.post(f"/api/v1/batches/{batch_id}/next", headers=worker).json()
    logged_in(client, annotator.username)  # type: ignore[attr-defined]
    shown = client.get(f"/assignments/{lease['assignment_id']}")
    assert 'id="guideline-notice"' in shown.text
    assert "version 1 → 2" in shown.text
    assert "<ins>+Flag violence and weapons.</ins>" in shown.text
    assert "<del>-Flag violence.</del>" in shown.text
    assert "Now asked: rationale" in shown.text
    ids = sorted(x["id"] for x in lease["item"]["responses"])
    body = {**valid_annotation(ids), "rationale": "weapons count as violence"}
    put = client.put(
        f"/api/v1/assignments/{lease['assignment_id']}/annotation", json=body, headers=worker
    )
    assert put.status_code == 200, put.text
    after = client.post(f"/api/v1/batches/{batch_id}/next", headers=worker).json()
    again = client.get(f"/assignments/{after['assignment_id']}")
    assert again.status_code == 200 and 'id="guideline-notice"' not in again.text

    v1, v2 = db.scalars(
        select(GuidelineVersion.id)
        .where(GuidelineVersion.project_id == project.id)
        .order_by(GuidelineVersion.version)
    ).all()
    db.expire_all()
    recorded = dict(
        db.execute(
            select(Annotation.assignment_id, Annotation.guideline_version_id).where(
                Annotation.batch_id == batch_id
            )
        ).all()
    )
    assert recorded == {first["assignment_id"]: v1, lease["assignment_id"]: v2}

    # A revision of the first item, made now, is recorded under the new version.
    first_lease = client.get(f"/api/v1/assignments/{first['assignment_id']}", headers=worker)
    ids = sorted(x["id"] for x in first_lease.json()["item"]["responses"])
    body = {**valid_annotation(ids, flip=True), "rationale": "revised"}
    revised = client.put(
        f"/api/v1/assignments/{first['assignment_id']}/annotation", json=body, headers=worker
    )
    assert revised.status_code == 200 and revised.json()["outcome"] == "revised", revised.text
    db.expire_all()
    assert (
        db.scalar(
            select(Annotation.guideline_version_id).where(
                Annotation.assignment_id == first["assignment_id"]
            )
        )
        == v2
    )

    exported = client.get(
        "/api/v1/exports/annotations", params={"batch_id": batch_id}, headers=admin_headers
    )
    rows = [json.loads(line) for line in exported.text.splitlines()]
    assert sorted(r["guideline_version_id"] for r in rows) == [v2, v2]
    assert all("external_id" in r and "item_meta" in r for r in rows)
