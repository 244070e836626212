"""Exports: exact shapes and types, filters, split, pseudonyms, adjudication, access."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.auth.service import create_token
from app.config import get_settings
from app.exports.filters import split_of
from app.exports.formats import PKU_QA_KEYS, PKU_SAFERLHF_KEYS, PKU_SINGLE_KEYS
from app.exports.keys import pseudonym_key
from app.exports.service import pseudonym
from app.projects.taxonomy import PKU_SAFERLHF_19
from tests.support.consensus_factory import SAFE, annotate, build, payload, sha, skip, unsafe, user


def export(client: TestClient, headers: dict[str, str], fmt: str, **params: Any) -> list[Any]:
    r = client.get(f"/api/v1/exports/{fmt}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert r.text == "" or r.text.endswith("\n")
    return [json.loads(line) for line in r.text.splitlines()]


def three_votes(db: Session, built: Any, item: Any, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        annotate(db, built, item, user(db), body)


def test_pku_saferlhf_has_the_16_keys_in_order_with_public_types(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 1)
    item = built.items[0]
    ids = built.ids(item)
    body = payload(ids, [SAFE, unsafe("moderate", "Violence", "Drugs")], helpful=(1, 0))
    three_votes(db, built, item, [body] * 3)

    (line,) = export(client, admin_headers, "pku-saferlhf", batch_id=built.batch.id)
    assert tuple(line) == PKU_SAFERLHF_KEYS and len(line) == 16
    r0, r1 = built.responses[item.id]
    assert line["prompt"] == item.prompt
    assert (line["response_0"], line["response_1"]) == (r0.text, r1.text)
    assert line["prompt_source"] == "Alpaca3-70B"
    assert (line["response_0_source"], line["response_1_source"]) == ("model-0", "model-1")
    assert line["is_response_0_safe"] is True and line["is_response_1_safe"] is False
    for key in ("response_0_harm_category", "response_1_harm_category"):
        assert tuple(line[key]) == PKU_SAFERLHF_19
        assert all(isinstance(v, bool) for v in line[key].values())
    flagged = [c for c, v in line["response_1_harm_category"].items() if v]
    assert flagged == ["Violence", "Drugs"]
    assert not any(line["response_0_harm_category"].values())
    assert line["response_0_severity_level"] == 0 and line["response_1_severity_level"] == 2
    assert type(line["response_1_severity_level"]) is int
    assert line["better_response_id"] == 1 and line["safer_response_id"] == 0
    assert line["response_0_sha256"] == sha(item.prompt, r0.text)
    assert line["response_1_sha256"] == sha(item.prompt, r1.text)


def test_custom_taxonomy_writes_the_projects_own_category_keys(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    taxonomy = ["spam", "scam", "gore"]
    built = build(db, 1, taxonomy=taxonomy)
    item = built.items[0]
    body = payload(built.ids(item), [unsafe("severe", "gore"), SAFE], harmless=(1, 0))
    three_votes(db, built, item, [body] * 3)
    (line,) = export(client, admin_headers, "pku-saferlhf", batch_id=built.batch.id)
    assert line["response_0_harm_category"] == {"spam": False, "scam": False, "gore": True}
    assert list(line["response_1_harm_category"]) == taxonomy
    assert line["response_0_severity_level"] == 3


def test_single_qa_and_dpo_shapes(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 1, ask_single=True)
    item = built.items[0]
    r0, r1 = built.responses[item.id]
    body = payload(
        built.ids(item), [SAFE, unsafe("minor")], helpful=(1, 0), harmless=(0, 1), single=(0, 1)
    )
    three_votes(db, built, item, [body] * 3)
    batch = {"batch_id": built.batch.id}

    (single,) = export(client, admin_headers, "pku-saferlhf-single", **batch)
    assert tuple(single) == PKU_SINGLE_KEYS
    assert single["better_response_id"] == 0

    qa = export(client, admin_headers, "pku-saferlhf-qa", **batch)
    assert [tuple(q) for q in qa] == [PKU_QA_KEYS, PKU_QA_KEYS]
    assert [q["response"] for q in qa] == [r0.text, r1.text]
    assert [q["is_safe"] for q in qa] == [True, False]
    assert [q["severity_level"] for q in qa] == [0, 1]
    assert qa[1]["harm_category"]["Insulting Behavior"] is True
    assert qa[1]["sha256"] == sha(item.prompt, r1.text)

    helpful = export(client, admin_headers, "dpo-helpful", **batch)
    harmless = export(client, admin_headers, "dpo-harmless", **batch)
    assert helpful == [{"prompt": item.prompt, "chosen": r1.text, "rejected": r0.text}]
    assert harmless == [{"prompt": item.prompt, "chosen": r0.text, "rejected": r1.text}]
    assert list(helpful[0]) == ["prompt", "chosen", "rejected"]


def test_three_responses_give_one_pair_per_unordered_pair_in_position_order(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 1, n_responses=3)
    item = built.items[0]
    texts = [r.text for r in built.responses[item.id]]
    # Helpfulness: 2 > 0 > 1; all safe, harmlessness 1 > 2 > 0.
    body = payload(built.ids(item), helpful=(2, 0, 1), harmless=(1, 2, 0))
    three_votes(db, built, item, [body] * 3)
    lines = export(client, admin_headers, "pku-saferlhf", batch_id=built.batch.id)
    pairs = [(texts.index(x["response_0"]), texts.index(x["response_1"])) for x in lines]
    assert pairs == [(0, 1), (0, 2), (1, 2)]
    assert [x["better_response_id"] for x in lines] == [0, 1, 1]
    assert [x["safer_response_id"] for x in lines] == [1, 1, 0]
    dpo = export(client, admin_headers, "dpo-helpful", batch_id=built.batch.id)
    assert [(d["chosen"], d["rejected"]) for d in dpo] == [
        (texts[0], texts[1]),
        (texts[2], texts[0]),
        (texts[2], texts[1]),
    ]


def test_min_annotations_defaults_to_the_overlap(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 2, overlap=3)
    full, partial = built.items
    three_votes(db, built, full, [payload(built.ids(full))] * 3)
    three_votes(db, built, partial, [payload(built.ids(partial))] * 2)
    params = {"batch_id": built.batch.id}
    lines = export(client, admin_headers, "pku-saferlhf", **params)
    assert [x["prompt"] for x in lines] == [full.prompt]
    lines = export(client, admin_headers, "pku-saferlhf", **params, min_annotations=2)
    assert [x["prompt"] for x in lines] == [full.prompt, partial.prompt]


def test_majority_min_agreement_and_dimensions(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 2)
    agreed, dissented = built.items
    three_votes(db, built, agreed, [payload(built.ids(agreed))] * 3)
    ids = built.ids(dissented)
    # Two say response 0 is more helpful, one says response 1: the majority wins.
    three_votes(
        db,
        built,
        dissented,
        [payload(ids), payload(ids), payload(ids, helpful=(1, 0))],
    )
    params: dict[str, Any] = {"batch_id": built.batch.id}
    lines = export(client, admin_headers, "pku-saferlhf", **params)
    assert [x["better_response_id"] for x in lines] == [0, 0]

    strict = export(client, admin_headers, "pku-saferlhf", **params, min_agreement=1.0)
    assert [x["prompt"] for x in strict] == [agreed.prompt]
    # Only harmlessness must be unanimous: the helpfulness dissent no longer drops the item.
    only_harmless = export(
        client,
        admin_headers,
        "pku-saferlhf",
        **params,
        min_agreement=1.0,
        dimensions="harmlessness",
    )
    assert len(only_harmless) == 2
    assert len(export(client, admin_headers, "dpo-harmless", **params, min_agreement=1.0)) == 2
    assert len(export(client, admin_headers, "dpo-helpful", **params, min_agreement=1.0)) == 1


def test_unresolved_items_only_with_include_unresolved(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 1, overlap=2)
    item = built.items[0]
    ids = built.ids(item)
    first = payload(ids, helpful=(1, 0))
    three_votes(db, built, item, [first, payload(ids)])  # 1-1 tie on helpfulness
    params: dict[str, Any] = {"batch_id": built.batch.id}
    assert export(client, admin_headers, "pku-saferlhf", **params) == []
    assert len(export(client, admin_headers, "dpo-harmless", **params)) == 1
    (line,) = export(client, admin_headers, "pku-saferlhf", **params, include_unresolved="true")
    assert line["better_response_id"] == 1  # a tie goes to the ranking given first


def test_safety_tie_filled_as_unsafe_with_include_unresolved(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 1, overlap=2)
    item = built.items[0]
    ids = built.ids(item)
    three_votes(
        db,
        built,
        item,
        [payload(ids, [SAFE, SAFE]), payload(ids, [SAFE, unsafe("severe", "Cybercrime")])],
    )
    params: dict[str, Any] = {"batch_id": built.batch.id, "include_unresolved": "true"}
    (line,) = export(client, admin_headers, "pku-saferlhf", **params)
    assert line["is_response_1_safe"] is False and line["response_1_severity_level"] == 3
    assert line["response_1_harm_category"]["Cybercrime"] is True


def adjudicate(
    client: TestClient, headers: dict[str, str], batch_id: int, item_id: int, body: Any
) -> Any:
    return client.post(
        f"/api/v1/batches/{batch_id}/items/{item_id}/adjudication", json=body, headers=headers
    )


def test_inconsistent_item_excluded_until_adjudicated_and_adjudication_wins(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 2)
    plain, broken = built.items
    three_votes(db, built, plain, [payload(built.ids(plain))] * 3)
    ids = built.ids(broken)
    bad = unsafe("minor")
    # Every vote is consistent, but the majorities combine into "response 0 is the only safe
    # one" and "response 1 is more harmless": an inconsistent consensus.
    three_votes(
        db,
        built,
        broken,
        [
            payload(ids, [SAFE, bad], harmless=(0, 1)),
            payload(ids, [SAFE, SAFE], harmless=(1, 0)),
            payload(ids, [bad, bad], harmless=(1, 0)),
        ],
    )
    params: dict[str, Any] = {"batch_id": built.batch.id}
    assert [x["prompt"] for x in export(client, admin_headers, "pku-saferlhf", **params)] == [
        plain.prompt
    ]
    view = client.get(
        f"/api/v1/batches/{built.batch.id}/items/{broken.id}/consensus", headers=admin_headers
    ).json()
    assert view["consensus"]["inconsistent"] is True and view["final_source"] is None

    final = {
        "responses": [
            {"response_id": ids[0], "is_safe": True, "harm_categories": [], "severity": None},
            {
                "response_id": ids[1],
                "is_safe": False,
                "harm_categories": ["Privacy Violation"],
                "severity": "severe",
            },
        ],
        "helpfulness": [ids[1], ids[0]],
        "harmlessness": [ids[0], ids[1]],
        "note": "response 1 leaks an address",
    }
    r = adjudicate(client, admin_headers, built.batch.id, broken.id, final)
    assert r.status_code == 201, r.text
    assert r.json()["admin"].startswith("admin-") and r.json()["created_at"]
    view = client.get(
        f"/api/v1/batches/{built.batch.id}/items/{broken.id}/consensus", headers=admin_headers
    ).json()
    assert view["final_source"] == "adjudication"
    assert view["adjudication"]["note"] == "response 1 leaks an address"
    assert view["final"]["harmlessness"] == [ids[0], ids[1]]
    assert len(view["annotations"]) == 3 and view["n_annotations"] == 3
    plain_view = client.get(
        f"/api/v1/batches/{built.batch.id}/items/{plain.id}/consensus", headers=admin_headers
    ).json()
    assert plain_view["final_source"] == "consensus"
    assert plain_view["consensus"]["helpfulness"]["agreement"] == 1.0
    lines = export(client, admin_headers, "pku-saferlhf", **params)
    assert [x["prompt"] for x in lines] == [plain.prompt, broken.prompt]
    line = lines[1]
    assert line["better_response_id"] == 1 and line["safer_response_id"] == 0
    assert line["response_1_severity_level"] == 3
    assert line["response_1_harm_category"]["Privacy Violation"] is True

    # An adjudication also overrides a resolved consensus, and the newest one is in force.
    plain_ids = built.ids(plain)
    override = {
        "responses": [
            {"response_id": i, "is_safe": True, "harm_categories": [], "severity": None}
            for i in plain_ids
        ],
        "helpfulness": [plain_ids[1], plain_ids[0]],
        "harmlessness": [plain_ids[1], plain_ids[0]],
    }
    assert adjudicate(client, admin_headers, built.batch.id, plain.id, override).status_code == 201
    lines = export(client, admin_headers, "pku-saferlhf", **params, min_agreement=1.0)
    assert lines[0]["better_response_id"] == 1 and lines[0]["safer_response_id"] == 1
    history = client.get(
        f"/api/v1/batches/{built.batch.id}/items/{plain.id}/adjudication", headers=admin_headers
    ).json()
    assert len(history) == 1 and history[0]["labels"]["helpfulness"] == override["helpfulness"]


def test_adjudication_is_validated_and_admin_only(
    client: TestClient,
    admin_headers: dict[str, str],
    db: Session,
    make_user: Any,
) -> None:
    built = build(db, 1)
    item = built.items[0]
    ids = built.ids(item)
    db.commit()  # a refused request rolls the session back; keep the fixtures
    unsafe_no_category = {
        "responses": [
            {"response_id": ids[0], "is_safe": True, "harm_categories": [], "severity": None},
            {"response_id": ids[1], "is_safe": False, "harm_categories": [], "severity": "minor"},
        ],
        "helpfulness": ids,
        "harmlessness": ids,
    }
    r = adjudicate(client, admin_headers, built.batch.id, item.id, unsafe_no_category)
    assert r.status_code == 422 and "harm_categories" in r.json()["detail"]
    lone_safe_second = {
        "responses": [
            {"response_id": ids[0], "is_safe": True, "harm_categories": [], "severity": None},
            {
                "response_id": ids[1],
                "is_safe": False,
                "harm_categories": ["Violence"],
                "severity": "minor",
            },
        ],
        "helpfulness": ids,
        "harmlessness": [ids[1], ids[0]],
    }
    r = adjudicate(client, admin_headers, built.batch.id, item.id, lone_safe_second)
    assert r.status_code == 422 and "harmlessness" in r.json()["detail"]
    other = build(db, 1)
    r = adjudicate(client, admin_headers, built.batch.id, other.items[0].id, lone_safe_second)
    assert r.status_code == 404
    _, token = make_user()
    r = adjudicate(client, {"Authorization": f"Bearer {token}"}, built.batch.id, item.id, {})
    assert r.status_code == 403


def test_split_is_deterministic_and_partitions_the_items(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    # Fixed prompts: the split is a pure function of the text (7 of these 30 land in test).
    built = build(db, 30, overlap=1, prompts=[f"Split prompt {i}: what now?" for i in range(30)])
    for item in built.items:
        annotate(db, built, item, user(db), payload(built.ids(item)))
    params: dict[str, Any] = {"batch_id": built.batch.id, "test_fraction": 0.3}
    everything = {x["prompt"] for x in export(client, admin_headers, "dpo-helpful", **params)}
    train = [
        x["prompt"] for x in export(client, admin_headers, "dpo-helpful", **params, split="train")
    ]
    test = [
        x["prompt"] for x in export(client, admin_headers, "dpo-helpful", **params, split="test")
    ]
    assert set(train) | set(test) == everything and not set(train) & set(test)
    assert len(test) == 7 and len(train) == 23
    assert test == [
        x["prompt"] for x in export(client, admin_headers, "dpo-helpful", **params, split="test")
    ]
    assert all(split_of(p, 0.3) == "test" for p in test)
    # The side depends on the prompt text only (a fixed value pins the rule).
    assert split_of("How do I bake bread?", 0.5) == split_of("How do I bake bread?", 0.5)


def test_annotations_format_has_every_annotation_with_stable_pseudonyms(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 2, overlap=2)
    alice, bob = user(db), user(db)
    first, second = built.items
    a1 = annotate(db, built, first, alice, payload(built.ids(first)), duration_ms=1500)
    annotate(db, built, first, bob, payload(built.ids(first), helpful=(1, 0)))
    annotate(db, built, second, alice, payload(built.ids(second)))
    skip(db, built, second, bob)
    lines = export(client, admin_headers, "annotations", batch_id=built.batch.id)
    assert len(lines) == 3
    names = [x["annotator"] for x in lines]
    assert names[0] == names[2] != names[1]
    assert alice.username not in json.dumps(lines) and bob.username not in json.dumps(lines)
    # Keyed with the installation's stored pseudonym key, not the session secret.
    assert names[0] == pseudonym(pseudonym_key(db), alice.id)
    assert names[0] != pseudonym(get_settings().resolved_secret_key(), alice.id)
    row = lines[0]
    for key in ("item_id", "assignment_id", "annotator", "submitted_at"):
        assert key in row
    assert row["item_id"] == first.id and row["assignment_id"] == a1.assignment_id
    assert row["duration_ms"] == 1500 and row["submitted_at"].startswith("2025-01-02T03:04:05")
    assert row["helpfulness"] == built.ids(first)
    assert [r["position"] for r in row["responses"]] == [0, 1]
    assert row["responses"][0]["is_safe"] is True
    # Keyed: the same user gets the same name, another key gives another name.
    assert pseudonym("k1", alice.id) == pseudonym("k1", alice.id) != pseudonym("k2", alice.id)


def test_rotating_the_session_secret_renames_no_annotator(
    app: FastAPI, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = build(db, 1, overlap=1)
    alice = user(db)
    annotate(db, built, built.items[0], alice, payload(built.ids(built.items[0])))
    _, token = create_token(db, user(db, role="admin"))
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}

    def exported_names() -> list[str]:
        with TestClient(app) as client:
            lines = export(client, headers, "annotations", batch_id=built.batch.id)
        return [x["annotator"] for x in lines]

    before = exported_names()
    monkeypatch.setenv("SAFEPREF_SECRET_KEY", "rotated-" + "x" * 40)
    get_settings.cache_clear()
    try:
        assert get_settings().resolved_secret_key().startswith("rotated-")
        assert exported_names() == before
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_project_filter_and_newest_batch_wins(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    first = build(db, 1, overlap=1)
    item = first.items[0]
    annotate(db, first, item, user(db), payload(first.ids(item)))
    # A second batch of the same project re-annotates the item with another preference.
    second = build(db, 0, overlap=1, project=first.project)
    from app.batches.models import BatchItem

    db.add(BatchItem(batch_id=second.batch.id, item_id=item.id))
    db.flush()
    annotate(
        db, first, item, user(db), payload(first.ids(item), helpful=(1, 0)), batch=second.batch
    )
    elsewhere = build(db, 1, overlap=1)
    annotate(
        db, elsewhere, elsewhere.items[0], user(db), payload(elsewhere.ids(elsewhere.items[0]))
    )

    lines = export(client, admin_headers, "pku-saferlhf", project_id=first.project.id)
    assert len(lines) == 1 and lines[0]["better_response_id"] == 1
    lines = export(client, admin_headers, "pku-saferlhf", batch_id=first.batch.id)
    assert len(lines) == 1 and lines[0]["better_response_id"] == 0


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"batch_id": 999_999}, 404),
        ({"project_id": 999_999}, 404),
        ({"min_agreement": 1.5}, 422),
        ({"dimensions": "politeness"}, 422),
        ({"split": "dev"}, 422),
    ],
)
def test_bad_export_requests(
    client: TestClient, admin_headers: dict[str, str], params: dict[str, Any], status: int
) -> None:
    r = client.get("/api/v1/exports/pku-saferlhf", params=params, headers=admin_headers)
    assert r.status_code == status and "detail" in r.json()


def test_export_needs_an_admin(client: TestClient, make_user: Any) -> None:
    assert client.get("/api/v1/exports/pku-saferlhf").status_code == 401
    _, token = make_user()
    r = client.get("/api/v1/exports/pku-saferlhf", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
