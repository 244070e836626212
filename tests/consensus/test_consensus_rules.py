"""Per-item consensus rules (docs/admins/consensus.md)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from app.consensus.aggregate import (
    DimensionConsensus,
    dimension_consensus,
    item_consensus,
    upper_median,
)
from app.consensus.votes import ResponseVote, Vote, severity_level, severity_name

SAFE = ResponseVote(is_safe=True, categories=frozenset(), severity=None)


def unsafe(severity: int | None, *categories: str) -> ResponseVote:
    return ResponseVote(is_safe=False, categories=frozenset(categories), severity=severity)


def vote(
    annotator: str,
    r0: ResponseVote = SAFE,
    r1: ResponseVote = SAFE,
    helpful: tuple[int, ...] = (0, 1),
    harmless: tuple[int, ...] = (0, 1),
    single: tuple[int, ...] | None = None,
) -> Vote:
    return Vote(annotator, {0: r0, 1: r1}, helpful, harmless, single)


def votes_for_response_0(labels: Iterable[ResponseVote]) -> list[Vote]:
    # Response 1 stays safe and response 0 is ranked second for harmlessness, which keeps the
    # item consistent whatever response 0's consensus is; only response 0 is under test.
    return [vote(f"a{i}", r0=label, harmless=(1, 0)) for i, label in enumerate(labels)]


# ---------------------------------------------------------------------------- preferences


def test_two_of_three_majority_wins_with_agreement_two_thirds() -> None:
    result = item_consensus(
        [vote("a", helpful=(1, 0)), vote("b", helpful=(1, 0)), vote("c", helpful=(0, 1))]
    )
    assert result.helpfulness == DimensionConsensus((1, 0), 2 / 3, 3, True)
    assert result.helpfulness.preferred == 1
    assert result.harmlessness == DimensionConsensus((0, 1), 1.0, 3, True)
    assert not result.unresolved


def test_one_one_one_tie_is_unresolved() -> None:
    three = [
        Vote("a", {0: SAFE, 1: SAFE, 2: SAFE}, (0, 1, 2), (0, 1, 2)),
        Vote("b", {0: SAFE, 1: SAFE, 2: SAFE}, (1, 2, 0), (0, 1, 2)),
        Vote("c", {0: SAFE, 1: SAFE, 2: SAFE}, (2, 0, 1), (0, 1, 2)),
    ]
    result = item_consensus(three)
    assert result.helpfulness.value is None
    assert not result.helpfulness.resolved
    # A cycle: 0 > 1, 1 > 2 and 2 > 0 each by 2 of 3, so every Copeland score is 0. Agreement
    # is the lowest pair majority share.
    assert result.helpfulness.agreement == pytest.approx(2 / 3)
    assert dict(result.helpfulness.pairs) == {(0, 1): 0, (1, 2): 1, (0, 2): 2}
    assert result.harmlessness.resolved
    assert result.unresolved
    # Unresolved is not inconsistent.
    assert not result.inconsistent
    assert result.reasons == ()


def test_even_split_is_not_a_strict_majority() -> None:
    result = dimension_consensus([(0, 1), (0, 1), (1, 0), (1, 0)])
    assert result == DimensionConsensus(None, 0.5, 4, False)


def test_three_answers_settle_pair_by_pair_without_a_whole_ranking_majority() -> None:
    # Three different rankings, so no whole-ranking majority; every pair has one: 0 > 1 (2 of
    # 3), 0 > 2 (3 of 3), 1 > 2 (2 of 3). The Copeland order 0, 1, 2 is the consensus.
    result = dimension_consensus([(0, 1, 2), (0, 2, 1), (1, 0, 2)])
    assert result.value == (0, 1, 2) and result.resolved
    assert result.agreement == pytest.approx(2 / 3)


def test_rankings_given_as_lists_are_counted_as_tuples() -> None:
    votes = [
        Vote("a", {0: SAFE, 1: SAFE}, [1, 0], [0, 1]),  # type: ignore[arg-type]
        Vote("b", {0: SAFE, 1: SAFE}, (1, 0), (0, 1)),
    ]
    assert item_consensus(votes).helpfulness.value == (1, 0)


def test_helpfulness_is_independent_of_harm() -> None:
    # Response 1 is unsafe, yet it is the consensus more helpful one: that is allowed.
    votes = [vote(n, r1=unsafe(2, "Violence"), helpful=(1, 0), harmless=(0, 1)) for n in ("a", "b")]
    votes.append(vote("c", r1=unsafe(2, "Violence"), helpful=(0, 1), harmless=(0, 1)))
    result = item_consensus(votes)
    assert result.helpfulness.value == (1, 0)
    assert result.harmlessness.value == (0, 1)
    assert not result.inconsistent
    assert not result.unresolved


def test_single_dimension_absent_from_all_votes() -> None:
    result = item_consensus([vote("a"), vote("b"), vote("c")])
    assert result.single is None
    assert not result.unresolved
    # An absent single dimension fails a filter that requires it, not one that does not.
    assert not result.agrees(["single"])
    assert result.agrees(["helpfulness", "harmlessness", "is_safe"])
    assert result.min_agreement() == 1.0
    assert result.min_agreement(["single"]) == 0.0


def test_single_dimension_counts_only_votes_that_gave_it() -> None:
    result = item_consensus(
        [vote("a", single=(1, 0)), vote("b", single=(1, 0)), vote("c", single=None)]
    )
    assert result.single == DimensionConsensus((1, 0), 1.0, 2, True)


def test_single_dimension_unresolved_makes_item_unresolved() -> None:
    result = item_consensus([vote("a", single=(1, 0)), vote("b", single=(0, 1))])
    assert result.single is not None
    assert not result.single.resolved
    assert result.unresolved


def test_min_agreement_and_agrees_over_chosen_dimensions() -> None:
    votes = [vote("a", helpful=(1, 0)), vote("b", helpful=(1, 0)), vote("c")]
    result = item_consensus(votes)
    assert result.min_agreement(["harmlessness"]) == 1.0
    assert result.min_agreement(["helpfulness", "harmlessness"]) == pytest.approx(2 / 3)
    assert result.agrees(["helpfulness"])
    assert not result.agrees(["helpfulness"], min_agreement=0.9)
    assert result.agrees(["harmlessness", "is_safe"], min_agreement=1.0)


def test_no_votes_is_unresolved() -> None:
    result = item_consensus([])
    assert result.unresolved
    assert result.n_votes == 0
    assert result.helpfulness == DimensionConsensus(None, 0.0, 0, False)
    assert result.single is None


# ---------------------------------------------------------------------------- safety labels


def test_is_safe_by_strict_majority() -> None:
    result = item_consensus(votes_for_response_0([SAFE, unsafe(1, "Drugs"), unsafe(1, "Drugs")]))
    r0 = result.responses[0]
    assert r0.is_safe is False
    assert r0.safety_agreement == pytest.approx(2 / 3)
    assert r0.resolved
    assert result.responses[1].is_safe is True
    assert result.responses[1].safety_agreement == 1.0


def test_is_safe_tie_is_unresolved() -> None:
    result = item_consensus(votes_for_response_0([SAFE, unsafe(2, "Drugs")]))
    r0 = result.responses[0]
    assert r0.is_safe is None
    assert not r0.resolved
    assert r0.safety_agreement == 0.5
    assert r0.severity is None and r0.categories == ()
    assert result.unresolved
    assert not result.inconsistent


@pytest.mark.parametrize(
    ("levels", "expected"),
    [([1, 2], 2), ([1, 2, 3], 2), ([2, 3, 3, 1], 3), ([3], 3), ([1, 1, 3], 1)],
)
def test_severity_is_upper_median_of_unsafe_votes(levels: list[int], expected: int) -> None:
    assert upper_median(levels) == expected
    labels = [unsafe(level, "Violence") for level in levels]
    result = item_consensus(votes_for_response_0(labels))
    assert result.responses[0].severity == expected


def test_severity_ignores_safe_votes() -> None:
    # The safe vote must not drag the median down as a zero.
    labels = [SAFE, unsafe(3, "Violence"), unsafe(2, "Violence")]
    assert item_consensus(votes_for_response_0(labels)).responses[0].severity == 3


def test_categories_flagged_by_at_least_half_of_unsafe_votes() -> None:
    labels = [
        unsafe(2, "Violence", "Drugs"),
        unsafe(2, "Violence"),
        unsafe(2, "Cybercrime", "Drugs"),
        unsafe(2, "Privacy Violation", "Violence"),
        SAFE,  # not an unsafe vote: does not count towards "half"
    ]
    r0 = item_consensus(votes_for_response_0(labels)).responses[0]
    # 4 unsafe votes: Violence 3/4 and Drugs exactly 2/4 reach half; the others have 1/4.
    assert r0.categories == ("Drugs", "Violence")


def test_categories_fall_back_to_the_most_flagged() -> None:
    labels = [
        unsafe(1, "Violence", "Drugs"),
        unsafe(1, "Cybercrime", "Drugs"),
        unsafe(1, "Violence", "Sexual Content"),
        unsafe(1, "Privacy Violation"),
        unsafe(1, "Animal Abuse"),
    ]
    r0 = item_consensus(votes_for_response_0(labels)).responses[0]
    # 5 unsafe votes, nothing reaches 3: Violence and Drugs are tied at the max of 2.
    assert r0.categories == ("Drugs", "Violence")


def test_categories_follow_taxonomy_order_when_given() -> None:
    labels = [unsafe(2, "Violence", "Drugs", "Insulting Behavior")] * 3
    taxonomy = ["Insulting Behavior", "Violence", "Drugs"]
    r0 = item_consensus(votes_for_response_0(labels), taxonomy=taxonomy).responses[0]
    assert r0.categories == ("Insulting Behavior", "Violence", "Drugs")


# ---------------------------------------------------------------------------- inconsistency


def test_lone_safe_response_not_ranked_first_is_inconsistent() -> None:
    votes = [vote(n, r1=unsafe(2, "Violence"), harmless=(1, 0)) for n in ("a", "b", "c")]
    result = item_consensus(votes)
    assert result.responses[0].is_safe is True
    assert result.responses[1].is_safe is False
    assert result.inconsistent
    assert not result.unresolved
    assert len(result.reasons) == 1
    assert "response 0" in result.reasons[0] and "harmlessness" in result.reasons[0]


def test_lone_safe_response_ranked_first_is_consistent() -> None:
    votes = [vote(n, r1=unsafe(2, "Violence"), harmless=(0, 1)) for n in ("a", "b", "c")]
    result = item_consensus(votes)
    assert not result.inconsistent
    assert result.reasons == ()


def test_both_safe_allows_any_harmlessness_order() -> None:
    assert not item_consensus([vote(n, harmless=(1, 0)) for n in "abc"]).inconsistent


def test_inconsistency_can_arise_from_consistent_votes() -> None:
    # Each vote is valid on its own (its lone safe response is ranked first), but the
    # majorities combine into a consensus that breaks the rule.
    votes = [
        vote("a", r0=SAFE, r1=unsafe(2, "Violence"), harmless=(0, 1)),
        vote("b", r0=SAFE, r1=SAFE, harmless=(1, 0)),
        vote("c", r0=unsafe(1, "Drugs"), r1=unsafe(2, "Violence"), harmless=(1, 0)),
    ]
    result = item_consensus(votes)
    assert result.responses[0].is_safe is True  # a, b
    assert result.responses[1].is_safe is False  # a, c
    assert result.harmlessness.value == (1, 0)  # b, c
    assert result.inconsistent
    assert len(result.reasons) == 1


def test_unsafe_consensus_without_category_or_severity_is_inconsistent() -> None:
    labels = [unsafe(None), unsafe(None), SAFE]
    result = item_consensus(votes_for_response_0(labels))
    r0 = result.responses[0]
    assert r0.is_safe is False
    assert r0.categories == ()
    assert r0.severity is None
    assert result.inconsistent
    assert len(result.reasons) == 2
    assert any("category" in reason for reason in result.reasons)
    assert any("severity" in reason for reason in result.reasons)


# ---------------------------------------------------------------------------- votes


def test_response_vote_validates_severity_and_freezes_categories() -> None:
    with pytest.raises(ValueError):
        ResponseVote(is_safe=False, categories=frozenset({"Drugs"}), severity=4)
    label = ResponseVote(False, {"Drugs"}, 1)  # type: ignore[arg-type]
    assert label.categories == frozenset({"Drugs"})
    assert severity_level("moderate") == 2
    assert severity_name(3) == "severe"
    with pytest.raises(ValueError):
        severity_level("catastrophic")
