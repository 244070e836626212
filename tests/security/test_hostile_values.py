"""Hostile values in imports and JSON bodies are refused with a 422 that names the problem
(and the line and field, for imports), write nothing and never echo the input; values stored
before these rules cannot break the pages and API answers that hold them. Both backends."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.batches.service import add_member, create_batch
from app.items.models import Item, Response
from app.projects.models import Project
from tests.support.queue_factory import seed_project, valid_annotation
from tests.support.samples import generic_line, jsonl

GOOD = generic_line(0)


def line_with(raw_meta: str) -> bytes:
    """A generic line whose `meta` is the given JSON text (written by hand: json.dumps
    cannot produce NaN-free hostile forms such as lone surrogate escapes on purpose)."""
    body = json.dumps({"prompt": "p1", "responses": ["a", "b"]})
    return (body[:-1] + f', "meta": {raw_meta}}}\n').encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# name -> (line 2 of the file, field named, words in the message, raw text never echoed)
META_CASES: dict[str, tuple[bytes, str | None, str, str]] = {
    "lone surrogate": (line_with('{"a": "x\\ud800y"}'), "meta", "unpaired surrogate", "ud800"),
    "lone surrogate key": (line_with('{"\\udfff": 1}'), "meta", "unpaired surrogate", "udfff"),
    "NUL": (line_with('{"a": "x\\u0000y"}'), "meta", "NUL", "u0000"),
    "NaN": (line_with('{"a": NaN}'), None, "NaN is not a JSON number", '"a"'),
    "Infinity": (line_with('{"a": -Infinity}'), None, "Infinity is not a JSON number", '"a"'),
    "overflowing float": (line_with('{"a": 1e999}'), None, "too large", "1e999"),
    "too deep": (line_with(f'{{"a": {nested(20)}}}'), "meta", "nested more than 16", "[[["),
    "1,000 levels": (line_with(nested(1000)), None, "nested more than", "[[["),
    "4,300-digit integer": (line_with("9" * 4300), None, "more than 19 digits", "9999999999"),
    "too large": (
        line_with(json.dumps({"a": "x" * 600_000, "b": "y" * 600_000})),
        "meta",
        "more than the limit",
        "xxxxxxxxxx",
    ),
    "not an object": (line_with("[1, 2]"), "meta", "expected an object", "[1, 2]"),
}


def new_project(client: TestClient, headers: dict[str, str]) -> int:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    r = client.post("/api/v1/projects", json={"name": name}, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def upload(client: TestClient, headers: dict[str, str], project_id: int, data: bytes) -> Any:
    return client.post(
        f"/api/v1/projects/{project_id}/imports",
        files={"file": ("data.jsonl", data, "application/jsonl")},
        params={"format": "generic"},
        headers=headers,
    )


def item_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Item)) or 0


@pytest.mark.parametrize("case", list(META_CASES), ids=list(META_CASES))
def test_hostile_import_line_is_refused_naming_line_and_field(
    case: str, client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    line, field, message, raw = META_CASES[case]
    pid = new_project(client, admin_headers)
    before = item_count(db)
    r = upload(client, admin_headers, pid, jsonl([GOOD]) + line)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["line"] == 2
    assert body.get("field") == field
    assert body["detail"].startswith("line 2: ") and message in body["detail"], body
    assert raw not in r.text  # the input is never repeated back
    assert item_count(db) == before


HOSTILE_BODIES: dict[str, tuple[bytes, str]] = {
    "NaN": (b'{"name": "p", "x": NaN}', "NaN is not a JSON number"),
    "Infinity": (b'{"name": "p", "x": Infinity}', "Infinity is not a JSON number"),
    "overflowing float": (b'{"name": "p", "x": 1e999}', "too large"),
    "lone surrogate": (b'{"name": "a\\ud800"}', "unpaired surrogate"),
    "lone surrogate key": (b'{"name": "p", "\\udbff": 1}', "unpaired surrogate"),
    "NUL": (b'{"name": "a\\u0000b"}', "NUL"),
    "deep": (b'{"name": "p", "x": ' + nested(5000).encode() + b"}", "nested more than 32"),
    "4,300-digit integer": (b'{"name": "p", "x": ' + b"9" * 4300 + b"}", "more than 19 digits"),
}


@pytest.mark.parametrize("case", list(HOSTILE_BODIES), ids=list(HOSTILE_BODIES))
def test_hostile_json_bodies_are_refused_by_every_api_route(
    case: str, client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    body, message = HOSTILE_BODIES[case]
    pid = new_project(client, admin_headers)
    headers = {**admin_headers, "content-type": "application/json"}
    projects = db.scalar(select(func.count()).select_from(Item))
    for method, url in (
        ("POST", "/api/v1/projects"),
        ("POST", "/api/v1/users"),
        ("POST", "/api/v1/batches"),
        ("PATCH", "/api/v1/batches/1"),
        ("PUT", "/api/v1/assignments/1/annotation"),
        ("POST", f"/api/v1/batches/1/items/{pid}/adjudication"),
        ("PUT", "/api/v1/me/password"),
    ):
        r = client.request(method, url, content=body, headers=headers)
        assert r.status_code == 422, (url, r.status_code, r.text)
        assert r.json() == {"detail": f"request body: {r.json()['detail'][14:]}"}
        assert message in r.json()["detail"], (url, r.text)
        assert "ud800" not in r.text and "9999999999" not in r.text
    assert db.scalar(select(func.count()).select_from(Item)) == projects


def test_nul_in_form_fields_is_refused_by_name(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    """Form fields cannot carry unpaired surrogates (the form decoder replaces them), but NUL
    passes: PostgreSQL text cannot hold it, SQLite would store it."""
    for form, field in (
        ({"name": "a\x00b", "ask_safety": "1"}, "name"),
        (
            {"name": "ok-" + uuid.uuid4().hex[:6], "guidelines": "x\x00", "ask_safety": "1"},
            "guidelines",
        ),
        (
            {
                "name": "ok-" + uuid.uuid4().hex[:6],
                "taxonomy_preset": "custom",
                "custom_taxonomy": "Harm\x00",
                "ask_safety": "1",
            },
            "taxonomy",
        ),
    ):
        r = client.post("/projects", data=form, headers=admin_headers)
        assert r.status_code == 422, (field, r.status_code)
        assert f"{field}: contains a NUL character" in r.text


UNUSUAL_META = {
    "emoji": "\U0001f600 and \u202eright-to-left\u202c",
    "astral": "\U00020000",
    "nested": {"a": [1, 2.5, None, True, {"b": [[[[[]]]]]}]},
    "largest int": 9223372036854775807,
    "smallest": -9223372036854775808,
    "tiny": 5e-324,
    "empty": {},
    "html": "<script>alert(1)</script>",
}


def test_unusual_but_valid_meta_imports_and_is_served(
    client: TestClient, admin_headers: dict[str, str], db: Session, make_user: Any
) -> None:
    pid = new_project(client, admin_headers)
    line = {**generic_line(7), "meta": UNUSUAL_META}
    r = upload(client, admin_headers, pid, jsonl([GOOD, line]))
    assert r.status_code == 201, r.text
    r = client.get(f"/api/v1/projects/{pid}/items", headers=admin_headers)
    assert r.status_code == 200
    metas = [i["meta"] for i in r.json()["items"]]
    assert UNUSUAL_META in metas
    # And the annotation page of every item renders.
    project = db.get(Project, pid)
    assert project is not None
    annotator, token = make_user()
    batch = create_batch(db, project, "unusual", overlap=1)
    add_member(db, batch, annotator)  # type: ignore[arg-type]
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        r = client.post(f"/api/v1/batches/{batch.id}/next", headers=headers)
        assert r.status_code == 200, r.text
        aid = r.json()["assignment_id"]
        assert client.get(f"/assignments/{aid}", headers=headers).status_code == 200
        client.post(f"/api/v1/assignments/{aid}/skip", headers=headers, json={})


def test_values_stored_before_the_rules_do_not_break_reads(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    """A lone surrogate and a non-finite number written straight to the database (as an
    import could before these rules): the item list and the item are still served."""
    pid = new_project(client, admin_headers)
    item = Item(
        project_id=pid,
        prompt="stored earlier",
        content_hash=uuid.uuid4().hex,
        meta={"bad": "x\ud800y", "deep": {"k\udfff": ["\ud83d"]}},
    )
    db.add(item)
    db.flush()
    for pos in range(2):
        db.add(Response(item_id=item.id, position=pos, text=f"r{pos}", sha256=f"{pos}"))
    db.commit()
    for url in (f"/api/v1/projects/{pid}/items", f"/api/v1/items/{item.id}"):
        r = client.get(url, headers=admin_headers)
        assert r.status_code == 200, (url, r.text)
        assert "x\ufffdy" in r.json().get("meta", r.json().get("items", [{}])[0].get("meta"))["bad"]


def test_page_with_a_rationale_stored_before_the_rules_renders(
    client: TestClient, db: Session, make_user: Any
) -> None:
    """A rationale with an unpaired surrogate (storable in the JSON payload before the body
    rules): the annotator's page of that item still renders, showing U+FFFD."""
    project, _ = seed_project(db, 1, ask_rationale=True)
    annotator, token = make_user()
    batch = create_batch(db, project, "stored", overlap=1)
    add_member(db, batch, annotator)  # type: ignore[arg-type]
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}
    body = client.post(f"/api/v1/batches/{batch.id}/next", headers=headers).json()
    aid = body["assignment_id"]
    ids = [r["id"] for r in body["item"]["responses"]]
    payload = {**valid_annotation(ids), "rationale": "fine"}
    r = client.put(f"/api/v1/assignments/{aid}/annotation", json=payload, headers=headers)
    assert r.status_code == 200, r.text
    annotation = db.scalars(select(Annotation).where(Annotation.assignment_id == aid)).one()
    annotation.payload = {**annotation.payload, "rationale": "before\ud800after"}
    db.commit()
    page = client.get(f"/assignments/{aid}", headers=headers)
    assert page.status_code == 200
    assert "before\ufffdafter" in page.text
