"""Guideline versions and archiving against the real server (on PostgreSQL the queue's hot
path runs in its own functions): the version an annotation was made under is recorded, the
annotator's next item shows what changed, and an archived batch leaves the annotator's page."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.annotations.models import Annotation
from app.auth.models import User
from app.auth.service import create_token
from app.projects.models import GuidelineVersion
from tests.support.browserkit import login, screenshot
from tests.support.queue_factory import valid_annotation
from tests.support.samples import jsonl, pku_pair

pytestmark = pytest.mark.browser


def test_guideline_change_notice_and_archive(open_page: Any, live_server: Any) -> None:
    api = live_server.api
    name = "guided-" + uuid.uuid4().hex[:6]
    project = api("POST", "/api/v1/projects", json={"name": name, "guidelines": "Rule one."})
    pid = project.json()["id"]
    rows = [
        {k: v for k, v in pku_pair(i).items() if not k.endswith("_sha256")}
        | {"prompt": f"{name} prompt {i}"}
        for i in range(4)
    ]
    imported = api(
        "POST", f"/api/v1/projects/{pid}/imports", files={"file": ("x.jsonl", jsonl(rows))}
    )
    assert imported.status_code == 201, imported.text
    batch = api(
        "POST",
        "/api/v1/batches",
        json={"project_id": pid, "name": "guided", "overlap": 1, "members": ["bob"]},
    )
    batch_id = batch.json()["id"]
    with live_server.session() as s:
        bob = s.scalars(select(User).where(User.username == "bob")).one()
        _, token = create_token(s, bob, "guidelines test")
    worker = {"Authorization": f"Bearer {token}"}

    # Bob's first item, through the API (the hot path), under version 1.
    lease = api("POST", f"/api/v1/batches/{batch_id}/next", headers=worker).json()
    ids = sorted(r["id"] for r in lease["item"]["responses"])
    put = api(
        "PUT",
        f"/api/v1/assignments/{lease['assignment_id']}/annotation",
        json=valid_annotation(ids),
        headers=worker,
    )
    assert put.status_code == 200, put.text

    # The admin changes the guidelines in the browser: version 2.
    admin = open_page(js=False)
    login(admin, "admin")
    admin.goto(f"/projects/{pid}")
    with admin.expect_navigation():
        admin.click("text=Guidelines and questions")
    admin.fill("textarea[name=guidelines]", "Rule one.\nRule two: weapons are violence.")
    with admin.expect_navigation():
        admin.click("form[action$='/guidelines'] button[type=submit]")
    assert "Saved as a new version." in admin.locator("[role=status]").inner_text()
    assert admin.locator("#version-2").count() == 1

    # Bob's next item in the browser shows what changed.
    page = open_page(js=False)
    login(page, "bob")
    page.goto("/")
    with page.expect_navigation():
        page.click(f"form[action='/batches/{batch_id}/next'] button")
    notice = page.locator("#guideline-notice")
    assert "version 1 → 2" in notice.inner_text()
    assert "+Rule two: weapons are violence." in notice.locator("ins").inner_text()
    screenshot(page, "guideline-notice", live_server.backend)

    with live_server.session() as s:
        v1 = s.scalar(
            select(GuidelineVersion.id).where(
                GuidelineVersion.project_id == pid, GuidelineVersion.version == 1
            )
        )
        recorded = s.scalar(
            select(Annotation.guideline_version_id).where(
                Annotation.assignment_id == lease["assignment_id"]
            )
        )
    assert v1 is not None and recorded == v1

    # Archived: the batch leaves bob's page and his API list; nothing is lost.
    admin.goto(f"/batches/{batch_id}")
    with admin.expect_navigation():
        admin.click(f"form[action='/batches/{batch_id}/archive'] button")
    assert admin.locator("h1 .tag.archived").count() == 1
    page.goto("/")
    assert page.locator(f"form[action='/batches/{batch_id}/next']").count() == 0
    listed = api("GET", "/api/v1/batches", headers=worker).json()
    assert batch_id not in [b["id"] for b in listed]
    assert api("GET", f"/api/v1/batches/{batch_id}", headers=worker).status_code == 404
    exported = api("GET", "/api/v1/exports/annotations", params={"batch_id": batch_id})
    assert len(exported.text.splitlines()) == 1
