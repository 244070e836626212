"""Excluding a member through the real server (`safepref serve`, real cookies and CSRF): the
batch page's link, the confirmation page, the annotator's done page that says why, and the
refusals (no CSRF token, not an admin) that write nothing."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from app.auth.service import create_user
from app.batches.models import Batch, BatchMember
from app.batches.service import add_member, create_batch
from app.items.models import Item
from app.projects.models import Project

pytestmark = pytest.mark.live

PASSWORD = "password-123"
_TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def log_in(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    form = client.get("/login")
    found = _TOKEN.search(form.text)
    assert found, form.text[:300]
    data = {"username": username, "password": PASSWORD, "csrf_token": found.group(1)}
    assert client.post("/login", data=data).status_code == 303
    return client


def token_in(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, html[:300]
    return found.group(1)


def excluded_at(live_server: Any, batch_id: int, user_id: int) -> Any:
    with live_server.session() as s:
        return s.get_one(BatchMember, (batch_id, user_id)).excluded_at


def test_live_exclude_page_confirms_then_the_annotator_is_told(live_server: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    with live_server.session() as s:
        create_user(s, f"boss-{tag}", PASSWORD, "admin")
        worker = create_user(s, f"worker-{tag}", PASSWORD, "annotator")
        project_id = live_server.demo_project_id
        project = s.get_one(Project, project_id)
        item_ids = list(s.scalars(select(Item.id).where(Item.project_id == project_id).limit(3)))
        batch = create_batch(s, project, f"excl-{tag}", overlap=1, item_ids=item_ids)
        add_member(s, batch, worker)
        batch_id, worker_id, worker_name = batch.id, worker.id, worker.username
    boss = log_in(live_server.url, f"boss-{tag}")
    annotator = log_in(live_server.url, worker_name)
    try:
        # The annotator starts an item: a live lease that the exclusion must give back.
        started = annotator.post(
            f"/batches/{batch_id}/next",
            data={"csrf_token": token_in(annotator.get("/").text)},
        )
        assert started.status_code == 303 and "/assignments/" in started.headers["location"]

        page = boss.get(f"/batches/{batch_id}")
        action = f"/batches/{batch_id}/members/{quote(worker_name)}/exclude"
        assert f'href="{action}"' in page.text
        confirm = boss.get(action)
        assert confirm.status_code == 200 and 'id="confirm-exclude"' in confirm.text
        assert excluded_at(live_server, batch_id, worker_id) is None  # asking wrote nothing

        # Without the CSRF token, or as the annotator: refused, nothing written.
        assert boss.post(action, data={"reason": "x"}).status_code == 403
        as_annotator = annotator.post(
            action, data={"reason": "x", "csrf_token": token_in(annotator.get("/").text)}
        )
        assert as_annotator.status_code == 403
        assert excluded_at(live_server, batch_id, worker_id) is None

        done = boss.post(
            action, data={"reason": "spam answers", "csrf_token": token_in(confirm.text)}
        )
        assert done.status_code == 303
        assert excluded_at(live_server, batch_id, worker_id) is not None
        members = boss.get(f"/batches/{batch_id}")
        assert "spam answers" in members.text and "Include again" in members.text

        # The annotator's next item: the done page, which says why.
        nothing = annotator.post(
            f"/batches/{batch_id}/next",
            data={"csrf_token": token_in(annotator.get("/").text)},
            follow_redirects=True,
        )
        assert nothing.status_code == 200
        assert "You are excluded from this batch" in nothing.text
        api = annotator.post(
            f"/api/v1/batches/{batch_id}/next",
            headers={"X-CSRF-Token": token_in(annotator.get("/").text)},
        )
        assert api.status_code == 403 and "you are excluded" in api.json()["detail"]
    finally:
        boss.close()
        annotator.close()
    with live_server.session() as s:
        assert s.get_one(Batch, batch_id).is_open
