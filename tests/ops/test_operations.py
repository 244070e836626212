"""Operating the service: /healthz, /readyz, /metrics (every worker counted) and the JSON
request log, in-process and on the real `safepref serve`."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.auth.service import create_token, create_user
from app.batches.service import add_member, create_batch
from tests.conftest import DatabaseFactory
from tests.support.authkit import csrf_from, logged_in
from tests.support.live_server import app_server, migrated
from tests.support.queue_factory import seed_project, valid_annotation

SECRET = "ops-test-" + uuid.uuid4().hex


def test_healthz_answers_without_the_database(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200


def test_readyz_is_ready_at_the_latest_schema(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_refuses_a_schema_behind_the_code(client: TestClient, db: Session) -> None:
    db.execute(text("UPDATE alembic_version SET version_num = 'an-old-revision'"))
    db.commit()  # a savepoint: the test's transaction rolls it back afterwards
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "not at the latest revision" in response.json()["detail"]


def test_metrics_need_an_admins_token(
    client: TestClient, make_user: Any, admin_headers: dict[str, str]
) -> None:
    assert client.get("/metrics").status_code == 401
    _, annotator = make_user()
    assert client.get("/metrics", headers={"Authorization": f"Bearer {annotator}"}).status_code == (
        403
    )
    # An admin's browser session is not enough: a page could be made to fetch it.
    make_user("ops-admin", "admin")
    logged_in(client, "ops-admin")
    refused = client.get("/metrics")
    assert refused.status_code == 403 and "API token" in refused.json()["detail"]
    client.cookies.clear()
    response = client.get("/metrics", headers=admin_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "safepref_http_request_duration_seconds_bucket" in response.text


def test_a_request_gets_an_id_and_one_json_line(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="safepref.requests"):
        given = client.get("/readyz", headers={"X-Request-ID": "lb-1234"})
        made = client.get("/readyz", headers={"X-Request-ID": "no spaces <allowed>"})
    assert given.headers["x-request-id"] == "lb-1234"
    assert len(made.headers["x-request-id"]) == 32  # a new one instead of the hostile value
    lines = [r for r in caplog.records if r.name == "safepref.requests"]
    assert [getattr(r, "fields", {})["request_id"] for r in lines] == [
        "lb-1234",
        made.headers["x-request-id"],
    ]
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["route"] == "/readyz" and fields["status"] == 200
    assert fields["duration_ms"] >= 0 and fields["user_id"] is None


def test_an_unexpected_error_is_logged_once_and_never_shown(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/api/v1/boom/{n}")
    def boom(n: int) -> None:
        raise RuntimeError(f"secret internals {n}")

    with caplog.at_level(logging.INFO), TestClient(app) as client:
        response = client.get("/api/v1/boom/7", headers={"X-Request-ID": "req-boom"})
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"] == "req-boom"
    errors = [r for r in caplog.records if r.exc_info]
    assert len(errors) == 1
    assert errors[0].fields["route"] == "/api/v1/boom/{n}"  # type: ignore[attr-defined]
    assert errors[0].fields["request_id"] == "req-boom"  # type: ignore[attr-defined]


def _seed(url: str) -> tuple[int, int, str, str]:
    """A batch of 4 items (k=1), an annotator member and an admin: the batch's id, the
    annotator's id, and their tokens."""
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            project, _ = seed_project(session, 4)
            batch = create_batch(session, project, "ops", overlap=1, lease_seconds=600)
            annotator = create_user(session, "ops-ann", "password-123", "annotator")
            admin = create_user(session, "ops-admin", "password-123", "admin")
            add_member(session, batch, annotator)
            tokens = create_token(session, annotator)[1], create_token(session, admin)[1]
            return batch.id, annotator.id, *tokens
    finally:
        engine.dispose()


def _samples(text_format: str, name: str) -> dict[str, float]:
    """{label string: value} of one metric's samples."""
    found: dict[str, float] = {}
    for line in text_format.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key[len(name) :]] = float(value)
    return found


