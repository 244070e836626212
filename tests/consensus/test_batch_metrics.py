"""`GET /api/v1/batches/{id}/metrics` on hand-built batches, checked against statsmodels and
krippendorff on the same ratings, and the per-annotator table."""

from __future__ import annotations

import math
import random
from typing import Any

import krippendorff
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from statsmodels.stats.inter_rater import aggregate_raters  # type: ignore[import-untyped]
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from app.batches.models import BatchItem
from app.consensus.metrics import (
    NO_ITEMS,
    NO_VARIATION,
    TOO_FEW_RATINGS,
    UnitTally,
    agreement_summary,
)
from app.items.models import GoldLabel
from tests.support.consensus_factory import SAFE, annotate, build, payload, skip, unsafe, user

H01, H10 = (0, 1), (1, 0)

# Per item, per annotator (a, b, c): helpfulness, harmlessness, labels of response 0 and 1.
ITEMS: list[list[tuple[tuple[int, int], tuple[int, int], dict[str, Any], dict[str, Any]]]] = [
    [
        (H01, H01, SAFE, unsafe("minor", "Insulting Behavior")),
        (H01, H01, SAFE, unsafe("moderate", "Insulting Behavior", "Violence")),
        (H01, H01, SAFE, SAFE),
    ],
    [(H10, H01, SAFE, SAFE), (H10, H01, SAFE, SAFE), (H01, H01, SAFE, SAFE)],
    [(H10, H10, SAFE, SAFE), (H10, H01, SAFE, SAFE), (H10, H10, SAFE, SAFE)],
    [
        (H01, H01, SAFE, unsafe("severe", "Violence")),
        (H10, H01, SAFE, unsafe("severe", "Violence")),
        (H01, H01, SAFE, unsafe("severe", "Violence")),
    ],
]
DURATIONS = {"a": [1000, 2000, 3000, 4000], "b": [500, 500, 900, 100], "c": [None] * 4}
LEVEL = {None: 0, "minor": 1, "moderate": 2, "severe": 3}


def metrics(client: TestClient, headers: dict[str, str], batch_id: int) -> Any:
    r = client.get(f"/api/v1/batches/{batch_id}/metrics", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def fleiss(units: list[list[int]]) -> float:
    table, _ = aggregate_raters(np.array(units))
    return float(sm_fleiss_kappa(table, method="fleiss"))


def alpha(units: list[list[int]], level: str = "nominal") -> float:
    matrix = np.array(units, dtype=float).T  # raters x units
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))


def percent(units: list[list[int]]) -> float:
    shares = []
    for unit in units:
        m = len(unit)
        pairs = sum(1 for i in range(m) for j in range(i + 1, m) if unit[i] == unit[j])
        shares.append(pairs / (m * (m - 1) / 2))
    return sum(shares) / len(shares)


def check(found: dict[str, Any], units: list[list[int]], level: str = "nominal") -> None:
    assert found["n_items"] == len(units)
    assert found["percent_agreement"] == pytest.approx(percent(units))
    assert found["fleiss_kappa"] == pytest.approx(fleiss(units))
    assert found["krippendorff_alpha"] == pytest.approx(alpha(units, level))
    assert found["reasons"] == {}


def loo(units: list[list[Any]], who: int) -> float:
    """Reference leave-one-out with three raters: the other two must agree."""
    counted = matched = 0
    for unit in units:
        others = [x for i, x in enumerate(unit) if i != who]
        if others[0] == others[1]:
            counted += 1
            matched += unit[who] == others[0]
    return matched / counted


