"""Agreement metrics against reference implementations (statsmodels, krippendorff)."""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence

import krippendorff
import numpy as np
import pytest
from statsmodels.stats.inter_rater import aggregate_raters  # type: ignore[import-untyped]
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from app.consensus.metrics import (
    NO_ITEMS,
    NO_MAJORITY_ITEMS,
    NO_VARIATION,
    TOO_FEW_RATINGS,
    UNEQUAL_RATINGS,
    Level,
    MetricValue,
    agreement_summary,
    fleiss_kappa,
    krippendorff_alpha,
    leave_one_out_agreement,
    median,
    percent_agreement,
)

TOL = 1e-9


def reference_fleiss(units: Sequence[Sequence[int]]) -> float:
    table, _ = aggregate_raters(np.array(units))
    return float(sm_fleiss_kappa(table, method="fleiss"))


def reference_alpha(matrix: list[list[float]], level: Level) -> float:
    """``matrix`` is raters x units, NaN for a missing rating."""
    data = np.array(matrix, dtype=float)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


def units_from_matrix(matrix: list[list[float]]) -> list[list[int]]:
    """Per-unit lists of the present ratings of a raters x units matrix."""
    n_units = len(matrix[0])
    return [[int(row[u]) for row in matrix if not math.isnan(row[u])] for u in range(n_units)]


def random_matrix(
    rng: random.Random, n_raters: int, n_units: int, n_values: int, missing: float
) -> list[list[float]]:
    # Skewed towards value 1 so agreement is neither perfect nor pure chance.
    weights = [3.0] + [1.0] * (n_values - 1)
    values = list(range(1, n_values + 1))
    return [
        [
            math.nan if rng.random() < missing else float(rng.choices(values, weights)[0])
            for _ in range(n_units)
        ]
        for _ in range(n_raters)
    ]


# ---------------------------------------------------------------------------- percent agreement


def test_percent_agreement_is_mean_pairwise_share() -> None:
    # [a, a, b]: 1 agreeing pair of 3; [a, a]: 1 of 1; [c]: ignored (no pair).
    result = percent_agreement([["a", "a", "b"], ["a", "a"], ["c"]])
    assert result.value == pytest.approx((1 / 3 + 1) / 2, abs=TOL)
    assert result.reason is None


def test_percent_agreement_counts_all_pairs_of_four_ratings() -> None:
    # [x, x, y, y]: 2 agreeing pairs of 6.
    assert percent_agreement([["x", "x", "y", "y"]]).value == pytest.approx(2 / 6, abs=TOL)


def test_percent_agreement_edge_cases() -> None:
    assert percent_agreement([]) == MetricValue(None, NO_ITEMS)
    assert percent_agreement([[1], [2], []]) == MetricValue(None, TOO_FEW_RATINGS)
    # Perfect agreement is 1.0 even though kappa and alpha are undefined there.
    assert percent_agreement([[1, 1], [1, 1, 1]]).value == 1.0


# ---------------------------------------------------------------------------- Fleiss' kappa


@pytest.mark.parametrize(
    "units",
    [
        [[1, 1, 2], [2, 2, 2], [1, 2, 3], [3, 3, 1], [1, 1, 1]],
        [[0, 1], [1, 1], [0, 0], [1, 0]],
        [[1, 2, 2, 2], [1, 1, 1, 2], [3, 3, 3, 3], [2, 3, 1, 1]],
        # Total disagreement on pairs: kappa is negative.
        [[0, 1], [1, 0], [0, 1], [1, 0]],
    ],
)
def test_fleiss_kappa_matches_statsmodels_on_hand_built_cases(units: list[list[int]]) -> None:
    result = fleiss_kappa(units)
    assert result.value is not None
    assert result.value == pytest.approx(reference_fleiss(units), abs=TOL)


def test_fleiss_kappa_hand_computed_value() -> None:
    # P_i = 1, 1, 1/3 -> P = 7/9; p_a = 7/9, p_b = 2/9 -> P_e = 53/81; kappa = 10/28.
    result = fleiss_kappa([["a", "a", "a"], ["a", "a", "a"], ["b", "b", "a"]])
    assert result.value == pytest.approx(5 / 14, abs=TOL)
    # Here observed equals chance agreement, so kappa is exactly 0.
    chance = fleiss_kappa([["a", "a", "b"], ["a", "a", "a"], ["b", "b", "a"]])
    assert chance.value == pytest.approx(0.0, abs=TOL)


@pytest.mark.parametrize("seed", range(8))
def test_fleiss_kappa_matches_statsmodels_on_random_data(seed: int) -> None:
    rng = random.Random(seed)
    n_raters = rng.randint(2, 6)
    matrix = random_matrix(rng, n_raters, rng.randint(10, 150), rng.randint(2, 5), missing=0)
    units = units_from_matrix(matrix)
    result = fleiss_kappa(units)
    assert result.value is not None
    assert result.value == pytest.approx(reference_fleiss(units), abs=TOL)


