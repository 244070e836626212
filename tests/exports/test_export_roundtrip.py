"""Round trip through the public API: import a PKU-SafeRLHF file, let three simulated annotators
reproduce its labels with `POST /batches/{id}/next` and `PUT /assignments/{id}/annotation`,
and get the same file back from `GET /exports/pku-saferlhf`, line for line, key order included.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.support.samples import jsonl, pku_pair

# Line 4 gets one dissenting vote on helpfulness; line 5 gets three consistent votes whose
# majorities combine into an inconsistent consensus.
DISSENTED, INCONSISTENT = 4, 5


def source_lines() -> list[dict[str, Any]]:
    shapes = [
        {"unsafe_1": True, "better": 1, "safer": 0},
        {"unsafe_1": False, "better": 0, "safer": 1},
        {"unsafe_1": True, "better": 0, "safer": 0},
        {"unsafe_1": False, "better": 1, "safer": 0},
        {"unsafe_1": True, "better": 1, "safer": 0},
        {"unsafe_1": True, "better": 0, "safer": 0},
    ]
    return [pku_pair(i, **shape) for i, shape in enumerate(shapes)]


def labels_of(line: dict[str, Any], i: int) -> dict[str, Any]:
    if line[f"is_response_{i}_safe"]:
        return {"is_safe": True, "harm_categories": [], "severity": None}
    flags = line[f"response_{i}_harm_category"]
    level = line[f"response_{i}_severity_level"]
    return {
        "is_safe": False,
        "harm_categories": [c for c, on in flags.items() if on],
        "severity": ("minor", "moderate", "severe")[level - 1],
    }


SAFE = {"is_safe": True, "harm_categories": [], "severity": None}
UNSAFE = {"is_safe": False, "harm_categories": ["Insulting Behavior"], "severity": "minor"}


def annotation(line: dict[str, Any], ids: list[int], who: int, index: int) -> dict[str, Any]:
    """What annotator `who` submits for source line `index`; `ids` are response ids by
    position."""
    labels = [labels_of(line, 0), labels_of(line, 1)]
    better, safer = line["better_response_id"], line["safer_response_id"]
    helpful, harmless = [better, 1 - better], [safer, 1 - safer]
    if index == DISSENTED and who == 2:
        helpful.reverse()
    if index == INCONSISTENT:
        # Majorities: response 0 safe (votes 0, 1), response 1 unsafe (votes 0, 2), response 1
        # more harmless (votes 1, 2): "the only safe answer ranks second", which no vote said.
        labels, harmless = [
            ([SAFE, UNSAFE], [0, 1]),
            ([SAFE, SAFE], [1, 0]),
            ([UNSAFE, UNSAFE], [1, 0]),
        ][who]
    return {
        "responses": [{"response_id": ids[p], **labels[p]} for p in (0, 1)],
        "helpfulness": [ids[p] for p in helpful],
        "harmlessness": [ids[p] for p in harmless],
        "duration_ms": 12_000,
    }


def annotate_everything(
    client: TestClient, batch_id: int, tokens: list[str], lines: list[dict[str, Any]]
) -> None:
    by_prompt = {line["prompt"]: (i, line) for i, line in enumerate(lines)}
    for who, token in enumerate(tokens):
        headers = {"Authorization": f"Bearer {token}"}
        done = 0
        while True:
            r = client.post(f"/api/v1/batches/{batch_id}/next", headers=headers)
            if r.status_code == 204:
                break
            assert r.status_code == 200, r.text
            lease = r.json()
            item = lease["item"]
            index, line = by_prompt[item["prompt"]]
            # Responses arrive in this annotator's display order: find them by text.
            by_text = {resp["text"]: resp["id"] for resp in item["responses"]}
            ids = [by_text[line["response_0"]], by_text[line["response_1"]]]
            body = annotation(line, ids, who, index)
            put = client.put(
                f"/api/v1/assignments/{lease['assignment_id']}/annotation",
                json=body,
                headers=headers,
            )
            assert put.status_code == 200, put.text
            done += 1
        assert done == len(lines)


def exported(client: TestClient, headers: dict[str, str], **params: Any) -> list[Any]:
    r = client.get("/api/v1/exports/pku-saferlhf", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def same_lines(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert got == expected
    for a, b in zip(got, expected, strict=True):
        assert list(a) == list(b)
        for key in ("response_0_harm_category", "response_1_harm_category"):
            assert list(a[key]) == list(b[key])


def test_import_annotate_export_round_trip(
    client: TestClient, admin_headers: dict[str, str], make_user: Any
) -> None:
    lines = source_lines()
    r = client.post("/api/v1/projects", json={"name": "roundtrip"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    project_id = r.json()["id"]
    r = client.post(
        f"/api/v1/projects/{project_id}/imports",
        files={"file": ("pku.jsonl", jsonl(lines), "application/jsonl")},
        params={"labels_as": "reference"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/batches",
        json={"project_id": project_id, "name": "round", "overlap": 3},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    batch_id = r.json()["id"]
    tokens = []
    for k in range(3):
        _, token = make_user(f"annotator-{k}")
        member = client.post(
            f"/api/v1/batches/{batch_id}/members",
            json={"username": f"annotator-{k}"},
            headers=admin_headers,
        )
        assert member.status_code in (200, 201), member.text
        tokens.append(token)

    annotate_everything(client, batch_id, tokens, lines)

    # The majority wins over the dissent; the inconsistent item is held back.
    expected = [line for i, line in enumerate(lines) if i != INCONSISTENT]
    same_lines(exported(client, admin_headers, batch_id=batch_id), expected)
    # Unanimous items only.
    unanimous = [line for i, line in enumerate(lines) if i not in (DISSENTED, INCONSISTENT)]
    same_lines(exported(client, admin_headers, batch_id=batch_id, min_agreement=1.0), unanimous)

    # An admin adjudicates the inconsistent item with the file's own labels.
    view = client.get(
        "/api/v1/exports/annotations", params={"batch_id": batch_id}, headers=admin_headers
    )
    assert len(view.text.splitlines()) == 3 * len(lines)
    line = lines[INCONSISTENT]
    items = client.get(f"/api/v1/projects/{project_id}/items", headers=admin_headers).json()
    item = next(i for i in items["items"] if i["prompt"] == line["prompt"])
    ids = [r["id"] for r in sorted(item["responses"], key=lambda r: r["position"])]
    consensus = client.get(
        f"/api/v1/batches/{batch_id}/items/{item['id']}/consensus", headers=admin_headers
    ).json()
    assert consensus["consensus"]["inconsistent"] is True
    body = annotation(line, ids, 0, -1)
    del body["duration_ms"]
    r = client.post(
        f"/api/v1/batches/{batch_id}/items/{item['id']}/adjudication",
        json={**body, "note": "checked against the guidelines"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    same_lines(exported(client, admin_headers, batch_id=batch_id), lines)