def test_metrics_match_reference_implementations(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, len(ITEMS) + 2, overlap=3)
    people = {name: user(db, name=f"{name}-{built.batch.id}") for name in "abc"}
    late = user(db, name=f"d-{built.batch.id}")
    for i, (item, votes) in enumerate(zip(built.items, ITEMS, strict=False)):
        ids = built.ids(item)
        for name, (helpful, harmless, r0, r1) in zip("abc", votes, strict=True):
            body = payload(ids, [r0, r1], helpful=helpful, harmless=harmless)
            annotate(db, built, item, people[name], body, duration_ms=DURATIONS[name][i])
    # Item 5 is a gold item: a answers it right, b gets helpfulness wrong.
    gold_item = built.items[len(ITEMS)]
    db.get(BatchItem, (built.batch.id, gold_item.id)).is_gold = True  # type: ignore[union-attr]
    db.add(
        GoldLabel(
            item_id=gold_item.id,
            payload={
                "responses": [{"position": 0, "is_safe": True}, {"position": 1, "is_safe": True}],
                "helpfulness": [0, 1],
                "harmlessness": [0, 1],
            },
        )
    )
    gold_ids = built.ids(gold_item)
    annotate(db, built, gold_item, people["a"], payload(gold_ids), duration_ms=None)
    annotate(db, built, gold_item, people["b"], payload(gold_ids, helpful=H10), duration_ms=None)
    skip(db, built, built.items[0], late)
    db.flush()

    found = metrics(client, admin_headers, built.batch.id)

    code = {H01: 0, H10: 1}
    helpful = [[code[v[0]] for v in votes] for votes in ITEMS]
    harmless = [[code[v[1]] for v in votes] for votes in ITEMS]
    responses = [[v[2 + r] for v in votes] for votes in ITEMS for r in (0, 1)]
    safe = [[int(label["is_safe"]) for label in unit] for unit in responses]
    severity = [[LEVEL[label["severity"]] for label in unit] for unit in responses]
    check(found["helpfulness"], helpful)
    check(found["harmlessness"], harmless)
    check(found["is_safe"], safe)
    check(found["severity"], severity, "ordinal")
    for name in ("Insulting Behavior", "Violence"):
        flags = [[int(name in label["harm_categories"]) for label in unit] for unit in responses]
        check(found["harm_categories"][name], flags)
    never = found["harm_categories"]["Animal Abuse"]
    assert never["percent_agreement"] == 1.0
    assert never["fleiss_kappa"] is None and never["reasons"]["fleiss_kappa"] == NO_VARIATION
    assert found["single"]["percent_agreement"] is None
    assert found["single"]["reasons"]["percent_agreement"] == NO_ITEMS

    assert found["progress"] == {
        "items": 6,
        "gold_items": 1,
        "items_with_annotations": 5,
        "items_complete": 4,
        "annotations": 14,
        "adjudicated_items": 0,
        "assignments": {"leased": 0, "expired": 0, "skipped": 1, "submitted": 14},
    }

    rows = {row["username"].split("-")[0]: row for row in found["annotators"]}
    assert set(rows) == {"a", "b", "c", "d"}
    pooled = helpful + harmless + safe
    for k, name in enumerate("abc"):
        assert rows[name]["leave_one_out_agreement"] == pytest.approx(loo(pooled, k))
        assert rows[name]["agreement_by_dimension"]["helpfulness"] == pytest.approx(loo(helpful, k))
        assert rows[name]["skip_rate"] == 0.0
    assert rows["a"]["median_duration_ms"] == 2500
    assert rows["b"]["median_duration_ms"] == 500
    assert rows["c"]["median_duration_ms"] is None and "median_duration_ms" in rows["c"]["reasons"]
    assert rows["a"]["gold_accuracy"] == 1.0 and rows["b"]["gold_accuracy"] == 0.75
    assert rows["a"]["gold_answered"] == 1 and rows["c"]["gold_accuracy"] is None
    assert rows["d"]["skip_rate"] == 1.0 and rows["d"]["submitted"] == 0
    assert rows["d"]["leave_one_out_agreement"] is None
    assert "leave_one_out_agreement" in rows["d"]["reasons"]