def test_fleiss_kappa_edge_cases() -> None:
    assert fleiss_kappa([]) == MetricValue(None, NO_ITEMS)
    assert fleiss_kappa([[1], [2]]) == MetricValue(None, TOO_FEW_RATINGS)
    assert fleiss_kappa([[1, 2, 1], [1, 2]]) == MetricValue(None, UNEQUAL_RATINGS)
    # Expected agreement is 1 when a single label is used throughout.
    assert fleiss_kappa([["safe"] * 3, ["safe"] * 3]) == MetricValue(None, NO_VARIATION)


def test_fleiss_kappa_accepts_booleans_and_strings() -> None:
    units_bool = [[True, True, False], [False, False, False], [True, True, True]]
    units_int = [[int(v) for v in u] for u in units_bool]
    assert fleiss_kappa(units_bool).value == pytest.approx(reference_fleiss(units_int), abs=TOL)


# ---------------------------------------------------------------------------- Krippendorff's alpha

NAN = math.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 raters x 12 units
# example with missing values: nominal alpha = 0.743.
KRIPPENDORFF_EXAMPLE = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


@pytest.mark.parametrize("level", ["nominal", "ordinal"])
def test_alpha_matches_krippendorff_on_published_example(level: Level) -> None:
    units = units_from_matrix(KRIPPENDORFF_EXAMPLE)
    result = krippendorff_alpha(units, level)
    assert result.value == pytest.approx(reference_alpha(KRIPPENDORFF_EXAMPLE, level), abs=TOL)
    if level == "nominal":
        assert result.value == pytest.approx(0.743, abs=5e-4)


@pytest.mark.parametrize("level", ["nominal", "ordinal"])
@pytest.mark.parametrize("seed", range(10))
def test_alpha_matches_krippendorff_on_random_data_with_missing(seed: int, level: Level) -> None:
    rng = random.Random(1000 + seed)
    matrix = random_matrix(
        rng, rng.randint(2, 6), rng.randint(5, 120), rng.randint(2, 6), missing=0.3
    )
    units = units_from_matrix(matrix)
    if sum(1 for u in units if len(u) >= 2) == 0:  # pragma: no cover - seeds chosen to pair
        pytest.skip("no pairable unit")
    result = krippendorff_alpha(units, level)
    assert result.value is not None
    assert result.value == pytest.approx(reference_alpha(matrix, level), abs=TOL)


@pytest.mark.parametrize("seed", range(5))
def test_ordinal_severity_levels_match_krippendorff(seed: int) -> None:
    # Severity 1..3 with a skewed marginal like the public data (moderate dominates).
    rng = random.Random(seed)
    matrix = [
        [
            NAN if rng.random() < 0.25 else float(rng.choices([1, 2, 3], [1, 6, 1])[0])
            for _ in range(60)
        ]
        for _ in range(3)
    ]
    units = units_from_matrix(matrix)
    ordinal = krippendorff_alpha(units, "ordinal")
    nominal = krippendorff_alpha(units, "nominal")
    assert ordinal.value == pytest.approx(reference_alpha(matrix, "ordinal"), abs=TOL)
    assert nominal.value == pytest.approx(reference_alpha(matrix, "nominal"), abs=TOL)


def test_ordinal_alpha_rewards_near_misses_over_far_misses() -> None:
    # Same nominal disagreement; ordinal must prefer 1-vs-2 confusions to 1-vs-3 ones.
    base = [[1, 1], [2, 2], [3, 3], [2, 2], [1, 1], [3, 3]]
    near = [*base, [1, 2], [2, 3]]
    far = [*base, [1, 3], [1, 3]]
    near_alpha = krippendorff_alpha(near, "ordinal").value
    far_alpha = krippendorff_alpha(far, "ordinal").value
    assert near_alpha is not None and far_alpha is not None
    assert near_alpha > far_alpha


def test_ordinal_alpha_sorts_values_not_insertion_order() -> None:
    # Labels first seen in the order 3, 1, 2 must still be treated as 1 < 2 < 3.
    units = [[3, 3], [1, 2], [2, 2], [1, 1], [3, 2]]
    matrix = [[3, 1, 2, 1, 3], [3, 2, 2, 1, 2]]
    expected = reference_alpha([[float(v) for v in row] for row in matrix], "ordinal")
    assert krippendorff_alpha(units, "ordinal").value == pytest.approx(expected, abs=TOL)


def test_alpha_ignores_single_rating_items() -> None:
    with_singles = krippendorff_alpha([[1, 2], [2, 2], [1, 1], [3], [9]])
    without = krippendorff_alpha([[1, 2], [2, 2], [1, 1]])
    assert with_singles.value == pytest.approx(without.value, abs=TOL)