@pytest.mark.live
def test_live_server_counts_every_worker_and_logs_json(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = migrated(databases.new_url())
    batch_id, annotator_id, annotator, admin = _seed(url)
    log_path = tmp_path / "server.log"
    with app_server(url, workers=2, secret=SECRET, log_path=log_path, request_log=True) as base:
        assert httpx.get(f"{base}/readyz").status_code == 200
        # Fresh connections, so that both workers serve some (SO_REUSEPORT spreads them).
        for _ in range(40):
            assert httpx.get(f"{base}/healthz").status_code == 200
        auth = {"Authorization": f"Bearer {annotator}"}
        leased = httpx.post(
            f"{base}/api/v1/batches/{batch_id}/next",
            headers={**auth, "X-Request-ID": "queue-next-1"},
        )
        assert leased.status_code == 200 and leased.headers["x-request-id"] == "queue-next-1"
        progress = httpx.get(
            f"{base}/api/v1/batches/{batch_id}/progress",
            headers={**auth, "X-Request-ID": "progress-1"},
        )
        assert progress.status_code == 200
        body = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {admin}"}).text
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    # The 40 above and the start-up checks of tests/live_server.py.
    health = [line for line in lines if line.get("route") == "/healthz"]
    assert len(health) >= 40
    assert len({line["pid"] for line in health}) == 2  # both workers served some...
    served = _samples(body, "safepref_http_request_duration_seconds_count")
    # ...and the one that answered the scrape counted them all.
    assert served['{method="GET",route="/healthz",status="200"}'] == len(health)
    assert _samples(body, "safepref_queue_operations_total") == {
        '{operation="next",outcome="leased"}': 1.0
    }
    pools = _samples(body, "safepref_db_pool_connections")
    assert pools['{pool="orm",state="open"}'] >= 1
    nexts = [line for line in lines if line.get("request_id") == "queue-next-1"]
    assert len(nexts) == 1
    assert nexts[0]["route"] == "/api/v1/batches/{batch_id}/next"
    assert nexts[0]["status"] == 200 and nexts[0]["duration_ms"] > 0
    [seen] = [line for line in lines if line.get("request_id") == "progress-1"]
    assert seen["user_id"] == annotator_id and seen["level"] == "info"


@pytest.mark.live
def test_the_queue_hot_path_logs_who_called_by_token_and_by_cookie(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    # On PostgreSQL the API's next and submit identify the caller inside the database call and
    # load no User: the log line must still say who it was, for a token and for a cookie.
    url = migrated(databases.new_url())
    batch_id, annotator_id, annotator, _ = _seed(url)
    log_path = tmp_path / "server.log"
    with app_server(url, workers=1, secret=SECRET, log_path=log_path, request_log=True) as base:
        by_token = {"Authorization": f"Bearer {annotator}"}
        with httpx.Client(base_url=base, timeout=30) as browser:
            form = browser.get("/login")
            signed_in = browser.post(
                "/login",
                data={
                    "username": "ops-ann",
                    "password": "password-123",
                    "next": "/",
                    "csrf_token": csrf_from(form.text),
                },
            )
            assert signed_in.status_code == 303, signed_in.text
            by_cookie = {"X-CSRF-Token": csrf_from(browser.get("/account/password").text)}
            for who, client, headers in (
                ("token", httpx.Client(base_url=base, timeout=30), by_token),
                ("cookie", browser, by_cookie),
            ):
                leased = client.post(
                    f"/api/v1/batches/{batch_id}/next",
                    headers={**headers, "X-Request-ID": f"next-{who}"},
                )
                assert leased.status_code == 200, leased.text
                lease = leased.json()
                ids = sorted(r["id"] for r in lease["item"]["responses"])
                submitted = client.put(
                    f"/api/v1/assignments/{lease['assignment_id']}/annotation",
                    json=valid_annotation(ids),
                    headers={**headers, "X-Request-ID": f"submit-{who}"},
                )
                assert submitted.status_code == 200, submitted.text
            refused = browser.post(
                f"/api/v1/batches/{batch_id + 1000}/next",
                headers={**by_cookie, "X-Request-ID": "next-refused"},
            )
            assert refused.status_code == 404
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    by_id = {line.get("request_id"): line for line in lines}
    for request_id in ("next-token", "submit-token", "next-cookie", "submit-cookie"):
        assert by_id[request_id]["status"] == 200
        assert by_id[request_id]["user_id"] == annotator_id, request_id
    # A refusal is logged with the caller too (the database knew who asked).
    assert by_id["next-refused"]["user_id"] == annotator_id
