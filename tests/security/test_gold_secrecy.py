"""Gold items cannot be told from ordinary ones, and their answer keys cannot be reached.

A batch in which any item has an answer key (gold here or in another batch) shows no model
suggestion on any item; elsewhere a suggestion is sent only when the annotator asks for it,
and the server records that it was sent. Both backends (the `backend` fixture).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.auth.models import User
from app.batches.models import Assignment, Batch
from app.batches.service import add_member, create_batch
from app.dashboard.gold import mark_gold
from app.items.models import ReferenceLabel
from tests.support.queue_factory import seed_project

# A reference label with a severity and a category, rendered by a suggestion as
# "unsafe (moderate): Cybercrime".
REFERENCE = {
    "responses": [
        {
            "position": 0,
            "is_safe": False,
            "harm_categories": ["Cybercrime"],
            "severity": "moderate",
        },
        {"position": 1, "is_safe": True, "harm_categories": [], "severity": None},
    ],
    "helpfulness": [1, 0],
    "harmlessness": [1, 0],
}
KEY_AS_SHOWN = "unsafe (moderate): Cybercrime"


@dataclass
class Setting:
    gold_batch: Batch
    other_batch: Batch  # the same items, none marked gold here
    plain_batch: Batch  # an item without any answer key
    gold_item: int
    ordinary_item: int
    plain_item: int
    headers: dict[str, str]


def setting(db: Session, make_user: Any) -> Setting:
    project, (gold_item, ordinary_item, plain_item) = seed_project(db, 3, show_suggestions=True)
    for item_id in (gold_item, ordinary_item, plain_item):
        db.add(ReferenceLabel(item_id=item_id, origin="ref", payload=REFERENCE))
    admin, _ = make_user(role="admin")
    annotator, token = make_user()
    gold_batch = create_batch(db, project, "first", overlap=1, item_ids=[gold_item, ordinary_item])
    other_batch = create_batch(db, project, "other", overlap=1, item_ids=[gold_item, ordinary_item])
    plain_batch = create_batch(db, project, "plain", overlap=1, item_ids=[plain_item])
    assert isinstance(admin, User) and isinstance(annotator, User)
    mark_gold(db, gold_batch, gold_item, admin)  # the key is the reference label
    gold_batch.gold_rate = 1.0
    for batch in (gold_batch, other_batch, plain_batch):
        add_member(db, batch, annotator)
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}
    return Setting(
        gold_batch, other_batch, plain_batch, gold_item, ordinary_item, plain_item, headers
    )


def shape(html: str) -> list[str]:
    """The page's tags and attributes with text and numbers taken out."""
    tags = re.findall(r"<[^>]+>", html)
    return [re.sub(r"\d+", "0", tag) for tag in tags]


def draw_all(
    client: TestClient, batch: Batch, headers: dict[str, str]
) -> dict[int, dict[str, Any]]:
    """Every item the annotator gets from the batch: the API's answer, the page, what asking
    for a suggestion answers (while the item is still leased), then a skip to move on."""
    seen: dict[int, dict[str, Any]] = {}
    while True:
        r = client.post(f"/api/v1/batches/{batch.id}/next", headers=headers)
        if r.status_code == 204:
            return seen
        assert r.status_code == 200, r.text
        body = r.json()
        aid = body["assignment_id"]
        page = client.get(f"/assignments/{aid}", headers=headers)
        fragment = client.get(f"/assignments/{aid}", headers={**headers, "HX-Request": "true"})
        api = client.get(f"/api/v1/assignments/{aid}", headers=headers)
        asked = client.post(f"/assignments/{aid}/suggestion", headers=headers)
        seen[body["item"]["id"]] = {
            "next": r,
            "page": page,
            "fragment": fragment,
            "api": api,
            "asked": asked,
        }
        skipped = client.post(f"/api/v1/assignments/{aid}/skip", headers=headers, json={})
        assert skipped.status_code == 200, skipped.text


def test_gold_and_ordinary_items_look_the_same_and_the_key_is_never_sent(
    client: TestClient, db: Session, make_user: Any
) -> None:
    s = setting(db, make_user)
    in_gold = draw_all(client, s.gold_batch, s.headers)
    assert set(in_gold) == {s.gold_item, s.ordinary_item}
    gold, ordinary = in_gold[s.gold_item], in_gold[s.ordinary_item]
    assert gold["page"].status_code == ordinary["page"].status_code == 200
    # Same structure: the same elements with the same attributes, only texts and ids differ.
    assert shape(gold["page"].text) == shape(ordinary["page"].text)
    assert shape(gold["fragment"].text) == shape(ordinary["fragment"].text)
    assert sorted(gold["next"].json()) == sorted(ordinary["next"].json())
    assert sorted(gold["api"].json()) == sorted(ordinary["api"].json())

    # The same items in a batch where neither is gold: the key is still not handed out.
    in_other = draw_all(client, s.other_batch, s.headers)
    assert set(in_other) == {s.gold_item, s.ordinary_item}
    for seen in (gold, ordinary, *in_other.values()):
        assert seen["asked"].status_code == 404
        for name in ("next", "page", "fragment", "api", "asked"):
            text = seen[name].text
            assert KEY_AS_SHOWN not in text and "suggestion-body" not in text
            assert "gold" not in text.lower()
        assert 'class="suggestion"' not in seen["page"].text

    # An item with no answer key anywhere still offers its suggestion (the rule is not
    # "suggestions are broken"), and sends it when asked.
    plain = draw_all(client, s.plain_batch, s.headers)[s.plain_item]
    assert 'id="suggestion-button"' in plain["page"].text
    assert KEY_AS_SHOWN not in plain["page"].text
    assert plain["asked"].status_code == 200 and KEY_AS_SHOWN in plain["asked"].text


