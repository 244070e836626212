"""PUT /assignments/{id}/annotation: validation naming the field, revisions, idempotency, access."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation, AnnotationRevision
from tests.support.queue_factory import seed_project, valid_annotation

MakeUser = Callable[..., tuple[Any, str]]


def leased(
    client: TestClient,
    db: Session,
    admin_headers: dict[str, str],
    make_user: MakeUser,
    *,
    responses: int = 2,
    **questions: Any,
) -> tuple[int, list[int], dict[str, str]]:
    """A fresh batch with one item leased to a new annotator: (assignment id, response ids
    in position order, the annotator's headers)."""
    project, _ = seed_project(db, 1, responses=responses, **questions)
    user, token = make_user()
    r = client.post(
        "/api/v1/batches",
        json={"project_id": project.id, "name": "b", "overlap": 1, "members": [user.username]},
        headers=admin_headers,
    )
    headers = {"Authorization": f"Bearer {token}"}
    lease = client.post(f"/api/v1/batches/{r.json()['id']}/next", headers=headers).json()
    ids = sorted(x["id"] for x in lease["item"]["responses"])
    return lease["assignment_id"], ids, headers


def annotation_rows(db: Session) -> tuple[int, int]:
    return (
        db.scalar(select(func.count()).select_from(Annotation)) or 0,
        db.scalar(select(func.count()).select_from(AnnotationRevision)) or 0,
    )


def test_every_broken_rule_is_a_422_naming_the_field_and_writes_nothing(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    aid, (a, b), h = leased(client, db, admin_headers, make_user)
    good = valid_annotation([a, b], unsafe=[b])
    before = annotation_rows(db)

    def broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        body = copy.deepcopy(good)
        change(body)
        return body

    cases: list[tuple[str, dict[str, Any]]] = [
        ("responses", broken(lambda p: p["responses"].pop())),
        ("responses", broken(lambda p: p.pop("responses"))),
        ("responses[1].response_id", broken(lambda p: p["responses"][1].update(response_id=a))),
        ("responses[0].response_id", broken(lambda p: p["responses"][0].update(response_id=-5))),
        (
            "responses[1].harm_categories",
            broken(lambda p: p["responses"][1].update(harm_categories=["Not A Category"])),
        ),
        (
            "responses[1].harm_categories",
            broken(lambda p: p["responses"][1].update(harm_categories=["Violence", "Violence"])),
        ),
        (
            "responses[0].harm_categories",
            broken(lambda p: p["responses"][0].update(harm_categories=["Violence"])),
        ),
        ("responses[0].severity", broken(lambda p: p["responses"][0].update(severity="minor"))),
        ("responses[1].severity", broken(lambda p: p["responses"][1].update(severity=None))),
        (
            "responses[1].harm_categories",
            broken(lambda p: p["responses"][1].update(harm_categories=[])),
        ),
        ("helpfulness", broken(lambda p: p.update(helpfulness=[a, a]))),
        ("helpfulness", broken(lambda p: p.update(helpfulness=[a]))),
        ("helpfulness", broken(lambda p: p.update(helpfulness=[a, 999_999]))),
        ("harmlessness", broken(lambda p: p.pop("harmlessness"))),
        # The lone safe answer (a) must rank first for harmlessness.
        ("harmlessness", broken(lambda p: p.update(harmlessness=[b, a]))),
        ("single", broken(lambda p: p.update(single=[a, b]))),
        ("rationale", broken(lambda p: p.update(rationale="because"))),
    ]
    for field, body in cases:
        r = client.put(f"/api/v1/assignments/{aid}/annotation", json=body, headers=h)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["detail"].startswith(f"{field}:"), (field, r.json())
        assert r.json()["field"] == field
    # Type errors come from the schema, which names the field in `loc`.
    for body in (
        broken(lambda p: p["responses"][0].update(is_safe="yes")),
        broken(lambda p: p["responses"][0].update(severity="extreme")),
        broken(lambda p: p.update(surprise=1)),
        broken(lambda p: p.update(helpfulness=[str(a), str(b)])),
    ):
        r = client.put(f"/api/v1/assignments/{aid}/annotation", json=body, headers=h)
        assert r.status_code == 422, r.text
        assert isinstance(r.json()["detail"], list) and r.json()["detail"][0]["loc"][0] == "body"
    assert annotation_rows(db) == before
    assert (
        client.put(f"/api/v1/assignments/{aid}/annotation", json=good, headers=h).status_code == 200
    )


def test_single_and_rationale_are_required_exactly_when_asked(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    aid, (a, b, c), h = leased(
        client,
        db,
        admin_headers,
        make_user,
        responses=3,
        ask_safety=False,
        ask_single=True,
        ask_rationale=True,
    )
    body: dict[str, Any] = {
        "helpfulness": [c, a, b],
        "harmlessness": [a, b, c],
        "single": [b, c, a],
        "rationale": "B is useful and harmless.",
    }
    for field, change in (
        ("responses", {"responses": valid_annotation([a, b, c])["responses"]}),
        ("single", {"single": None}),
        ("rationale", {"rationale": "   "}),
        ("rationale", {"rationale": None}),
        ("single", {"single": [b, c, c]}),
    ):
        r = client.put(f"/api/v1/assignments/{aid}/annotation", json={**body, **change}, headers=h)
        assert r.status_code == 422 and r.json()["field"] == field, (field, r.text)
    r = client.put(f"/api/v1/assignments/{aid}/annotation", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["payload"] == body


def test_payload_is_normalised_and_resubmits_are_idempotent_or_revisions(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    aid, (a, b), h = leased(client, db, admin_headers, make_user)
    first = {
        "responses": [
            {
                "response_id": b,
                "is_safe": False,
                "harm_categories": ["Violence", "Cybercrime", "Insulting Behavior"],
                "severity": "severe",
            },
            {"response_id": a, "is_safe": True},
        ],
        "helpfulness": [b, a],
        "harmlessness": [a, b],
        "duration_ms": 4000,
    }
    url = f"/api/v1/assignments/{aid}/annotation"
    r1 = client.put(url, json=first, headers=h)
    assert r1.status_code == 200 and r1.json()["outcome"] == "created"
    stored = r1.json()["payload"]
    # Labels in position order, categories in taxonomy order, defaults filled in.
    assert [x["response_id"] for x in stored["responses"]] == [a, b]
    assert stored["responses"][0] == {
        "response_id": a,
        "is_safe": True,
        "harm_categories": [],
        "severity": None,
    }
    assert stored["responses"][1]["harm_categories"] == [
        "Insulting Behavior",
        "Violence",
        "Cybercrime",
    ]
    # The same answer again (a retried request): nothing new.
    r2 = client.put(url, json=first, headers=h)
    assert r2.status_code == 200 and r2.json()["outcome"] == "unchanged"
    assert r2.json()["annotation_id"] == r1.json()["annotation_id"] and r2.json()["revision"] == 1
    assert annotation_rows(db) == (1, 1)
    revised = {**first, "helpfulness": [a, b], "duration_ms": 1500}
    r3 = client.put(url, json=revised, headers=h)
    assert r3.status_code == 200 and r3.json()["outcome"] == "revised"
    assert r3.json()["revision"] == 2 and r3.json()["duration_ms"] == 5500
    assert annotation_rows(db) == (1, 2)
    kept = db.scalars(
        select(AnnotationRevision.payload)
        .where(AnnotationRevision.annotation_id == r1.json()["annotation_id"])
        .order_by(AnnotationRevision.revision)
    ).all()
    assert [p["helpfulness"] for p in kept] == [[b, a], [a, b]]
    shown = client.get(f"/api/v1/assignments/{aid}", headers=h).json()
    assert shown["status"] == "submitted" and shown["annotation"]["revision"] == 2


def test_assignments_are_their_owners_only(
    client: TestClient, db: Session, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    aid, (a, b), h = leased(client, db, admin_headers, make_user)
    _, other = make_user()
    oh = {"Authorization": f"Bearer {other}"}
    body = valid_annotation([a, b])
    assert client.get(f"/api/v1/assignments/{aid}", headers=oh).status_code == 404
    assert (
        client.put(f"/api/v1/assignments/{aid}/annotation", json=body, headers=oh).status_code
        == 404
    )
    assert client.post(f"/api/v1/assignments/{aid}/skip", headers=oh).status_code == 404
    assert client.get("/api/v1/assignments/999999", headers=h).status_code == 404
    assert client.get(f"/api/v1/assignments/{aid}", headers=admin_headers).status_code == 200
    r = client.put(f"/api/v1/assignments/{aid}/annotation", json=body, headers=admin_headers)
    assert r.status_code == 404  # admins read anyone's work but never submit it
    assert client.get(f"/api/v1/assignments/{aid}", headers=h).status_code == 200
