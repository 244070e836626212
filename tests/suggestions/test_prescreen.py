"""Model pre-screening against hand-computed figures, and the review flag source."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.items.models import ReferenceLabel
from app.suggestions.prescreen import cohen_kappa, contradicting_annotation_ids, prescreening
from tests.support.consensus_factory import SAFE, Built, annotate, build, payload, unsafe, user


def test_cohen_kappa_by_hand() -> None:
    # 50 units: both yes 20, yes/no 5, no/yes 10, both no 15. p_o = 35/50 = 0.7; rater 1 says
    # yes 25 times, rater 2 30 times: p_e = (25*30 + 25*20) / 50^2 = 0.5; kappa = 0.2/0.5.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    k = cohen_kappa(pairs)
    assert k.n == 50 and k.percent_agreement == pytest.approx(0.7)
    assert k.kappa == pytest.approx(0.4) and k.reason is None
    empty = cohen_kappa([])
    assert empty.kappa is None and empty.percent_agreement is None and empty.reason
    same = cohen_kappa([(1, 1), (1, 1)])
    assert same.percent_agreement == 1.0 and same.kappa is None and same.reason


def suggest(db: Session, item_id: int, origin: str, confidence: float | None, **p: Any) -> None:
    db.add(ReferenceLabel(item_id=item_id, origin=origin, payload=p, confidence=confidence))
    db.flush()


def by_position(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"position": k, **label} for k, label in enumerate(labels)]


def scenario(db: Session) -> tuple[Built, dict[str, list[int]]]:
    """Four items where three annotators agree, and one split item (no consensus).

    Consensus by position (r0, r1; preferred for helpfulness, harmlessness) against the
    suggestion of origin "m":
      item 0: U1 S; 0; 1     m: U1 S; 0; 1 (confidence 0.9)
      item 1: S  S; 1; 0     m: U1 S; 0; 0 (0.95)
      item 2: U2 U1; 0; 0    m: U2 S; 0; 0 (0.5)
      item 3: S  U3; 0; 0    m: S U3; 1; 0 (0.8)
      item 4: split          m: as item 0 (0.99)
    """
    built = build(db, n_items=5, n_responses=2, overlap=4)
    items = built.items
    team = [user(db) for _ in range(3)]
    consensus = [
        ([unsafe("minor"), SAFE], (0, 1), (1, 0)),
        ([SAFE, SAFE], (1, 0), (0, 1)),
        ([unsafe("moderate"), unsafe("minor")], (0, 1), (0, 1)),
        ([SAFE, unsafe("severe")], (0, 1), (0, 1)),
    ]
    made: dict[str, list[int]] = {}
    for k, (labels, helpful, harmless) in enumerate(consensus):
        ids = built.ids(items[k])
        made[f"item{k}"] = [
            annotate(db, built, items[k], who, payload(ids, labels, helpful, harmless)).id
            for who in team
        ]
    # A fourth annotator on item 0 differs only in severity and categories: no contradiction.
    ids0 = built.ids(items[0])
    odd = payload(ids0, [unsafe("severe", "Violence"), SAFE], (0, 1), (1, 0))
    made["item0"].append(annotate(db, built, items[0], user(db), odd).id)
    ids4 = built.ids(items[4])
    made["item4"] = [
        annotate(db, built, items[4], team[0], payload(ids4, [unsafe(), SAFE], (0, 1), (1, 0))).id,
        annotate(db, built, items[4], team[1], payload(ids4, [SAFE, unsafe()], (1, 0), (0, 1))).id,
    ]
    m = [
        ([unsafe("minor"), SAFE], [0, 1], [1, 0], 0.9),
        ([unsafe("minor"), SAFE], [0, 1], [0, 1], 0.95),
        ([unsafe("moderate"), SAFE], [0, 1], [0, 1], 0.5),
        ([SAFE, unsafe("severe")], [1, 0], [0, 1], 0.8),
        ([unsafe("minor"), SAFE], [0, 1], [1, 0], 0.99),
    ]
    for item, (labels, helpful, harmless, confidence) in zip(items, m, strict=True):
        suggest(
            db,
            item.id,
            "m",
            confidence,
            responses=by_position(labels),
            helpfulness=helpful,
            harmlessness=harmless,
        )
    # A second origin, on one item, without a confidence: measured, never flags.
    suggest(db, items[1].id, "other", None, responses=by_position([SAFE, SAFE]))
    return built, made


def test_prescreening_figures_by_hand(db: Session) -> None:
    built, _ = scenario(db)
    found = {o.origin: o for o in prescreening(db, built.batch.id)}
    m = found["m"]
    assert m.items == 5 and m.flagged == 0  # no threshold yet
    # is_safe, 8 responses: 6 agree; each side says unsafe 4 times: p_e = 0.5, kappa 0.5.
    assert m.dimensions["is_safe"].n == 8
    assert m.dimensions["is_safe"].percent_agreement == pytest.approx(0.75)
    assert m.dimensions["is_safe"].kappa == pytest.approx(0.5)
    # severity levels (m, human): (1,1) (0,0) (1,0) (0,0) (2,2) (0,1) (0,0) (3,3): 6 agree;
    # shares 0: 4/4, 1: 2/2, 2: 1/1, 3: 1/1 -> p_e = 22/64; kappa = (48-22)/(64-22) = 13/21.
    assert m.dimensions["severity"].percent_agreement == pytest.approx(0.75)
    assert m.dimensions["severity"].kappa == pytest.approx(13 / 21)
    # helpfulness, preferred: m 0 0 0 1, human 0 1 0 0: 2 of 4; p_e = (9 + 1)/16 -> -1/3.
    assert m.dimensions["helpfulness"].n == 4
    assert m.dimensions["helpfulness"].percent_agreement == pytest.approx(0.5)
    assert m.dimensions["helpfulness"].kappa == pytest.approx(-1 / 3)
    assert m.dimensions["harmlessness"].percent_agreement == pytest.approx(1.0)
    assert m.dimensions["harmlessness"].kappa == pytest.approx(1.0)
    other = found["other"]
    assert other.items == 1 and other.dimensions["is_safe"].n == 2
    assert other.dimensions["is_safe"].percent_agreement == 1.0
    assert other.dimensions["helpfulness"].n == 0


def test_flags_contradictions_of_confident_suggestions(db: Session) -> None:
    built, made = scenario(db)
    assert contradicting_annotation_ids(db, built.batch.id) == set()  # no threshold: off
    built.batch.suggestion_threshold = 0.8
    db.flush()
    # Item 1 (0.95): all three differ on r0's safety. Item 3 (0.8, at the threshold): all
    # three prefer another response for helpfulness. Item 4 (0.99): the second annotator.
    # Item 0: only severity/categories differ; item 2: below the threshold.
    expected = {*made["item1"], *made["item3"], made["item4"][1]}
    assert contradicting_annotation_ids(db, built.batch.id) == expected
    assert {o.origin: o.flagged for o in prescreening(db, built.batch.id)} == {
        "m": 7,
        "other": 0,
    }
    built.batch.suggestion_threshold = 0.81
    db.flush()
    assert contradicting_annotation_ids(db, built.batch.id) == {
        *made["item1"],
        made["item4"][1],
    }


def test_metrics_api_and_threshold_patch(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    built, _ = scenario(db)
    db.commit()
    bid = built.batch.id
    r = client.patch(
        f"/api/v1/batches/{bid}", json={"suggestion_threshold": 0.8}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["suggestion_threshold"] == 0.8
    for bad in (1.5, -0.1, "high"):
        r = client.patch(
            f"/api/v1/batches/{bid}", json={"suggestion_threshold": bad}, headers=admin_headers
        )
        assert r.status_code == 422, r.text
    r = client.get(f"/api/v1/batches/{bid}/metrics", headers=admin_headers)
    assert r.status_code == 200, r.text
    pre = {o["origin"]: o for o in r.json()["prescreening"]}
    assert pre["m"]["items"] == 5 and pre["m"]["flagged_annotations"] == 7
    assert pre["m"]["dimensions"]["is_safe"] == {
        "n_units": 8,
        "percent_agreement": 0.75,
        "cohen_kappa": 0.5,
        "reason": None,
    }
    assert pre["m"]["dimensions"]["helpfulness"]["cohen_kappa"] == pytest.approx(-1 / 3)
    # The dashboard shows the same figures.
    page = client.get(f"/batches/{bid}/dashboard", headers=admin_headers)
    assert page.status_code == 200
    assert 'id="prescreening"' in page.text
    assert 'data-origin="m" data-dimension="is_safe"' in page.text
    assert "7 annotations flagged" in page.text
    # Null turns flagging off again (and a PATCH without the field leaves it alone).
    r = client.patch(f"/api/v1/batches/{bid}", json={"name": "renamed"}, headers=admin_headers)
    assert r.json()["suggestion_threshold"] == 0.8
    r = client.patch(
        f"/api/v1/batches/{bid}", json={"suggestion_threshold": None}, headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["suggestion_threshold"] is None
    r = client.get(f"/api/v1/batches/{bid}/metrics", headers=admin_headers)
    assert {o["origin"]: o["flagged_annotations"] for o in r.json()["prescreening"]} == {
        "m": 0,
        "other": 0,
    }
