"""Suggestion uploads: the API and the CLI, good files, bad lines (nothing written), and an
origin's re-upload replacing what it had."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine
from app.items.models import Item, ReferenceLabel, Response
from app.projects.models import Project
from app.projects.service import create_project
from tests.support.samples import jsonl, pku_pair
from tests.test_cli import migrated, run


def make_project(db: Session, items: int = 3, responses: int = 2) -> tuple[Project, list[int]]:
    project = create_project(db, f"p-{uuid.uuid4().hex[:8]}", "pku-saferlhf-19")
    ids = []
    for i in range(items):
        prompt = f"prompt {i} {uuid.uuid4().hex}"
        item = Item(
            project_id=project.id,
            external_id=f"ext-{i}",
            prompt=prompt,
            content_hash=hashlib.sha256(prompt.encode()).hexdigest(),
        )
        db.add(item)
        db.flush()
        for pos in range(responses):
            db.add(Response(item_id=item.id, position=pos, text=f"a{pos}", sha256=f"{i}-{pos}"))
        ids.append(item.id)
    # The labels imported with the data: another origin, which uploads leave alone.
    db.add(ReferenceLabel(item_id=ids[0], origin="import", payload={"responses": []}))
    db.commit()
    return project, ids


def line(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "responses": [
            {"position": 0, "is_safe": False, "harm_categories": ["Violence"], "severity": "minor"},
            {"position": 1, "is_safe": True, "harm_categories": [], "severity": None},
        ],
        "helpfulness": [0, 1],
        "harmlessness": [1, 0],
    }
    base.update(fields)
    return base


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def upload(client: TestClient, headers: dict[str, str], pid: int, data: bytes, origin: str) -> Any:
    return client.post(
        f"/api/v1/projects/{pid}/suggestions",
        params={"origin": origin},
        files={"file": ("s.ndjson", data, "application/x-ndjson")},
        headers=headers,
    )


def suggestions(db: Session, origin: str) -> dict[int, ReferenceLabel]:
    db.expire_all()
    rows = db.scalars(select(ReferenceLabel).where(ReferenceLabel.origin == origin))
    return {r.item_id: r for r in rows}


def test_upload_by_item_id_and_external_id(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    project, ids = make_project(db)
    rows = [
        line(item_id=ids[0], confidence=0.9, analysis="**Unsafe**: it explains how."),
        line(external_id="ext-1", helpfulness=[1, 0]),
    ]
    r = upload(client, admin_headers, project.id, ndjson(rows), "judge-a")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "suggestions_created": 2,
        "suggestions_updated": 0,
        "suggestions_removed": 0,
    }
    found = suggestions(db, "judge-a")
    assert set(found) == {ids[0], ids[1]}
    first = found[ids[0]]
    assert first.confidence == 0.9 and first.analysis == "**Unsafe**: it explains how."
    assert first.payload == {
        "responses": [
            {"position": 0, "is_safe": False, "harm_categories": ["Violence"], "severity": "minor"},
            {"position": 1, "is_safe": True, "harm_categories": [], "severity": None},
        ],
        "helpfulness": [0, 1],
        "harmlessness": [1, 0],
    }
    assert found[ids[1]].payload["helpfulness"] == [1, 0]
    assert found[ids[1]].confidence is None and found[ids[1]].analysis is None
    assert len(suggestions(db, "import")) == 1  # another origin is left alone


def test_reupload_replaces_the_origins_suggestions(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    project, ids = make_project(db)
    first = [line(item_id=ids[0], confidence=0.5), line(item_id=ids[1])]
    assert upload(client, admin_headers, project.id, ndjson(first), "judge").status_code == 200
    assert upload(client, admin_headers, project.id, ndjson(first), "other").status_code == 200
    second = [line(item_id=ids[1], confidence=0.7), line(item_id=ids[2])]
    r = upload(client, admin_headers, project.id, ndjson(second), "judge")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "suggestions_created": 1,
        "suggestions_updated": 1,
        "suggestions_removed": 1,
    }
    found = suggestions(db, "judge")
    assert set(found) == {ids[1], ids[2]}  # item 0's suggestion is gone with the old file
    assert found[ids[1]].confidence == 0.7
    assert set(suggestions(db, "other")) == {ids[0], ids[1]}


BAD_LINES = [
    ({"item_id": 999_999_999}, "line 2: field 'item_id': no item 999999999 in this project"),
    ({"external_id": "nope"}, "line 2: field 'external_id': no item with external id 'nope'"),
    ({}, "line 2: give item_id or external_id"),
    ({"item_id": "1"}, "line 2: field 'item_id': expected an integer"),
    ({"responses": []}, "line 2: field 'responses': expected a non-empty array"),
    (
        {"responses": [{"position": 2, "is_safe": True}]},
        "line 2: field 'responses[0].position': expected a response position 0..1",
    ),
    (
        {"responses": [{"position": 0, "is_safe": "yes"}]},
        "line 2: field 'responses[0].is_safe': expected true or false",
    ),
    (
        {"responses": [{"position": 0, "is_safe": False, "harm_categories": ["Nope"]}]},
        "line 2: field 'responses[0].harm_categories': unknown harm category 'Nope'",
    ),
    (
        {"responses": [{"position": 0, "is_safe": False, "severity": "huge"}]},
        "line 2: field 'responses[0].severity': expected one of minor, moderate, severe",
    ),
    (
        {"responses": [{"position": 0, "is_safe": True, "severity": "minor"}]},
        "line 2: field 'responses[0]': a safe response has no harm category or severity",
    ),
    ({"helpfulness": [0, 0]}, "line 2: field 'helpfulness': expected each response position"),
    ({"confidence": 1.5}, "line 2: field 'confidence': expected a number between 0 and 1"),
    ({"analysis": 3}, "line 2: field 'analysis': expected a string"),
    ({"colour": "red"}, "line 2: field 'colour': unknown field"),
]


@pytest.mark.parametrize(("change", "message"), BAD_LINES)
def test_a_bad_line_is_refused_by_number_and_nothing_is_written(
    client: TestClient,
    db: Session,
    admin_headers: dict[str, str],
    change: dict[str, Any],
    message: str,
) -> None:
    project, ids = make_project(db)
    before = [line(item_id=ids[2])]
    assert upload(client, admin_headers, project.id, ndjson(before), "judge").status_code == 200
    bad = line(item_id=ids[1])
    if "external_id" in change or not change:
        bad.pop("item_id")
    bad.update(change)
    rows = [line(item_id=ids[0]), bad, line(item_id=ids[2])]
    r = upload(client, admin_headers, project.id, ndjson(rows), "judge")
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"], r.json()
    # Nothing written: the earlier upload is whole, the good first line is not there.
    assert set(suggestions(db, "judge")) == {ids[2]}


def test_a_repeated_item_and_an_item_of_another_project_are_refused(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    project, ids = make_project(db)
    _, elsewhere = make_project(db)
    rows = [line(item_id=ids[0]), line(external_id="ext-0")]
    r = upload(client, admin_headers, project.id, ndjson(rows), "judge")
    assert r.status_code == 422
    assert r.json()["detail"] == f"line 2: item {ids[0]} is already given on line 1"
    r = upload(client, admin_headers, project.id, ndjson([line(item_id=elsewhere[0])]), "judge")
    assert r.status_code == 422
    assert f"line 1: field 'item_id': no item {elsewhere[0]} in this project" in r.text
    r = upload(client, admin_headers, project.id, b'{"item_id": 1,\n', "judge")
    assert r.status_code == 422 and r.json()["detail"].startswith("line 1: ")
    assert suggestions(db, "judge") == {}


def test_origin_names_and_access(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: Any
) -> None:
    project, ids = make_project(db)
    data = ndjson([line(item_id=ids[0])])
    r = upload(client, admin_headers, project.id, data, "bad origin!")
    assert r.status_code == 422 and "origin" in r.json()["detail"]
    _, token = make_user()
    r = upload(client, {"Authorization": f"Bearer {token}"}, project.id, data, "judge")
    assert r.status_code == 403
    r = upload(client, admin_headers, 999_999_999, data, "judge")
    assert r.status_code == 404
    assert suggestions(db, "judge") == {}


def test_cli_imports_suggestions(databases: Any, tmp_path: Path) -> None:
    """The command as a user runs it: a subprocess against a fresh database."""
    url = migrated(databases)
    data = tmp_path / "pairs.jsonl"
    data.write_bytes(jsonl([pku_pair(i) for i in range(3)]))
    assert run(url, "import", str(data), "--project", "cli").returncode == 0
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.connect() as conn:
            ids = list(conn.scalars(select(Item.id).order_by(Item.id)))

        def origin_items() -> set[int]:
            with engine.connect() as conn:
                query = select(ReferenceLabel.item_id).where(ReferenceLabel.origin == "cli")
                return set(conn.scalars(query))

        good = tmp_path / "good.ndjson"
        good.write_bytes(ndjson([line(item_id=ids[0]), line(item_id=ids[2])]))
        args = ["--project", "cli", "--origin", "cli"]
        result = run(url, "import-suggestions", str(good), *args)
        assert result.returncode == 0, result.stderr
        assert "2 suggestions created, 0 updated, 0 removed" in result.stdout
        assert origin_items() == {ids[0], ids[2]}
        bad = tmp_path / "bad.ndjson"
        bad.write_bytes(ndjson([line(item_id=ids[1]), line(external_id="missing")]))
        result = run(url, "import-suggestions", str(bad), *args)
        assert result.returncode == 2
        assert "error: line 2: field 'external_id': no item with external id" in result.stderr
        assert origin_items() == {ids[0], ids[2]}
        result = run(url, "import-suggestions", str(good), "--project", "nope", "--origin", "x")
        assert result.returncode == 2 and "no project 'nope'" in result.stderr
    finally:
        engine.dispose()