def test_annotator_reaches_no_answer_key_through_other_routes(
    client: TestClient, db: Session, make_user: Any
) -> None:
    s = setting(db, make_user)
    b = s.gold_batch.id
    urls = [
        f"/batches/{b}/gold",
        f"/batches/{b}/gold-key",
        f"/batches/{b}/gold/{s.gold_item}",
        f"/api/v1/batches/{b}/gold",
        f"/api/v1/items/{s.gold_item}",
        f"/api/v1/projects/{s.gold_batch.project_id}/items",
        f"/batches/{b}/disagreements/{s.gold_item}",
        f"/api/v1/batches/{b}/items/{s.gold_item}/consensus",
        f"/api/v1/batches/{b}/items/{s.gold_item}/adjudication",
        f"/batches/{b}/dashboard",
        f"/api/v1/batches/{b}",
        f"/batches/{b}",
    ]
    for url in urls:
        r = client.get(url, headers=s.headers)
        assert r.status_code < 500, url
        assert KEY_AS_SHOWN not in r.text and "Cybercrime" not in r.text, url
        if r.status_code == 200:
            assert '"harm_categories"' not in r.text, url


def good_form(ids: list[int]) -> dict[str, str]:
    """A complete answer: the first shown response unsafe, the others safe and ranked first."""
    first, *rest = ids
    form = {f"r{first}_safe": "unsafe", f"r{first}_cat": "Cybercrime", f"r{first}_sev": "minor"}
    for rid in rest:
        form[f"r{rid}_safe"] = "safe"
    form["helpfulness_1"] = str(first)
    form["harmlessness_1"] = str(rest[0])
    form["rationale"] = "because"
    return form


def shown_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'class="answer[^"]*"[^>]*data-response="(\d+)"', html)]


def viewed(db: Session, aid: int) -> tuple[bool, bool | None]:
    db.expire_all()
    assignment = db.get(Assignment, aid)
    assert assignment is not None
    annotation = db.scalars(select(Annotation).where(Annotation.assignment_id == aid)).first()
    return assignment.suggestion_viewed, annotation.suggestion_viewed if annotation else None


def lease(client: TestClient, batch: Batch, headers: dict[str, str]) -> int:
    r = client.post(f"/api/v1/batches/{batch.id}/next", headers=headers)
    assert r.status_code == 200, r.text
    return int(r.json()["assignment_id"])


def test_suggestion_is_sent_and_recorded_only_when_opened_without_script(
    client: TestClient, db: Session, make_user: Any
) -> None:
    s = setting(db, make_user)
    aid = lease(client, s.plain_batch, s.headers)
    page = client.get(f"/assignments/{aid}", headers=s.headers).text
    assert KEY_AS_SHOWN not in page and 'id="suggestion-body"' not in page
    # Opening the page, and claiming it in the form, record nothing.
    ids = shown_ids(page)
    assert len(ids) == 2
    assert viewed(db, aid) == (False, None)

    # The button posts the annotation form: the answers given so far come back with it.
    partial = {f"r{ids[0]}_safe": "unsafe", f"r{ids[0]}_sev": "severe"}
    r = client.post(f"/assignments/{aid}/suggestion", data=partial, headers=s.headers)
    assert r.status_code == 200
    assert 'id="suggestion-body"' in r.text and KEY_AS_SHOWN in r.text
    assert re.search(rf'name="r{ids[0]}_safe" value="unsafe"[^>]*checked', r.text)
    assert re.search(rf'name="r{ids[0]}_sev" value="severe"[^>]*checked', r.text)
    assert 'id="suggestion-button"' not in r.text
    assert viewed(db, aid) == (True, None)

    # Submitted without any claim from the page: the annotation carries the record.
    r = client.post(f"/assignments/{aid}", data=good_form(ids), headers=s.headers)
    assert r.status_code in (200, 303), r.text
    assert viewed(db, aid) == (True, True)
    # Reopened later: shown open, not offered again.
    again = client.get(f"/assignments/{aid}", headers=s.headers).text
    assert KEY_AS_SHOWN in again and 'id="suggestion-button"' not in again


def test_suggestion_fragment_for_htmx_records_the_view_of_a_submitted_item(
    client: TestClient, db: Session, make_user: Any
) -> None:
    s = setting(db, make_user)
    aid = lease(client, s.plain_batch, s.headers)
    ids = shown_ids(client.get(f"/assignments/{aid}", headers=s.headers).text)
    form = {**good_form(ids), "suggestion_viewed": "1"}  # an old page's field: ignored
    r = client.post(f"/assignments/{aid}", data=form, headers=s.headers)
    assert r.status_code in (200, 303), r.text
    assert viewed(db, aid) == (False, False)
    revising = client.get(f"/assignments/{aid}", headers=s.headers).text
    assert 'id="suggestion-button"' in revising and KEY_AS_SHOWN not in revising

    r = client.post(f"/assignments/{aid}/suggestion", headers={**s.headers, "HX-Request": "true"})
    assert r.status_code == 200
    assert r.text.lstrip().startswith("{#") is False and "<html" not in r.text
    assert 'id="suggestion-body"' in r.text and KEY_AS_SHOWN in r.text
    assert viewed(db, aid) == (True, True)


def test_another_annotators_assignment_gives_no_suggestion(
    client: TestClient, db: Session, make_user: Any
) -> None:
    s = setting(db, make_user)
    aid = lease(client, s.plain_batch, s.headers)
    _, token = make_user()
    r = client.post(f"/assignments/{aid}/suggestion", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code in (403, 404)
    assert KEY_AS_SHOWN not in r.text
    assert viewed(db, aid) == (False, None)
