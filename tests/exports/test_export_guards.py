"""Two export rules that no other test pinned down.

* ``include_unresolved`` fills ties, but the filled labels must still obey the labelling
  invariants: a line never names the unsafe answer as the safer one.
* A line's harm-category object has exactly the project's taxonomy as keys, in its order, even
  when stored labels carry a name outside it (a category renamed after labelling).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.consensus.labels import FinalLabels, ResponseLabels
from app.errors import Invalid
from app.exports.filters import ExportFilters, has_dimensions
from app.exports.formats import FORMATS
from tests.support.consensus_factory import SAFE, Built, annotate, build, payload, unsafe, user

# The formats that write category objects, and where: this file's own list, checked against
# every format the product has by the first test below.
CATEGORY_KEYS: dict[str, tuple[str, ...]] = {
    "pku-saferlhf": ("response_0_harm_category", "response_1_harm_category"),
    "pku-saferlhf-qa": ("harm_category",),
}
OLD = ["Spam", "Scam", "Gore"]
# "Gore" was renamed "Graphic violence" after the items were labelled.
RENAMED = ["Spam", "Scam", "Graphic violence"]


def export(client: TestClient, headers: dict[str, str], fmt: str, **params: Any) -> list[Any]:
    r = client.get(f"/api/v1/exports/{fmt}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def votes(db: Session, built: Built, item: Any, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        annotate(db, built, item, user(db), body)


# --- include_unresolved and consistency --------------------------------------------------


def test_include_unresolved_never_makes_the_unsafe_answer_the_safer_one(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    """Overlap 2: one vote finds both answers safe and answer 1 more harmless, the other finds
    answer 1 unsafe and answer 0 more harmless. Filling the ties gives "answer 1 unsafe" and
    the harmlessness ranking given first. When that ranking puts answer 1 first, the filled
    labels contradict each other and the item is left out; in the other submit order they
    agree and the line says answer 0 is safer."""
    built = build(db, 2, overlap=2)
    contradicted, consistent = built.items
    both_safe = payload(built.ids(contradicted), [SAFE, SAFE], harmless=(1, 0))
    one_unsafe = payload(
        built.ids(contradicted), [SAFE, unsafe("severe", "Cybercrime")], harmless=(0, 1)
    )
    votes(db, built, contradicted, [both_safe, one_unsafe])
    ids = built.ids(consistent)
    votes(
        db,
        built,
        consistent,
        [
            payload(ids, [SAFE, unsafe("severe", "Cybercrime")], harmless=(0, 1)),
            payload(ids, [SAFE, SAFE], harmless=(1, 0)),
        ],
    )
    batch = {"batch_id": built.batch.id}
    assert export(client, admin_headers, "pku-saferlhf", **batch) == []

    lines = export(client, admin_headers, "pku-saferlhf", **batch, include_unresolved="true")
    assert [line["prompt"] for line in lines] == [consistent.prompt]
    (line,) = lines
    assert line["is_response_0_safe"] is True and line["is_response_1_safe"] is False
    assert line["safer_response_id"] == 0
    assert line["response_1_severity_level"] == 3
    assert line["response_1_harm_category"]["Cybercrime"] is True
    for line in lines:
        unsafe_ids = [k for k in (0, 1) if not line[f"is_response_{k}_safe"]]
        assert line["safer_response_id"] not in unsafe_ids

    # The DPO harmless pairs obey the same rule: the unsafe answer is never "chosen".
    texts = {r.id: r.text for rs in built.responses.values() for r in rs}
    harmless = export(client, admin_headers, "dpo-harmless", **batch, include_unresolved="true")
    assert harmless == [
        {"prompt": consistent.prompt, "chosen": texts[ids[0]], "rejected": texts[ids[1]]}
    ]


# --- category keys ---------------------------------------------------------------------------


def _labelled_then_renamed(
    client: TestClient, headers: dict[str, str], db: Session
) -> tuple[Built, dict[str, Any]]:
    """Three items labelled with "Gore" under OLD, then the project renames it: one unanimous
    (the export's fast path), one with a dissenting vote (the general consensus path), one
    adjudicated (the adjudicator's labels)."""
    built = build(db, 3, taxonomy=OLD, ask_single=True)
    unanimous, majority, adjudicated = built.items
    body = payload(built.ids(unanimous), [SAFE, unsafe("moderate", "Gore", "Scam")], single=(0, 1))
    votes(db, built, unanimous, [body] * 3)
    ids = built.ids(majority)
    # Three different payloads (no strict majority of identical ones): the general path.
    votes(
        db,
        built,
        majority,
        [
            payload(ids, [SAFE, unsafe("moderate", "Gore", "Scam")], single=(0, 1)),
            payload(ids, [SAFE, unsafe("moderate", "Scam", "Gore")], single=(0, 1)),
            payload(ids, [SAFE, unsafe("severe", "Gore", "Scam")], helpful=(1, 0), single=(0, 1)),
        ],
    )
    ids = built.ids(adjudicated)
    votes(
        db, built, adjudicated, [payload(ids, [SAFE, unsafe("minor", "Spam")], single=(0, 1))] * 3
    )
    db.commit()
    final = {
        "responses": [
            {"response_id": ids[0], "is_safe": True, "harm_categories": [], "severity": None},
            {
                "response_id": ids[1],
                "is_safe": False,
                "harm_categories": ["Gore", "Scam"],
                "severity": "moderate",
            },
        ],
        "helpfulness": ids,
        "harmlessness": ids,
        "single": ids,
    }
    url = f"/api/v1/batches/{built.batch.id}/items/{adjudicated.id}/adjudication"
    assert client.post(url, json=final, headers=headers).status_code == 201
    built.project.taxonomy = list(RENAMED)
    db.commit()
    return built, {"batch_id": built.batch.id}


def test_the_formats_with_category_objects_are_all_listed_here(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    _, batch = _labelled_then_renamed(client, admin_headers, db)
    found: dict[str, tuple[str, ...]] = {}
    for fmt in FORMATS:
        lines = export(client, admin_headers, fmt, **batch)
        assert lines, fmt
        keys = tuple(k for k, v in lines[0].items() if isinstance(v, dict))
        if keys:
            found[fmt] = keys
    assert found == CATEGORY_KEYS


@pytest.mark.parametrize("fmt", sorted(CATEGORY_KEYS))
def test_category_keys_are_exactly_the_taxonomy_after_a_rename(
    client: TestClient, admin_headers: dict[str, str], db: Session, fmt: str
) -> None:
    _, batch = _labelled_then_renamed(client, admin_headers, db)
    lines = export(client, admin_headers, fmt, **batch)
    per_item = 1 if fmt == "pku-saferlhf" else 2
    assert len(lines) == 3 * per_item  # each path wrote its item
    for line in lines:
        for key in CATEGORY_KEYS[fmt]:
            assert list(line[key]) == RENAMED, (key, line[key])
            assert all(type(v) is bool for v in line[key].values())
    # The unsafe answer of every item: "Scam" (still in the taxonomy) flagged; the stored
    # "Gore" matches no key and adds none.
    unsafe_objects = (
        [line["response_1_harm_category"] for line in lines]
        if fmt == "pku-saferlhf"
        else [line["harm_category"] for line in lines if not line["is_safe"]]
    )
    assert unsafe_objects == [{"Spam": False, "Scam": True, "Graphic violence": False}] * 3


def test_an_unknown_dimension_is_refused_with_the_list_of_known_ones(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.get(
        "/api/v1/exports/pku-saferlhf",
        params={"dimensions": "helpfulness,bogus"},
        headers=admin_headers,
    )
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "dimensions: unknown dimension 'bogus'; use helpfulness, harmlessness, single, is_safe"
    )


# --- filter validation (found by mutation testing) -------------------------------------------


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"min_annotations": 0}, "min_annotations: must be at least 1"),
        ({"min_agreement": -0.01}, "min_agreement: must be between 0 and 1"),
        ({"min_agreement": 1.01}, "min_agreement: must be between 0 and 1"),
        ({"test_fraction": 0.0}, "test_fraction: must be strictly between 0 and 1"),
        ({"test_fraction": 1.0}, "test_fraction: must be strictly between 0 and 1"),
        (
            {"dimensions": ("bogus",)},
            "dimensions: unknown dimension 'bogus'; use helpfulness, harmlessness, single, is_safe",
        ),
    ],
)
def test_export_filters_refuse_values_out_of_range(given: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid) as refused:
        ExportFilters(**given)
    assert refused.value.detail == message


def test_export_filters_accept_the_edges_of_their_ranges() -> None:
    for given in (
        {"min_annotations": 1},
        {"min_agreement": 0.0},
        {"min_agreement": 1.0},
        {"test_fraction": 0.001},
        {"test_fraction": 0.999},
    ):
        ExportFilters(**given)  # type: ignore[arg-type]


def test_safety_needs_a_label_for_every_response() -> None:
    labels = FinalLabels(None, None, None, {1: ResponseLabels(True, (), 0)})
    assert has_dimensions(labels, ("is_safe",), [1]) is True
    assert has_dimensions(labels, ("is_safe",), [1, 2]) is False