def test_alpha_edge_cases() -> None:
    assert krippendorff_alpha([]) == MetricValue(None, NO_ITEMS)
    assert krippendorff_alpha([[1], [2], [3]]) == MetricValue(None, TOO_FEW_RATINGS)
    # No variation among pairable values: expected disagreement is 0.
    assert krippendorff_alpha([[2, 2], [2, 2, 2], [3]]) == MetricValue(None, NO_VARIATION)
    assert krippendorff_alpha([[1, 1]], "ordinal") == MetricValue(None, NO_VARIATION)


def test_alpha_perfect_agreement_with_variation_is_one() -> None:
    assert krippendorff_alpha([[1, 1], [2, 2, 2], [3, 3]], "ordinal").value == pytest.approx(1.0)
    assert krippendorff_alpha([["a", "a"], ["b", "b"]]).value == pytest.approx(1.0)


def test_metric_value_requires_exactly_one_of_value_and_reason() -> None:
    with pytest.raises(ValueError):
        MetricValue(None, None)
    with pytest.raises(ValueError):
        MetricValue(0.5, "why")


# ---------------------------------------------------------------------------- summary and speed


def test_agreement_summary_agrees_with_the_single_metrics() -> None:
    units: list[list[Hashable]] = [[1, 1, 2], [2, 2, 2], [1, 2, 3], [3]]
    summary = agreement_summary(units, "ordinal")
    assert summary.percent_agreement == percent_agreement(units)
    assert summary.fleiss_kappa == MetricValue(None, UNEQUAL_RATINGS)
    assert summary.krippendorff_alpha == krippendorff_alpha(units, "ordinal")
    assert summary.n_items == 3
    as_dict = summary.to_dict()
    assert as_dict["fleiss_kappa"] is None
    assert as_dict["reasons"] == {"fleiss_kappa": UNEQUAL_RATINGS}
    assert as_dict["krippendorff_alpha"] == summary.krippendorff_alpha.value


def test_full_dataset_scale_matches_reference() -> None:
    # 83,400 items x 3 ratings, the size of the public data; checks the values stay exact.
    rng = random.Random(7)
    labels = [rng.choices([0, 1], [3, 1])[0] for _ in range(83_400 * 3)]
    units = [labels[i : i + 3] for i in range(0, len(labels), 3)]
    summary = agreement_summary(units)
    assert summary.n_items == 83_400
    assert summary.fleiss_kappa.value == pytest.approx(reference_fleiss(units), abs=TOL)
    matrix = np.array(units, dtype=float).T
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert summary.krippendorff_alpha.value == pytest.approx(float(expected), abs=TOL)


# ---------------------------------------------------------------------------- leave one out


def test_leave_one_out_majority_of_others() -> None:
    items = [
        {"ann": "A", "bob": "A", "cy": "B"},  # only cy has a majority of others (A): miss
        {"ann": "A", "bob": "A", "cy": "A"},  # everyone counts and matches
        {"ann": "B", "bob": "A", "cy": "A"},  # only ann has a majority of others (A): miss
    ]
    result = leave_one_out_agreement(items)
    assert result == {
        "ann": MetricValue(1 / 2),
        "bob": MetricValue(1.0),
        "cy": MetricValue(1 / 2),
    }


def test_leave_one_out_uses_second_label_when_annotator_breaks_a_tie() -> None:
    # Four annotators, A A B B: removing an A leaves B as the strict majority of the others.
    result = leave_one_out_agreement([{"p": "A", "q": "A", "r": "B", "s": "B"}])
    assert result == {
        "p": MetricValue(0.0),
        "q": MetricValue(0.0),
        "r": MetricValue(0.0),
        "s": MetricValue(0.0),
    }


def test_leave_one_out_null_without_majority_item() -> None:
    result = leave_one_out_agreement([{"solo": 1}, {"x": 1, "y": 2}])
    assert result["solo"] == MetricValue(None, NO_MAJORITY_ITEMS)
    # With two annotators the other one alone is a strict majority.
    assert result["x"] == MetricValue(0.0)
    assert leave_one_out_agreement([]) == {}


def test_leave_one_out_matches_brute_force() -> None:
    rng = random.Random(3)
    names = ["a", "b", "c", "d", "e"]
    items = [
        {n: rng.choice("XYZ") for n in rng.sample(names, rng.randint(1, 5))} for _ in range(300)
    ]
    expected: dict[str, list[bool]] = {}
    for votes in items:
        for name, label in votes.items():
            others = [v for n, v in votes.items() if n != name]
            expected.setdefault(name, [])
            for candidate in set(others):
                if 2 * others.count(candidate) > len(others):
                    expected[name].append(candidate == label)
    result = leave_one_out_agreement(items)
    assert set(result) == set(expected)
    for name, hits in expected.items():
        assert result[name].value == pytest.approx(sum(hits) / len(hits), abs=TOL)


# ---------------------------------------------------------------------------- median


def test_median() -> None:
    assert median([]) is None
    assert median([None, None]) is None
    assert median([5.0, None, 1.0, 3.0]) == 3.0
    assert median([4, 1, 3, 2]) == 2.5
