"""Pairwise consensus for items with three and four answers (hand-built votes), the pair
formats writing only the resolved pairs, and Krippendorff's alpha with a rank distance checked
against the `krippendorff` package."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import krippendorff
import numpy as np
import pytest

from app.consensus.aggregate import dimension_consensus, item_consensus
from app.consensus.labels import labels_from_payload
from app.consensus.metrics import krippendorff_alpha, rank_distance
from app.consensus.pairwise import copeland_order, pair_majorities
from app.consensus.votes import ResponseVote, Vote
from app.exports.filters import ExportFilters, select_labels
from app.exports.formats import LINES, NEEDS, ItemRow, ResponseRow

SAFE = ResponseVote(True)
TAXONOMY = ("Violence",)


def votes_for(rankings: list[tuple[int, ...]], n: int) -> list[Vote]:
    """Each ranking for both helpfulness and harmlessness; every answer safe."""
    return [
        Vote(f"v{k}", dict.fromkeys(range(n), SAFE), ranking, ranking)
        for k, ranking in enumerate(rankings)
    ]


def item(n: int) -> ItemRow:
    responses = [ResponseRow(k, k, f"answer {k}", f"m{k}", f"sha{k}") for k in range(n)]
    return ItemRow(1, 1, "prompt", "src", responses)


def export(fmt: str, votes: list[Vote], n: int) -> list[dict[str, Any]]:
    consensus = item_consensus(votes, TAXONOMY)
    labels = select_labels(
        ExportFilters(),
        NEEDS[fmt],  # type: ignore[index]
        overlap=len(votes),
        votes=votes,
        consensus=consensus,
        taxonomy=TAXONOMY,
        response_ids=list(range(n)),
    )
    assert labels is not None
    return list(LINES[fmt](item(n), labels, TAXONOMY))


# Four answers, four votes, no ranking given by more than two. Pairs: 0 beats every other
# answer 4-0; 1 > 2 (3-1); 2 > 3 (3-1); 1 and 3 split 2-2. Copeland scores: 0: +3, 1: 0,
# 2: -1, 3: -2.
FOUR = [(0, 1, 2, 3), (0, 1, 2, 3), (0, 3, 1, 2), (0, 2, 3, 1)]


def test_four_answers_by_hand() -> None:
    majorities = pair_majorities(FOUR)
    winners = {key: m.winner for key, m in majorities.items()}
    assert winners == {
        (0, 1): 0,
        (0, 2): 0,
        (0, 3): 0,
        (1, 2): 1,
        (1, 3): None,
        (2, 3): 2,
    }
    assert majorities[(1, 2)].share == 0.75 and majorities[(1, 3)].share == 0.5
    result = dimension_consensus(FOUR)
    assert result.value == (0, 1, 2, 3) and result.resolved
    assert result.agreement == 0.5  # the split pair
    assert copeland_order([0, 1, 2, 3], majorities) == (0, 1, 2, 3)


def test_four_answers_export_the_resolved_pairs_only() -> None:
    votes = votes_for(FOUR, 4)
    lines = export("pku-saferlhf", votes, 4)
    pairs = [(line["response_0"][-1], line["response_1"][-1]) for line in lines]
    # Six pairs, the split one (1, 3) left out.
    assert pairs == [("0", "1"), ("0", "2"), ("0", "3"), ("1", "2"), ("2", "3")]
    assert [line["better_response_id"] for line in lines] == [0, 0, 0, 0, 0]
    dpo = export("dpo-helpful", votes, 4)
    assert [(d["chosen"], d["rejected"]) for d in dpo] == [
        ("answer 0", "answer 1"),
        ("answer 0", "answer 2"),
        ("answer 0", "answer 3"),
        ("answer 1", "answer 2"),
        ("answer 2", "answer 3"),
    ]


# Three answers in a cycle: 0 > 1, 1 > 2, 2 > 0, each 2 of 3. Every pair is resolved, the
# ranking is not (all Copeland scores are 0).
CYCLE = [(0, 1, 2), (1, 2, 0), (2, 0, 1)]


def test_three_answer_cycle_has_no_ranking_but_exports_its_pairs() -> None:
    result = dimension_consensus(CYCLE)
    assert result.value is None and not result.resolved
    assert dict(result.pairs) == {(0, 1): 0, (1, 2): 1, (0, 2): 2}
    dpo = export("dpo-harmless", votes_for(CYCLE, 3), 3)
    assert [(d["chosen"], d["rejected"]) for d in dpo] == [
        ("answer 0", "answer 1"),
        ("answer 2", "answer 0"),
        ("answer 1", "answer 2"),
    ]
    # No pair resolved at all (two votes, reversed): the item is left out.
    votes = votes_for([(0, 1, 2), (2, 1, 0)], 3)
    consensus = item_consensus(votes, TAXONOMY)
    assert not any(w is not None for w in consensus.helpfulness.pairs.values())
    kept = select_labels(
        ExportFilters(),
        NEEDS["dpo-helpful"],
        overlap=2,
        votes=votes,
        consensus=consensus,
        taxonomy=TAXONOMY,
        response_ids=[0, 1, 2],
    )
    assert kept is None


def test_three_answers_with_a_ranking_majority_and_an_adjudication() -> None:
    votes = votes_for([(2, 0, 1), (2, 0, 1), (0, 2, 1)], 3)
    assert item_consensus(votes).helpfulness.value == (2, 0, 1)
    lines = export("pku-saferlhf", votes, 3)
    # Pairs in position order: 0 > 1 (3-0), 2 > 0 (2-1), 2 > 1 (3-0).
    assert [line["better_response_id"] for line in lines] == [0, 1, 1]
    # An adjudication's ranking settles every pair.
    payload = {
        "responses": [
            {"response_id": k, "is_safe": True, "harm_categories": [], "severity": None}
            for k in range(3)
        ],
        "helpfulness": [1, 2, 0],
        "harmlessness": [1, 2, 0],
    }
    adjudicated = labels_from_payload(payload, TAXONOMY)
    lines = list(LINES["pku-saferlhf"](item(3), adjudicated, TAXONOMY))
    assert [line["better_response_id"] for line in lines] == [1, 1, 0]  # 1>0, 2>0, 1>2


def test_two_answers_keep_the_whole_ranking_rule() -> None:
    result = dimension_consensus([(1, 0), (1, 0), (0, 1)])
    assert result.value == (1, 0) and result.agreement == pytest.approx(2 / 3)
    assert dict(result.pairs) == {(0, 1): 1}


def test_rank_distance() -> None:
    assert rank_distance((0, 1, 2), (0, 1, 2)) == 0.0
    assert rank_distance((0, 1, 2), (2, 1, 0)) == 1.0
    assert rank_distance((0, 1, 2), (1, 0, 2)) == pytest.approx(1 / 3)
    assert rank_distance((0, 1, 2, 3), (0, 1, 3, 2)) == pytest.approx(1 / 6)
    assert rank_distance((0, 1), (1, 0)) == 1.0
    assert rank_distance((0, 1), (0, 1, 2)) == 1.0


def reference_rank_alpha(units: list[list[tuple[int, ...]]]) -> float:
    """The `krippendorff` package with rank_distance as a custom metric, from value counts."""
    domain = sorted({r for unit in units for r in unit})
    counts = np.zeros((len(units), len(domain)))
    for u, unit in enumerate(units):
        for r in unit:
            counts[u, domain.index(r)] += 1
    table = np.array([[rank_distance(a, b) for b in domain] for a in domain])

    def metric(v1: Any, v2: Any, i1: Any, i2: Any, n_v: Any, dtype: Any = float) -> Any:
        return table[i1, i2].astype(dtype)

    return float(krippendorff.alpha(value_counts=counts, level_of_measurement=metric))


def test_rank_alpha_by_hand_and_against_krippendorff() -> None:
    # Two units, two raters: (0,1,2)/(0,1,2) and (0,1,2)/(1,0,2). n = 4 values; coincidences:
    # unit 2 gives o = 1 each way at distance 1/3, so D_o = 2/3; expected pairs: (0,1,2) x3,
    # (1,0,2) x1 -> 2 * 3 * 1 * 1/3 = 2; alpha = 1 - (4 - 1) * (2/3) / 2 = 0.
    units = [[(0, 1, 2), (0, 1, 2)], [(0, 1, 2), (1, 0, 2)]]
    assert krippendorff_alpha(units, "rank").value == pytest.approx(0.0)
    assert reference_rank_alpha(units) == pytest.approx(0.0)
    # Four-answer units with three raters and a missing rating (FOUR as one unit).
    units = [
        FOUR[:3],
        [(0, 1, 2, 3), (0, 1, 2, 3), (1, 0, 2, 3)],
        [(3, 2, 1, 0), (3, 2, 0, 1)],
        [(0, 1, 2, 3), (0, 1, 2, 3), (0, 1, 2, 3)],
    ]
    ours = krippendorff_alpha(units, "rank").value
    assert ours is not None and ours == pytest.approx(reference_rank_alpha(units), abs=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rank_alpha_matches_krippendorff_on_random_rankings(seed: int) -> None:
    rng = random.Random(seed)
    orders = list(itertools.permutations(range(3)))
    units = []
    for _ in range(30):
        favourite = rng.choice(orders)
        units.append(
            [
                favourite if rng.random() < 0.6 else rng.choice(orders)
                for _ in range(rng.randint(2, 4))
            ]
        )
    ours = krippendorff_alpha(units, "rank").value
    assert ours is not None and not math.isnan(ours)
    assert ours == pytest.approx(reference_rank_alpha(units), abs=1e-12)
    # With two answers the rank distance is the nominal one.
    pairs = [[(0, 1) if rng.random() < 0.7 else (1, 0) for _ in range(3)] for _ in range(20)]
    assert krippendorff_alpha(pairs, "rank").value == pytest.approx(
        krippendorff_alpha(pairs, "nominal").value, abs=1e-12
    )


def test_api_consensus_and_export_of_a_four_answer_item(
    client: Any, db: Any, admin_headers: dict[str, str]
) -> None:
    """Through the database and the API, on both backends: the consensus view lists the pair
    majorities and the DPO export writes the five resolved pairs of FOUR."""
    from tests.support.consensus_factory import annotate, build, payload, user

    built = build(db, n_items=1, n_responses=4, overlap=4)
    it = built.items[0]
    ids = built.ids(it)
    for ranking in FOUR:
        annotate(db, built, it, user(db), payload(ids, None, ranking, ranking))
    db.commit()
    r = client.get(
        f"/api/v1/batches/{built.batch.id}/items/{it.id}/consensus", headers=admin_headers
    )
    assert r.status_code == 200, r.text
    helpful = r.json()["consensus"]["helpfulness"]
    assert helpful["value"] == ids and helpful["resolved"] is True
    split = [p for p in helpful["pairs"] if p["preferred"] is None]
    assert split == [{"responses": sorted([ids[1], ids[3]]), "preferred": None}]
    r = client.get(
        "/api/v1/exports/dpo-helpful",
        params={"batch_id": built.batch.id},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    lines = [line for line in r.text.splitlines() if line]
    assert len(lines) == 5