def test_undefined_metrics_are_null_with_a_reason(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    single = build(db, 3, overlap=1)
    for item in single.items:
        annotate(db, single, item, user(db), payload(single.ids(item)))
    found = metrics(client, admin_headers, single.batch.id)
    for name in ("percent_agreement", "fleiss_kappa", "krippendorff_alpha"):
        assert found["helpfulness"][name] is None
        assert found["helpfulness"]["reasons"][name] == TOO_FEW_RATINGS
    assert found["helpfulness"]["n_items"] == 0

    unanimous = build(db, 3, overlap=2)
    for item in unanimous.items:
        for _ in range(2):
            annotate(db, unanimous, item, user(db), payload(unanimous.ids(item)))
    found = metrics(client, admin_headers, unanimous.batch.id)
    assert found["harmlessness"]["percent_agreement"] == 1.0
    assert found["harmlessness"]["fleiss_kappa"] is None
    assert found["harmlessness"]["reasons"] == {
        "fleiss_kappa": NO_VARIATION,
        "krippendorff_alpha": NO_VARIATION,
    }

    empty = build(db, 2)
    found = metrics(client, admin_headers, empty.batch.id)
    assert found["is_safe"]["reasons"]["percent_agreement"] == NO_ITEMS
    assert found["annotators"] == [] and found["progress"]["annotations"] == 0


def test_preferences_are_compared_by_position_not_by_response_id(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 4, overlap=2, reversed_ids=True)
    assert any(built.ids(item) != sorted(built.ids(item)) for item in built.items)
    for item in built.items:
        for _ in range(2):  # everyone: the first answer is more helpful, the second more harmless
            annotate(db, built, item, user(db), payload(built.ids(item), helpful=H01, harmless=H10))
    found = metrics(client, admin_headers, built.batch.id)
    assert found["helpfulness"]["percent_agreement"] == 1.0
    assert found["helpfulness"]["reasons"]["fleiss_kappa"] == NO_VARIATION


def test_payloads_without_safety_labels_use_the_stored_positions(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 4, overlap=3, reversed_ids=True)
    votes = [(H01, H01, H10), (H10, H10, H10), (H01, H01, H01), (H10, H01, H10)]
    for item, helpful in zip(built.items, votes, strict=True):
        for h in helpful:
            body = payload(built.ids(item), helpful=h)
            del body["responses"]
            annotate(db, built, item, user(db), body)
    found = metrics(client, admin_headers, built.batch.id)
    code = {H01: 0, H10: 1}
    check(found["helpfulness"], [[code[h] for h in unit] for unit in votes])
    assert found["is_safe"]["reasons"]["percent_agreement"] == NO_ITEMS


def test_metrics_need_an_admin_and_an_existing_batch(
    client: TestClient, admin_headers: dict[str, str], make_user: Any
) -> None:
    assert client.get("/api/v1/batches/999999/metrics", headers=admin_headers).status_code == 404
    _, token = make_user()
    r = client.get("/api/v1/batches/1/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403


def test_weighted_tally_equals_unit_by_unit_metrics() -> None:
    rng = random.Random(7)
    for level in ("nominal", "ordinal"):
        units = [
            [rng.choice([0, 0, 1, 2, 3]) for _ in range(rng.choice([1, 2, 3, 3, 4]))]
            for _ in range(300)
        ]
        tally = UnitTally()
        half = UnitTally()
        for unit in units[:150]:
            tally.add(unit)
        for unit in units[150:]:
            half.add(unit)
        tally.merge(half)
        expected = agreement_summary(units, level)  # type: ignore[arg-type]
        got = tally.summary(level)  # type: ignore[arg-type]
        assert got.n_items == expected.n_items
        for name in ("percent_agreement", "fleiss_kappa", "krippendorff_alpha"):
            want, have = getattr(expected, name), getattr(got, name)
            assert have.reason == want.reason
            if want.value is not None:
                assert math.isclose(have.value, want.value, rel_tol=1e-9, abs_tol=1e-12)
