"""Gold items: marking them (reference labels, the page form, the API), and keeping their
answers out of agreement, the disagreement list and exports."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.batches.models import Batch, BatchItem
from app.items.models import GoldLabel, ReferenceLabel
from tests.support.consensus_factory import SAFE, annotate, build, payload, unsafe, user
from tests.support.dashboard_factory import GOLD_KEY
from tests.support.htmlkit import parse

REFERENCE = {
    "responses": [
        {
            "position": 0,
            "is_safe": False,
            "harm_categories": ["Privacy Violation"],
            "severity": "minor",
        },
        {"position": 1, "is_safe": True, "harm_categories": [], "severity": None},
    ],
    "helpfulness": [0, 1],
    "harmlessness": [1, 0],
}


def gold_flags(db: Session, batch_id: int) -> dict[int, bool]:
    rows = db.query(BatchItem).filter(BatchItem.batch_id == batch_id).all()
    return {row.item_id: row.is_gold for row in rows}


def test_mark_items_gold_with_their_reference_labels(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 3)
    a, b, c = built.items
    for item in (a, b):
        db.add(ReferenceLabel(item_id=item.id, origin="pku", payload=REFERENCE))
    db.flush()
    url = f"/batches/{built.batch.id}/gold"
    page = parse(client.get(url, headers=admin_headers).text)
    # The item table offers a and b (they have a reference label); c needs a key by hand.
    boxes = {
        int(box.attrs["value"]): box
        for box in page.find_all("input", name="item_id", type="checkbox")
    }
    assert sorted(boxes) == [a.id, b.id, c.id]
    assert [i for i, box in boxes.items() if "disabled" in box.attrs] == [c.id]

    # c has no reference label: refused, and a is not marked either.
    r = client.post(url, data={"item_ids": f"{a.id} {c.id}"}, headers=admin_headers)
    assert r.status_code == 422 and f"item {c.id} has no reference label" in r.text
    db.expire_all()
    assert not any(gold_flags(db, built.batch.id).values())

    r = client.post(
        url, data={"item_ids": f"{a.id}, {b.id}"}, headers=admin_headers, follow_redirects=False
    )
    assert r.status_code == 303
    db.expire_all()
    assert gold_flags(db, built.batch.id) == {a.id: True, b.id: True, c.id: False}
    key = db.get(GoldLabel, a.id)
    assert key is not None and key.payload == REFERENCE
    listed = parse(client.get(url, headers=admin_headers).text)
    assert [int(tr.attrs["data-item"]) for tr in listed.find_all("tr", data_item=None)] == [
        a.id,
        b.id,
    ]

    r = client.post(f"{url}/{a.id}/remove", headers=admin_headers, follow_redirects=False)
    assert r.status_code == 303
    db.expire_all()
    assert gold_flags(db, built.batch.id)[a.id] is False
    assert db.get(GoldLabel, a.id) is not None  # the key is kept for later


def test_answer_key_entered_on_the_page_is_stored_by_position(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 2, reversed_ids=True)  # item 1's ids run against its positions
    item = built.items[1]
    ids = built.ids(item)  # by position
    assert ids[0] > ids[1]
    url = f"/batches/{built.batch.id}/gold/{item.id}"
    assert client.get(url, headers=admin_headers).status_code == 200
    form = {
        f"r{ids[0]}_safe": "unsafe",
        f"r{ids[0]}_sev": "moderate",
        f"r{ids[0]}_cat": ["Violence", "Cybercrime"],
        f"r{ids[1]}_safe": "safe",
        "helpfulness_1": str(ids[0]),
        "helpfulness_2": str(ids[1]),
        "harmlessness_1": str(ids[0]),  # the unsafe one first: refused
        "harmlessness_2": str(ids[1]),
    }
    r = client.post(url, data=form, headers=admin_headers)
    assert r.status_code == 422 and "only safe response" in r.text
    assert db.get(GoldLabel, item.id) is None

    form["harmlessness_1"], form["harmlessness_2"] = str(ids[1]), str(ids[0])
    r = client.post(url, data=form, headers=admin_headers, follow_redirects=False)
    assert r.status_code == 303
    key = db.get(GoldLabel, item.id)
    assert key is not None
    assert key.payload == {
        "responses": [
            {
                "position": 0,
                "is_safe": False,
                "harm_categories": ["Violence", "Cybercrime"],
                "severity": "moderate",
            },
            {"position": 1, "is_safe": True, "harm_categories": [], "severity": None},
        ],
        "helpfulness": [0, 1],
        "harmlessness": [1, 0],
    }
    # The form shows the stored key again.
    page = parse(client.get(url, headers=admin_headers).text)
    assert "checked" in page.one("input", name=f"r{ids[0]}_safe", value="unsafe").attrs
    redirect = client.get(
        f"/batches/{built.batch.id}/gold-key?item_id={item.id}",
        headers=admin_headers,
        follow_redirects=False,
    )
    assert redirect.headers["location"] == url


def test_gold_api_marks_lists_unmarks_and_sets_the_share(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 2)
    item, other = built.items
    base = f"/api/v1/batches/{built.batch.id}"
    r = client.put(f"{base}/gold/{item.id}", json={"labels": GOLD_KEY}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == GOLD_KEY
    r = client.put(f"{base}/gold/{other.id}", json={}, headers=admin_headers)
    assert r.status_code == 422 and "no reference label" in r.json()["detail"]
    bad = {**GOLD_KEY, "helpfulness": [0, 0]}
    r = client.put(f"{base}/gold/{other.id}", json={"labels": bad}, headers=admin_headers)
    assert r.status_code == 422
    r = client.put(f"{base}/gold-rate", json={"gold_rate": 0.15}, headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["gold_rate"] == 0.15
    assert [g["item_id"] for g in r.json()["items"]] == [item.id]
    assert (
        client.put(f"{base}/gold-rate", json={"gold_rate": 2}, headers=admin_headers).status_code
        == 422
    )
    assert client.delete(f"{base}/gold/{item.id}", headers=admin_headers).status_code == 204
    assert client.get(f"{base}/gold", headers=admin_headers).json()["items"] == []
    assert client.put(f"{base}/gold/999999", json={}, headers=admin_headers).status_code == 404

    r = client.post(
        f"/batches/{built.batch.id}/gold/rate",
        data={"gold_percent": "12.5"},
        headers=admin_headers,
        follow_redirects=False,
    )
    assert r.status_code == 303
    batch = db.get(Batch, built.batch.id)
    assert batch is not None
    db.refresh(batch)
    assert batch.gold_rate == 0.125


def export_prompts(client: TestClient, headers: dict[str, str], batch_id: int) -> set[str]:
    r = client.get(f"/api/v1/exports/pku-saferlhf?batch_id={batch_id}", headers=headers)
    assert r.status_code == 200
    return {json.loads(line)["prompt"] for line in r.text.splitlines()}


def test_gold_answers_stay_out_of_agreement_disagreements_and_exports(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 2, overlap=2)
    quiet, loud = built.items
    people = [user(db), user(db)]
    for person in people:
        annotate(db, built, quiet, person, payload(built.ids(quiet)))
    bodies: list[dict[str, Any]] = [
        payload(built.ids(loud)),
        payload(built.ids(loud), [SAFE, unsafe("severe", "Violence")]),
    ]
    for person, body in zip(people, bodies, strict=True):
        annotate(db, built, loud, person, body)
    batch_id = built.batch.id
    metrics_url = f"/api/v1/batches/{batch_id}/metrics"
    assert client.get(metrics_url, headers=admin_headers).json()["is_safe"]["n_items"] == 4
    assert export_prompts(client, admin_headers, batch_id) == {quiet.prompt}
    disagreements = client.get(f"/batches/{batch_id}/disagreements", headers=admin_headers).text
    assert f'data-item="{loud.id}"' in disagreements

    for item in built.items:
        r = client.put(
            f"/api/v1/batches/{batch_id}/gold/{item.id}",
            json={"labels": GOLD_KEY},
            headers=admin_headers,
        )
        assert r.status_code == 200
    found = client.get(metrics_url, headers=admin_headers).json()
    assert found["is_safe"]["n_items"] == 0 and found["progress"]["gold_items"] == 2
    assert export_prompts(client, admin_headers, batch_id) == set()
    disagreements = client.get(f"/batches/{batch_id}/disagreements", headers=admin_headers).text
    assert f'data-item="{loud.id}"' not in disagreements
    dashboard = parse(client.get(f"/batches/{batch_id}/dashboard", headers=admin_headers).text)
    figures = {n.attrs["data-figure"]: n.text for n in dashboard.find_all(data_figure=None)}
    assert figures["items"] == "0" and figures["gold"] == "2 · 0"
    severity = {n.attrs["data-severity"]: n.text for n in dashboard.find_all(data_severity=None)}
    assert severity == {"safe": "0", "minor": "0", "moderate": "0", "severe": "0"}


def test_gold_table_shows_prompts_and_external_ids_and_filters_on_the_server(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(
        db, 3, prompts=["<b>Bold</b> request about knives", "A 100% harmless ask", "Weather?"]
    )
    a, b, c = built.items
    a.external_id, b.external_id, c.external_id = "pku-0001", "pku-0002", "other-7"
    for item in (a, b, c):
        db.add(ReferenceLabel(item_id=item.id, origin="pku", payload=REFERENCE))
    db.flush()
    url = f"/batches/{built.batch.id}/gold"

    def rows(query: str) -> dict[int, list[str]]:
        r = client.get(url + query, headers=admin_headers)
        assert r.status_code == 200, r.text
        assert "<b>Bold</b>" not in r.text  # the prompt is text, never markup
        table = parse(r.text).find_all("table", class_="batch-items")
        if not table:
            return {}
        return {
            int(tr.attrs["data-pick"]): tr.cells() for tr in table[0].find_all("tr", data_pick=None)
        }

    everything = rows("")
    assert list(everything) == [a.id, b.id, c.id]
    assert everything[a.id][1:4] == [f"#{a.id}", "pku-0001", "<b>Bold</b> request about knives"]
    assert list(rows("?q=KNIVES")) == [a.id]  # any case
    assert list(rows("?q=pku-")) == [a.id, b.id]  # the external id
    assert list(rows("?q=100%25")) == [b.id]  # % is a character, not a wildcard
    assert list(rows("?q=0%25")) == [b.id]
    assert rows("?q=nothing-like-this") == {}
    empty = client.get(url + "?q=nothing-like-this", headers=admin_headers).text
    assert "No item of this batch has “nothing-like-this”" in empty

    # Ticked rows are marked; the filter is kept.
    r = client.post(
        url,
        data={"item_id": [str(a.id), str(b.id)], "q": "pku-"},
        headers=admin_headers,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert "q=pku-" in r.headers["location"]
    db.expire_all()
    assert gold_flags(db, built.batch.id) == {a.id: True, b.id: True, c.id: False}
    after = rows("")
    assert after[a.id][0] == "gold" and after[c.id][0] == ""


def test_marking_nothing_is_refused_with_a_plain_message(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 1)
    r = client.post(f"/batches/{built.batch.id}/gold", data={}, headers=admin_headers)
    assert r.status_code == 422
    assert "Tick at least one item" in parse(r.text).one("p", class_="error").text


def test_a_zero_gold_share_is_warned_about(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 1)
    url = f"/batches/{built.batch.id}/gold"
    built.batch.gold_rate = 0.0
    db.flush()
    warning = parse(client.get(url, headers=admin_headers).text).one("p", id="gold-share-warning")
    assert "0%" in warning.text and "never" in warning.text
    built.batch.gold_rate = 0.05
    db.flush()
    assert not parse(client.get(url, headers=admin_headers).text).find_all(
        "p", id="gold-share-warning"
    )
