"""The API's `next` and submit as deployed: a live server, with no session override, so that
on PostgreSQL they run on the hot path (HotPool in app/queue/postgres.py: the queue's
functions called from the event loop in autocommit mode). The in-process tests cannot
reach that path: they see their data only through the overriding session. SQLite runs the
same checks against its Python implementation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from app.batches.models import Batch
from tests.conftest import DatabaseFactory
from tests.queue.test_queue_concurrency import migrated
from tests.support.live_server import app_server
from tests.support.queue_factory import valid_annotation
from tests.support.queue_load import seed

SECRET = "hot-path-" + uuid.uuid4().hex


def _set_open(url: str, batch_id: int, is_open: bool) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(update(Batch).where(Batch.id == batch_id).values(is_open=is_open))
    engine.dispose()


@pytest.mark.live
def test_next_and_submit_rules_hold_on_a_live_server(databases: DatabaseFactory) -> None:
    url = migrated(databases.new_url())
    seeded = seed(url, items=3, overlap=1, annotators=2, lease_seconds=600)
    batch = seeded.batch_id
    with app_server(url, workers=1, secret=SECRET) as base:

        def call(method: str, path: str, token: str | None, body: Any = None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.request(method, f"{base}{path}", headers=headers, json=body, timeout=30)

        alice, bob = seeded.tokens
        # Who is calling, checked by the same call that leases.
        assert call("POST", f"/api/v1/batches/{batch}/next", None).status_code == 401
        assert call("POST", f"/api/v1/batches/{batch}/next", "nope").status_code == 401
        missing = call("POST", f"/api/v1/batches/{batch + 1000}/next", alice)
        assert missing.status_code == 404 and "no batch" in missing.json()["detail"]
        assert call("POST", f"/api/v1/batches/{2**63}/next", alice).status_code == 422

        first = call("POST", f"/api/v1/batches/{batch}/next", alice)
        assert first.status_code == 200, first.text
        lease = first.json()
        assert lease["resumed"] is False and lease["batch_id"] == batch
        ids = [r["id"] for r in lease["item"]["responses"]]
        assert len(ids) == 2 and all(r["text"] for r in lease["item"]["responses"])
        again = call("POST", f"/api/v1/batches/{batch}/next", alice).json()
        assert again["assignment_id"] == lease["assignment_id"] and again["resumed"] is True

        path = f"/api/v1/assignments/{lease['assignment_id']}/annotation"
        body = valid_annotation(sorted(ids))
        # Another annotator's assignment does not exist for them.
        assert call("PUT", path, bob, body).status_code == 404
        wrong = {**body, "helpfulness": sorted(ids)[:1]}
        refused = call("PUT", path, alice, wrong)
        assert refused.status_code == 422 and refused.json()["detail"].startswith("helpfulness")

        created = call("PUT", path, alice, body)
        assert created.status_code == 200, created.text
        stored = created.json()
        assert stored["outcome"] == "created" and stored["revision"] == 1
        assert stored["payload"]["helpfulness"] == body["helpfulness"]
        repeat = call("PUT", path, alice, body).json()
        assert repeat["outcome"] == "unchanged" and repeat["revision"] == 1
        changed = call("PUT", path, alice, valid_annotation(sorted(ids), flip=True)).json()
        assert changed["outcome"] == "revised" and changed["revision"] == 2
        assert changed["annotation_id"] == stored["annotation_id"]

        # Overlap 1: the submitted item never comes back; the other two do, then 204.
        seen = {lease["item"]["id"]}
        for token in (alice, bob):
            got = call("POST", f"/api/v1/batches/{batch}/next", token).json()
            assert got["item"]["id"] not in seen
            seen.add(got["item"]["id"])
            done = f"/api/v1/assignments/{got['assignment_id']}/annotation"
            ids = sorted(r["id"] for r in got["item"]["responses"])
            assert call("PUT", done, token, valid_annotation(ids)).status_code == 200
        assert call("POST", f"/api/v1/batches/{batch}/next", alice).status_code == 204

        _set_open(url, batch, False)
        closed = call("POST", f"/api/v1/batches/{batch}/next", alice)
        assert closed.status_code == 409 and "closed" in closed.json()["detail"]
        assert call("PUT", path, alice, body).status_code == 409
