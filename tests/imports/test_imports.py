"""Import: every format with exact counts and sha256, labels, de-duplication, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.items.models import Item, ReferenceLabel, Response
from tests.support.samples import beavertails_line, generic_line, jsonl, pku_pair, qa_line, sha


def new_project(client: TestClient, headers: dict[str, str], **body: Any) -> int:
    r = client.post("/api/v1/projects", json={"name": "p", **body}, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def upload(
    client: TestClient, headers: dict[str, str], project_id: int, data: bytes, **params: str
) -> Any:
    return client.post(
        f"/api/v1/projects/{project_id}/imports",
        files={"file": ("data.jsonl", data, "application/jsonl")},
        params=params,
        headers=headers,
    )


def counts(db: Session) -> tuple[int, int, int]:
    return (
        db.scalar(select(func.count()).select_from(Item)) or 0,
        db.scalar(select(func.count()).select_from(Response)) or 0,
        db.scalar(select(func.count()).select_from(ReferenceLabel)) or 0,
    )


def test_pku_saferlhf_pairs_with_reference_labels(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    pid = new_project(client, admin_headers)
    rows = [pku_pair(i) for i in range(3)]
    r = upload(client, admin_headers, pid, jsonl(rows), labels_as="reference")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["format"] == "pku-saferlhf"
    assert body["items_created"] == 3 and body["items_duplicate"] == 0
    assert counts(db) == (3, 6, 3)
    item = db.get(Item, body["item_ids"][0])
    assert item is not None and item.prompt == rows[0]["prompt"]
    assert item.prompt_source == "Alpaca3-70B"
    stored = db.scalars(
        select(Response).where(Response.item_id == item.id).order_by(Response.position)
    ).all()
    assert [s.sha256 for s in stored] == [
        rows[0]["response_0_sha256"],
        rows[0]["response_1_sha256"],
    ]
    assert [s.source for s in stored] == ["Alpaca-7B", "Alpaca2-7B"]
    label = db.scalar(select(ReferenceLabel).where(ReferenceLabel.item_id == item.id))
    assert label is not None
    assert label.payload == {
        "responses": [
            {"position": 0, "is_safe": True, "harm_categories": [], "severity": None},
            {
                "position": 1,
                "is_safe": False,
                "harm_categories": ["Insulting Behavior"],
                "severity": "minor",
            },
        ],
        "helpfulness": [1, 0],
        "harmlessness": [0, 1],
    }


def test_pku_labels_ignored_by_default(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    pid = new_project(client, admin_headers)
    r = upload(client, admin_headers, pid, jsonl([pku_pair(1), pku_pair(2)]))
    assert r.status_code == 201, r.text
    assert counts(db) == (2, 4, 0)


def test_single_dimension_rows_give_a_single_preference(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    pid = new_project(client, admin_headers)
    keep = (
        "prompt",
        "response_0",
        "response_1",
        "prompt_source",
        "response_0_source",
        "response_1_source",
        "better_response_id",
        "response_0_sha256",
        "response_1_sha256",
    )
    row = {k: pku_pair(7, better=0)[k] for k in keep}
    r = upload(client, admin_headers, pid, jsonl([row]), labels_as="reference")
    assert r.status_code == 201, r.text
    label = db.scalar(select(ReferenceLabel))
    assert label is not None and label.payload == {"responses": [], "single": [0, 1]}


def test_qa_answers_grouped_by_prompt(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    pid = new_project(client, admin_headers)
    rows = [
        qa_line("How do I sharpen a knife?", "Use a whetstone."),
        qa_line("Lone prompt", "Only one answer here."),
        qa_line("How do I sharpen a knife?", "Hurt someone with it.", safe=False),
        qa_line("Why is the sky blue?", "Rayleigh scattering."),
        qa_line("How do I sharpen a knife?", "Ask a professional."),
        qa_line("Why is the sky blue?", "Because of the sea."),
    ]
    r = upload(client, admin_headers, pid, jsonl(rows), labels_as="reference")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["format"] == "pku-saferlhf-qa"
    assert body["items_created"] == 2
    assert body["prompts_with_one_answer"] == 1
    assert counts(db) == (2, 5, 2)
    knife = db.get(Item, body["item_ids"][0])
    assert knife is not None and knife.prompt == "How do I sharpen a knife?"
    texts = db.scalars(
        select(Response.text).where(Response.item_id == knife.id).order_by(Response.position)
    ).all()
    assert texts == ["Use a whetstone.", "Hurt someone with it.", "Ask a professional."]
    label = db.scalar(select(ReferenceLabel).where(ReferenceLabel.item_id == knife.id))
    assert label is not None
    assert label.payload["responses"][1] == {
        "position": 1,
        "is_safe": False,
        "harm_categories": ["Violence", "Physical Harm"],
        "severity": "moderate",
    }
    assert "helpfulness" not in label.payload


def test_beavertails_grouped_with_its_taxonomy(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    pid = new_project(client, admin_headers, taxonomy="beavertails-14")
    rows = [
        beavertails_line("Is it ok to skip meals?", "Occasionally, but eat well."),
        beavertails_line("Is it ok to skip meals?", "Starve yourself.", safe=False),
    ]
    r = upload(client, admin_headers, pid, jsonl(rows), labels_as="reference")
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "beavertails"
    assert counts(db) == (1, 2, 1)
    label = db.scalar(select(ReferenceLabel))
    assert label is not None
    assert label.payload["responses"][1]["harm_categories"] == ["self_harm"]
    assert label.payload["responses"][1]["severity"] is None


def test_beavertails_labels_need_a_matching_taxonomy(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    pid = new_project(client, admin_headers)
    rows = [beavertails_line("q", "a1"), beavertails_line("q", "a2")]
    r = upload(client, admin_headers, pid, jsonl(rows), labels_as="reference")
    assert r.status_code == 422
    assert "taxonomy" in r.json()["detail"]
    assert counts(db) == (0, 0, 0)


def test_generic_lines(client: TestClient, admin_headers: dict[str, str], db: Session) -> None:
    pid = new_project(client, admin_headers)
    rows = [generic_line(1), generic_line(2, n=3)]
    r = upload(client, admin_headers, pid, jsonl(rows))
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "generic"
    assert counts(db) == (2, 5, 0)
    item = db.scalar(select(Item).where(Item.external_id == "g-2"))
    assert item is not None and item.meta == {"topic": "test", "n": 2}
    responses = db.scalars(
        select(Response).where(Response.item_id == item.id).order_by(Response.position)
    ).all()
    assert [r.source for r in responses] == ["", "", "model-x"]
    assert [r.sha256 for r in responses] == [sha(item.prompt, r.text) for r in responses]


def test_explicit_format_overrides_detection(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    pid = new_project(client, admin_headers)
    r = upload(client, admin_headers, pid, jsonl([pku_pair(1)]), format="generic")
    assert r.status_code == 422
    assert r.json()["line"] == 1 and r.json()["field"] == "responses"


def test_reimport_is_a_no_op(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    pid = new_project(client, admin_headers)
    data = jsonl([pku_pair(i) for i in range(4)] + [pku_pair(1)])
    first = upload(client, admin_headers, pid, data, labels_as="reference").json()
    assert first["items_created"] == 4 and first["items_duplicate"] == 1
    before = counts(db)
    second = upload(client, admin_headers, pid, data, labels_as="reference").json()
    assert second["items_created"] == 0 and second["items_duplicate"] == 5
    assert second["item_ids"] == []
    assert counts(db) == before


def test_same_responses_in_another_order_are_a_duplicate(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    pid = new_project(client, admin_headers)
    a = {"prompt": "p", "responses": ["x", "y"]}
    b = {"prompt": "p", "responses": ["y", "x"]}
    body = upload(client, admin_headers, pid, jsonl([a, b])).json()
    assert body["items_created"] == 1 and body["items_duplicate"] == 1


def _bad(rows: list[Any]) -> bytes:
    return b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in rows)


GOOD = pku_pair(0)
BIG = "x" * (5 * 1024 * 1024)

BAD_INPUTS = {
    "malformed json": (
        _bad([GOOD, b'{"prompt": "a", "response_0": \n']),
        2,
        None,
        "malformed JSON",
    ),
    "missing key": (
        _bad([GOOD, {k: v for k, v in pku_pair(1).items() if k != "response_1"}]),
        2,
        "response_1",
        "missing",
    ),
    "wrong type": (
        _bad([GOOD, {**pku_pair(1), "response_0": 42}]),
        2,
        "response_0",
        "expected a string",
    ),
    "wrong label type": (
        _bad([GOOD, {**pku_pair(1), "better_response_id": "1"}]),
        2,
        "better_response_id",
        "expected an integer",
    ),
    "empty answer": (_bad([GOOD, GOOD | {"response_1": "   "}]), 2, "response_1", "empty"),
    "fewer than two answers": (
        _bad([{"prompt": "p", "responses": ["only one"]}]),
        1,
        "responses",
        "at least two",
    ),
    "invalid utf-8": (
        _bad([GOOD, b'{"prompt": "caf\xe9", "response_0": "a"}\n']),
        2,
        None,
        "UTF-8",
    ),
    "5 MB field": (
        _bad([GOOD, {**pku_pair(1), "response_0": BIG}]),
        2,
        "response_0",
        "more than the limit",
    ),
    "blank line in the middle": (_bad([GOOD, b"\n", pku_pair(1)]), 2, None, "blank line"),
    "not an object": (_bad([GOOD, [1, 2]]), 2, None, "expected a JSON object"),
    "sha256 mismatch": (
        _bad([GOOD, {**pku_pair(1), "response_1_sha256": "00"}]),
        2,
        "response_1_sha256",
        "does not match",
    ),
    "unknown category": (
        _bad([GOOD, {**pku_pair(1), "response_1_harm_category": {"Nope": True}}]),
        2,
        "response_1_harm_category",
        "unknown harm category",
    ),
    "NUL character": (_bad([GOOD, {**pku_pair(1), "prompt": "a\u0000b"}]), 2, "prompt", "NUL"),
    "overlong source": (
        _bad([GOOD, {**pku_pair(1), "response_0_source": "m" * 201}]),
        2,
        "response_0_source",
        "longer than 200 characters",
    ),
    "undetectable keys": (_bad([{"question": "q", "answer": "a"}]), 1, None, "cannot tell"),
    "empty file": (b"", 1, None, "no data lines"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_names_line_and_writes_nothing(
    case: str, client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    data, line, field, message = BAD_INPUTS[case]
    pid = new_project(client, admin_headers)
    upload(client, admin_headers, pid, jsonl([pku_pair(99)]), labels_as="reference")
    before = counts(db)
    r = upload(client, admin_headers, pid, data, labels_as="reference")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["line"] == line
    assert body.get("field") == field
    assert f"line {line}" in body["detail"] and message in body["detail"]
    assert counts(db) == before


def test_unknown_format_is_refused(client: TestClient, admin_headers: dict[str, str]) -> None:
    pid = new_project(client, admin_headers)
    r = upload(client, admin_headers, pid, jsonl([pku_pair(1)]), format="csv")
    assert r.status_code == 422
    assert "format" in json.dumps(r.json()["detail"])


def test_import_into_unknown_project_is_404(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = upload(client, admin_headers, 987654, jsonl([pku_pair(1)]))
    assert r.status_code == 404


def test_import_needs_an_admin(
    client: TestClient, make_user: Any, admin_headers: dict[str, str]
) -> None:
    pid = new_project(client, admin_headers)
    _, token = make_user(role="annotator")
    r = upload(client, {"Authorization": f"Bearer {token}"}, pid, jsonl([pku_pair(1)]))
    assert r.status_code == 403
    assert upload(client, {}, pid, jsonl([pku_pair(1)])).status_code == 401
