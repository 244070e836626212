"""The review API and the batch's review settings, in-process on both backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.batches.service import add_member
from app.reviews.models import Review
from tests.support.review_factory import annotate, world

MakeUser = Callable[..., tuple[Any, str]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_batch_takes_review_rate_and_minimum_time(
    db: Session, client: TestClient, admin_headers: dict[str, str]
) -> None:
    batch, _ = world(db, 1, 1)
    url = f"/api/v1/batches/{batch.id}"
    ok = client.patch(url, json={"review_rate": 0.2, "min_seconds": 4.5}, headers=admin_headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["review_rate"] == 0.2 and ok.json()["min_seconds"] == 4.5
    # Leaving min_seconds out keeps it; null turns the flag off.
    assert client.patch(url, json={"name": "x"}, headers=admin_headers).json()["min_seconds"] == 4.5
    off = client.patch(url, json={"min_seconds": None}, headers=admin_headers)
    assert off.json()["min_seconds"] is None and off.json()["review_rate"] == 0.2
    for bad in ({"review_rate": 1.5}, {"review_rate": -0.1}, {"min_seconds": -1}):
        refused = client.patch(url, json=bad, headers=admin_headers)
        assert refused.status_code == 422 and next(iter(bad)) in refused.text
    db.refresh(batch)
    assert batch.review_rate == 0.2 and batch.min_seconds is None


def test_next_and_decide_shapes_and_refusals(
    db: Session, client: TestClient, make_user: MakeUser, admin_headers: dict[str, str]
) -> None:
    batch, (annotator,) = world(db, 2, 1, overlap=1)
    batch.review_rate = 1.0
    annotation = annotate(db, batch, annotator)
    reviewer, token = make_user(role="reviewer")
    add_member(db, batch, reviewer)
    _, annotator_token = make_user(role="annotator")
    _, outsider_token = make_user(role="reviewer")
    db.commit()
    url = f"/api/v1/batches/{batch.id}/reviews/next"

    assert client.post(url, headers=bearer(annotator_token)).status_code == 403
    assert client.post(url, headers=bearer(outsider_token)).status_code == 404

    got = client.post(url, headers=bearer(token))
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["reason"] == "spot_check"
    shown = body["annotation"]
    assert shown["item_id"] == annotation.item_id
    assert shown["assignment_id"] == annotation.assignment_id
    assert shown["annotator"].startswith("a-") and shown["annotator"] != annotator.username
    assert shown["helpfulness"] == annotation.payload["helpfulness"]
    assert shown["responses"] == annotation.payload["responses"]
    assert client.post(url, headers=bearer(token)).json()["review_id"] == body["review_id"]

    decide = f"/api/v1/reviews/{body['review_id']}"
    # Someone else's review is not found; bad bodies name the field; nothing is recorded.
    assert (
        client.put(decide, json={"decision": "accept"}, headers=bearer(outsider_token)).status_code
        == 404
    )
    for bad, field in (
        ({"decision": "maybe"}, "decision"),
        ({"decision": "reject"}, "note"),
        ({"decision": "reject", "note": "   "}, "note"),
        ({"decision": "accept", "note": "x" * 2001}, "note"),
        ({"decision": "accept", "extra": 1}, "extra"),
    ):
        refused = client.put(decide, json=bad, headers=bearer(token))
        assert refused.status_code == 422 and field in refused.text, (bad, refused.text)
    assert db.get_one(Review, body["review_id"]).status == "leased"

    done = client.put(
        decide, json={"decision": "reject", "note": "B is unsafe"}, headers=bearer(token)
    )
    assert done.status_code == 200
    assert done.json() == {
        "review_id": body["review_id"],
        "status": "rejected",
        "note": "B is unsafe",
        "annotation_id": annotation.id,
        "revision": 1,
    }
    again = client.put(decide, json={"decision": "accept"}, headers=bearer(token))
    assert again.status_code == 409 and "already decided" in again.text
    assert client.post(url, headers=bearer(token)).status_code == 204
    assert (
        client.post("/api/v1/batches/999999/reviews/next", headers=bearer(token)).status_code == 404
    )

    # The dashboard shows the outcome per annotator (one decision: returned).
    page = client.get(f"/batches/{batch.id}/dashboard", headers=admin_headers)
    assert page.status_code == 200
    row = page.text.split('id="review-outcomes"', 1)[1].split(
        f'data-annotator="{annotator.username}"', 1
    )[1]
    cells = [c.split("</td>")[0].rsplit(">", 1)[-1] for c in row.split("<td")[2:6]]
    assert cells == ["1", "0%", "1", "0"]


def test_batch_page_sets_the_review_settings(
    db: Session, client: TestClient, make_user: MakeUser
) -> None:
    from tests.support.authkit import logged_in

    batch, _ = world(db, 1, 1)
    admin, _ = make_user(role="admin")
    db.commit()
    csrf = logged_in(client, admin.username)
    url = f"/batches/{batch.id}/review-settings"
    saved = client.post(
        url,
        data={"review_percent": "12.5", "min_seconds": "8", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    db.refresh(batch)
    assert batch.review_rate == 0.125 and batch.min_seconds == 8
    page = client.get(f"/batches/{batch.id}")
    assert 'name="review_percent"' in page.text and 'value="12.5"' in page.text
    for bad in ({"review_percent": "150"}, {"review_percent": "5", "min_seconds": "nan"}):
        refused = client.post(url, data={**bad, "csrf_token": csrf}, follow_redirects=False)
        assert refused.status_code == 422, refused.text
        assert ("min_seconds" if "min_seconds" in bad else "review_percent") in refused.text
    off = client.post(
        url,
        data={"review_percent": "0", "min_seconds": "", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert off.status_code == 303
    db.refresh(batch)
    assert batch.review_rate == 0 and batch.min_seconds is None
