"""The annotation page with suggestions from two origins, without JavaScript: a button per
origin, content only once sent, each origin's view recorded by the server."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.batches.models import Assignment, BatchItem
from app.items.models import ReferenceLabel
from app.suggestions.models import SuggestionView
from app.suggestions.viewed import origins_viewed
from tests.annotations.test_annotation_pages import good_form, lease, seed, shown_ids, stored

ANALYSIS = (
    "**Response 0** gives *steps*.\n\n[bad](javascript:alert(1)) [ok](https://example.org) "
    "<script>alert(1)</script>"
)


def second_origin(db: Session, batch_id: int) -> None:
    """Adds origin "judge" (with confidence and analysis) to every item of the batch."""
    item_ids = db.scalars(select(BatchItem.item_id).where(BatchItem.batch_id == batch_id))
    for item_id in item_ids:
        payload = {
            "responses": [
                {"position": 0, "is_safe": True, "harm_categories": [], "severity": None},
                {"position": 1, "is_safe": True, "harm_categories": [], "severity": None},
            ]
        }
        db.add(
            ReferenceLabel(
                item_id=item_id, origin="judge", payload=payload, confidence=0.75, analysis=ANALYSIS
            )
        )
    db.commit()


def viewed(db: Session, assignment_id: int) -> list[str]:
    db.expire_all()
    return origins_viewed(db, [assignment_id]).get(assignment_id, [])


def buttons(html: str) -> list[str]:
    return re.findall(r'<button[^>]*class="secondary suggestion-show"[^>]*value="([^"]+)"', html)


def test_two_origins_each_sent_and_recorded_on_request(
    client: TestClient, db: Session, make_user: Any, admin_headers: dict[str, str]
) -> None:
    world = seed(db, make_user, show_suggestions=True)
    second_origin(db, world.batch.id)
    aid = lease(client, world)
    html = client.get(f"/assignments/{aid}", headers=world.headers).text
    assert buttons(html) == ["test", "judge"]
    assert 'id="suggestion-body"' not in html and "gives <em>steps</em>" not in html
    assert viewed(db, aid) == []

    # Without script: the button posts the whole form to the suggestion URL.
    ids = shown_ids(html)
    partial = {f"r{ids[0]}_safe": "unsafe", "origin": "judge"}
    r = client.post(f"/assignments/{aid}/suggestion", data=partial, headers=world.headers)
    assert r.status_code == 200, r.text
    assert viewed(db, aid) == ["judge"]
    html = r.text
    assert 'data-origin="judge"' in html and 'data-origin="test"' not in html
    assert "confidence 75%" in html
    # The analysis is Markdown with raw HTML escaped and javascript: links not made links.
    assert "<strong>Response 0</strong> gives <em>steps</em>" in html
    assert 'href="https://example.org"' in html and 'href="javascript:' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(rf'name="r{ids[0]}_safe" value="unsafe"[^>]*checked', html)  # kept
    assert buttons(html) == ["test"]

    # With htmx: only the suggestions fragment comes back, both origins now shown.
    r = client.post(
        f"/assignments/{aid}/suggestion",
        data={"origin": "test"},
        headers={**world.headers, "HX-Request": "true"},
    )
    assert r.status_code == 200
    assert "<html" not in r.text and 'data-origin="test"' in r.text
    assert 'data-origin="judge"' in r.text and buttons(r.text) == []
    assert viewed(db, aid) == ["judge", "test"]

    # Submitting records the flag on the annotation; the origins stay with the assignment.
    r = client.post(f"/assignments/{aid}", data=good_form(ids), headers=world.headers)
    assert r.status_code in (200, 303)
    assert stored(db, aid).suggestion_viewed is True
    assert viewed(db, aid) == ["judge", "test"]
    # ... and the annotations export says which.
    r = client.get(
        "/api/v1/exports/annotations", params={"batch_id": world.batch.id}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    rows = [json.loads(line) for line in r.text.splitlines() if line]
    assert [row["suggestion_origins_viewed"] for row in rows] == [["judge", "test"]]


def test_one_origin_viewed_leaves_the_other_unsent(
    client: TestClient, db: Session, make_user: Any
) -> None:
    world = seed(db, make_user, show_suggestions=True)
    second_origin(db, world.batch.id)
    aid = lease(client, world)
    ids = shown_ids(client.get(f"/assignments/{aid}", headers=world.headers).text)
    # No origin named: the first one not yet shown.
    r = client.post(f"/assignments/{aid}/suggestion", data={}, headers=world.headers)
    assert r.status_code == 200 and viewed(db, aid) == ["test"]
    r = client.post(
        f"/assignments/{aid}", data=good_form(ids), headers=world.headers, follow_redirects=False
    )
    assert r.status_code == 303
    assert viewed(db, aid) == ["test"]
    # Reopened for revision: the viewed origin is shown, the other still only offered.
    html = client.get(f"/assignments/{aid}", headers=world.headers).text
    assert 'data-origin="test"' in html and 'data-origin="judge"' not in html
    assert buttons(html) == ["judge"]


def test_unknown_origin_and_someone_elses_assignment(
    client: TestClient, db: Session, make_user: Any
) -> None:
    world = seed(db, make_user, show_suggestions=True)
    aid = lease(client, world)
    r = client.post(
        f"/assignments/{aid}/suggestion", data={"origin": "nope"}, headers=world.headers
    )
    assert r.status_code == 404 and "nope" in r.text
    r = client.post(
        f"/assignments/{aid}/suggestion", data={"origin": "test"}, headers=world.other_headers
    )
    assert r.status_code == 404
    db.expire_all()
    assert db.scalars(select(SuggestionView)).first() is None
    assignment = db.get(Assignment, aid)
    assert assignment is not None and assignment.suggestion_viewed is False
