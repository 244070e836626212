"""The work report (JSON, CSV, page): figures checked against values computed by hand."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.auth.models import User
from app.batches.models import Batch
from app.batches.service import add_member, create_batch
from tests.support.htmlkit import parse
from tests.support.queue_factory import response_ids, seed_project, valid_annotation

MakeUser = Callable[..., tuple[Any, str]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def answer(
    client: TestClient, db: Session, batch: Batch, headers: dict[str, str], duration_ms: int | None
) -> dict[str, Any]:
    lease = client.post(f"/api/v1/batches/{batch.id}/next", headers=headers).json()
    body = {**valid_annotation(response_ids(db, lease["item"]["id"])), "duration_ms": duration_ms}
    r = client.put(
        f"/api/v1/assignments/{lease['assignment_id']}/annotation", json=body, headers=headers
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def skip(client: TestClient, batch: Batch, headers: dict[str, str]) -> None:
    lease = client.post(f"/api/v1/batches/{batch.id}/next", headers=headers).json()
    r = client.post(f"/api/v1/assignments/{lease['assignment_id']}/skip", headers=headers)
    assert r.status_code == 200


def campaign(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> tuple[Batch, User, User, User]:
    """alice: 10 s, 20 s and 60 s, then a revision of the first adding 5 s, and one skip;
    bob (whose username a spreadsheet would run as a formula): 5 s, 7 s and one without a
    duration, then excluded; carol: a member who did nothing."""
    project, _ = seed_project(db, 8)
    batch = create_batch(db, project, "pay", overlap=3)
    alice, alice_t = make_user("alice")
    bob, bob_t = make_user("-1-1")
    carol, _ = make_user("carol")
    for user in (alice, bob, carol):
        add_member(db, batch, user)
    db.commit()
    a, b = bearer(alice_t), bearer(bob_t)
    first = answer(client, db, batch, a, 10_000)
    answer(client, db, batch, a, 20_000)
    answer(client, db, batch, a, 60_000)
    ids = response_ids(db, first["item_id"])
    revised = {**valid_annotation(ids, flip=True), "duration_ms": 5_000}
    r = client.put(
        f"/api/v1/assignments/{first['assignment_id']}/annotation", json=revised, headers=a
    )
    assert r.json()["outcome"] == "revised"
    skip(client, batch, a)
    for duration in (5_000, 7_000, None):
        answer(client, db, batch, b, duration)
    r = client.post(
        f"/api/v1/batches/{batch.id}/members/{bob.username}/exclude", headers=admin_headers
    )
    assert r.status_code == 200
    return batch, alice, bob, carol


def test_json_figures_match_hand_computed_values(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, alice, bob, carol = campaign(client, db, make_user, admin_headers)
    r = client.get(f"/api/v1/batches/{batch.id}/work-report", headers=admin_headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    rows = {row["username"]: row for row in r.json()}
    assert list(rows) == sorted([alice.username, bob.username, carol.username])
    # alice: durations 15 s (10 + the revision's 5), 20 s, 60 s.
    assert rows["alice"] == {
        "username": "alice",
        "submitted": 3,
        "skipped": 1,
        "active_seconds": 95.0,
        "median_seconds": 20.0,
        "gold_accuracy": None,
        "gold_answers": 0,
        "excluded": False,
        "excluded_annotations": 0,
        "qualification": None,
        "reviews_accepted": 0,
        "reviews_returned": 0,
        "reviews_excluded": 0,
    }
    # bob: 5 s and 7 s (the third had no duration); excluded, his 3 answers no longer counted.
    assert rows[bob.username] | {"username": None} == {
        "username": None,
        "submitted": 3,
        "skipped": 0,
        "active_seconds": 12.0,
        "median_seconds": 6.0,
        "gold_accuracy": None,
        "gold_answers": 0,
        "excluded": True,
        "excluded_annotations": 3,
        "qualification": None,
        "reviews_accepted": 0,
        "reviews_returned": 0,
        "reviews_excluded": 0,
    }
    assert rows["carol"]["submitted"] == 0 and rows["carol"]["median_seconds"] is None
    assert rows["carol"]["active_seconds"] == 0.0


def test_csv_has_a_header_row_the_same_figures_and_no_formulas(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, *_ = campaign(client, db, make_user, admin_headers)
    r = client.get(
        f"/api/v1/batches/{batch.id}/work-report",
        params={"format": "csv"},
        headers=admin_headers,
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0] == [
        "username",
        "submitted",
        "skipped",
        "active_seconds",
        "median_seconds",
        "gold_accuracy",
        "gold_answers",
        "excluded",
        "excluded_annotations",
        "qualification",
        "reviews_accepted",
        "reviews_returned",
        "reviews_excluded",
    ]
    body = {row[0]: row[1:] for row in table[1:]}
    # The formula-looking username is written as text, behind an apostrophe.
    assert set(body) == {"'-1-1", "alice", "carol"}
    tail = ["", "0", "0", "0"]  # no qualification asked, no reviews
    assert body["alice"] == ["3", "1", "95.0", "20.0", "", "0", "false", "0", *tail]
    assert body["'-1-1"] == ["3", "0", "12.0", "6.0", "", "0", "true", "3", *tail]
    assert body["carol"] == ["0", "0", "0.0", "", "", "0", "false", "0", *tail]


def test_bad_format_and_callers_are_refused(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, _alice, *_ = campaign(client, db, make_user, admin_headers)
    url = f"/api/v1/batches/{batch.id}/work-report"
    r = client.get(url, params={"format": "xlsx"}, headers=admin_headers)
    assert r.status_code == 422 and "format" in r.text
    _, token = make_user()
    assert client.get(url, headers=bearer(token)).status_code == 403
    assert (
        client.get("/api/v1/batches/999999/work-report", headers=admin_headers).status_code == 404
    )


def test_the_page_lists_everyone_with_a_csv_link(
    client: TestClient, db: Session, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, _alice, bob, _carol = campaign(client, db, make_user, admin_headers)
    page = parse(client.get(f"/batches/{batch.id}/work-report", headers=admin_headers).text)
    rows = [tr.cells() for tr in page.one("table", id="work-report").find_all("tr")][1:]
    by_name = {cells[0]: cells for cells in rows}
    assert set(by_name) == {"alice", bob.username, "carol"}
    assert by_name["alice"][1:5] == ["3", "1", "0:01:35", "20.0 s"]
    assert by_name[bob.username][7] == "yes"
    link = page.one("a", id="work-report-csv")
    assert link.attrs["href"] == f"/api/v1/batches/{batch.id}/work-report?format=csv"
