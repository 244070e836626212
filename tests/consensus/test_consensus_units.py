"""Small rules of the consensus modules that the export tests reach only indirectly.

Found by mutation testing (bench/mutation.py): each test here fails when one of these rules is
broken. Category names are made unique per test, because stored labels are turned into shared
vote objects through a module-level cache that earlier tests fill.
"""

from __future__ import annotations

import uuid

import pytest

from app.consensus.aggregate import ResponseConsensus, item_consensus, response_consensus
from app.consensus.labels import (
    FinalLabels,
    ResponseLabels,
    labels_from_consensus,
    labels_from_payload,
    vote_from_payload,
)
from app.consensus.votes import ResponseVote, Vote, severity_level, severity_name


def fresh(label: str = "cat") -> str:
    return f"{label}-{uuid.uuid4().hex}"


# --- stored payloads -> votes --------------------------------------------------------------


def test_a_payload_becomes_a_vote_with_levels_and_frozen_categories() -> None:
    a, b = fresh(), fresh()
    vote = vote_from_payload(
        "ann",
        {
            "responses": [
                {"response_id": 7, "is_safe": True, "harm_categories": [], "severity": None},
                {
                    "response_id": 8,
                    "is_safe": False,
                    "harm_categories": [b, a],
                    "severity": "severe",
                },
                {"response_id": 9, "is_safe": False, "harm_categories": [a], "severity": "minor"},
            ],
            "helpfulness": [8, 7, 9],
            "harmlessness": [7, 9, 8],
            "single": [9, 8, 7],
        },
    )
    assert vote.annotator == "ann"
    assert vote.responses == {
        7: ResponseVote(True, frozenset(), None),
        8: ResponseVote(False, frozenset({a, b}), 3),
        9: ResponseVote(False, frozenset({a}), 1),
    }
    assert vote.responses[8].is_safe is False and vote.responses[7].is_safe is True
    assert (vote.helpfulness, vote.harmlessness, vote.single) == ((8, 7, 9), (7, 9, 8), (9, 8, 7))


def test_an_unsafe_label_without_severity_has_no_level() -> None:
    name = fresh()
    body = {
        "responses": [
            {"response_id": 1, "is_safe": False, "harm_categories": [name], "severity": None}
        ]
    }
    assert vote_from_payload("a", body).responses[1] == ResponseVote(False, frozenset({name}))


def test_labels_without_rankings_have_none() -> None:
    labels = labels_from_payload({"responses": []})
    assert (labels.helpfulness, labels.harmlessness, labels.single) == (None, None, None)


def test_a_lone_response_left_unsafe_without_category_is_inconsistent() -> None:
    labels = FinalLabels(None, (1,), None, {1: ResponseLabels(False, (), 1)})
    assert labels.inconsistencies() == [
        "response 1: safe, no category and severity 0 must go together"
    ]
    assert FinalLabels(None, (1,), None, {1: ResponseLabels(True, (), 0)}).inconsistencies() == []


def test_a_payload_without_rankings_gives_empty_ones() -> None:
    vote = vote_from_payload("ann", {"responses": []})
    assert vote.responses == {}
    assert vote.helpfulness == () and vote.harmlessness == () and vote.single is None
    vote = vote_from_payload("ann", {"helpfulness": None, "harmlessness": [], "single": []})
    assert vote.helpfulness == () and vote.harmlessness == () and vote.single is None


def test_identical_labels_share_one_vote_object() -> None:
    name = fresh()
    body = {
        "responses": [
            {"response_id": 1, "is_safe": False, "harm_categories": [name], "severity": "moderate"}
        ]
    }
    first, second = vote_from_payload("a", body), vote_from_payload("b", body)
    assert first.responses[1] is second.responses[1]
    assert first.responses[1] == ResponseVote(False, frozenset({name}), 2)


# --- votes -------------------------------------------------------------------------------


def test_severity_names_and_levels_map_both_ways() -> None:
    assert [severity_level(n) for n in ("minor", "moderate", "severe")] == [1, 2, 3]
    assert [severity_name(level) for level in (1, 2, 3)] == ["minor", "moderate", "severe"]
    with pytest.raises(ValueError, match="unknown severity 'extreme'"):
        severity_level("extreme")
    for level in (0, 4):
        with pytest.raises(ValueError, match=rf"severity level must be 1\.\.3, got {level}"):
            severity_name(level)


def test_a_response_vote_checks_its_severity_and_freezes_its_categories() -> None:
    with pytest.raises(ValueError, match=r"severity level must be 1\.\.3 or None, got 4"):
        ResponseVote(False, frozenset({"x"}), 4)
    vote = ResponseVote(False, ["x", "y", "x"], 1)  # type: ignore[arg-type]
    assert isinstance(vote.categories, frozenset) and vote.categories == {"x", "y"}
    hash(vote)  # usable as a dict key


# --- item consensus ------------------------------------------------------------------------


def _vote(name: str, safe: bool, helpful: tuple[int, ...] = (1, 2)) -> Vote:
    label = ResponseVote(True) if safe else ResponseVote(False, frozenset({"c"}), 1)
    return Vote(name, {1: ResponseVote(True), 2: label}, helpful, (1, 2))


def test_safety_with_a_tie_is_unresolved_and_agreement_of_nothing_is_zero() -> None:
    tied = item_consensus([_vote("a", True), _vote("b", False)])
    assert tied.is_resolved("is_safe") is False
    assert tied.is_resolved("harmlessness") is True
    assert tied.agreement("is_safe") == 0.5
    empty = item_consensus([])
    assert empty.is_resolved("is_safe") is False
    assert empty.agreement("is_safe") == 0.0
    assert empty.agreement("single") == 0.0


def test_min_agreement_covers_single_only_when_some_vote_gave_it() -> None:
    votes = [_vote("a", True), _vote("b", True), _vote("c", True, helpful=(2, 1))]
    consensus = item_consensus(votes)
    assert consensus.single is None
    assert consensus.min_agreement() == pytest.approx(2 / 3)  # helpfulness; single ignored
    with_single = [
        Vote(v.annotator, v.responses, v.helpfulness, v.harmlessness, s)
        for v, s in zip(votes, [(1, 2), (2, 1), (1, 2)], strict=True)
    ]
    assert item_consensus(with_single).min_agreement() == pytest.approx(2 / 3)
    unanimous = item_consensus([_vote("a", True)] * 2)
    assert unanimous.min_agreement() == 1.0
    assert unanimous.min_agreement([]) == 1.0


# --- per-response consensus and final labels ----------------------------------------------


def _labels(*labels: ResponseVote) -> list[Vote]:
    return [Vote(f"v{i}", {5: label}, (5,), (5,)) for i, label in enumerate(labels)]


def test_response_consensus_reports_its_id_verdict_and_vote_count() -> None:
    safe, bad = ResponseVote(True), ResponseVote(False, frozenset({"c"}), 2)
    assert response_consensus(5, _labels(safe, safe, bad)) == ResponseConsensus(
        5, True, pytest.approx(2 / 3), None, (), True, 3
    )
    assert response_consensus(5, _labels(safe, bad)) == ResponseConsensus(
        5, None, 0.5, None, (), False, 2
    )
    assert response_consensus(5, _labels(bad, bad, safe)) == ResponseConsensus(
        5, False, pytest.approx(2 / 3), 2, ("c",), True, 3
    )
    assert response_consensus(5, []) == ResponseConsensus(5, None, 0.0, None, (), False, 0)
    assert item_consensus(_labels(safe, bad, bad)).n_votes == 3


def test_the_inconsistency_names_the_response_ranked_first() -> None:
    votes = [
        Vote(
            "a",
            {1: ResponseVote(True), 2: ResponseVote(False, frozenset({"c"}), 1)},
            (1, 2),
            (2, 1),
        )
    ]
    (reason,) = item_consensus(votes).reasons
    assert reason == (
        "response 1 is the only safe response but the harmlessness consensus ranks response 2 first"
    )


def test_labels_from_a_payload_follow_the_taxonomy_and_leave_absent_rankings_out() -> None:
    body = {
        "responses": [
            {
                "response_id": 1,
                "is_safe": False,
                "harm_categories": ["zeta", "alpha"],
                "severity": "severe",
            },
            {"response_id": 2, "is_safe": True, "harm_categories": [], "severity": None},
        ],
        "helpfulness": [2, 1],
    }
    labels = labels_from_payload(body, ("zeta", "alpha"))
    assert labels.adjudicated is True
    assert labels.responses == {
        1: ResponseLabels(False, ("zeta", "alpha"), 3),
        2: ResponseLabels(True, (), 0),
    }
    assert (labels.helpfulness, labels.harmlessness, labels.single) == ((2, 1), None, None)
    assert labels_from_payload(body).responses[1].categories == ("alpha", "zeta")
    assert labels_from_payload(body, ("zeta", "alpha"), adjudicated=False).adjudicated is False


def test_filled_labels_take_the_plurality_and_the_taxonomy_order() -> None:
    a, b, c = (1, 2, 3), (2, 1, 3), (3, 2, 1)
    unsafe = ResponseVote(False, frozenset({"zeta", "alpha"}), 2)
    votes = [
        Vote("v1", {1: ResponseVote(True), 2: ResponseVote(True)}, a, a),
        Vote("v2", {1: unsafe, 2: ResponseVote(True)}, b, b),
        Vote("v3", {1: ResponseVote(True), 2: ResponseVote(True)}, b, b),
        Vote("v4", {1: unsafe, 2: ResponseVote(True)}, c, c),
    ]
    taxonomy = ("zeta", "alpha")
    consensus = item_consensus(votes, taxonomy)
    # No whole ranking has a strict majority, but every pair does (2 > 1, 1 > 3, 2 > 3, each 3
    # of 4): the pairwise consensus is b.
    assert consensus.helpfulness.value == b and consensus.responses[1].is_safe is None

    strict = labels_from_consensus(consensus, votes, taxonomy)
    assert strict.helpfulness == b and strict.harmlessness == b
    # The tied response 1 is left out, and the loop goes on to response 2.
    assert strict.responses == {2: ResponseLabels(True, (), 0)}

    filled = labels_from_consensus(consensus, votes, taxonomy, fill_unresolved=True)
    assert filled.helpfulness == b and filled.harmlessness == b  # 2 of 4, ahead of a and c
    assert filled.responses == {
        1: ResponseLabels(False, ("zeta", "alpha"), 2),
        2: ResponseLabels(True, (), 0),
    }
    assert filled.adjudicated is False


def test_an_unsafe_consensus_without_severity_writes_level_zero() -> None:
    votes = [Vote("v", {1: ResponseVote(False, frozenset({"c"}), None)}, (1,), (1,))]
    labels = labels_from_consensus(item_consensus(votes), votes, ())
    assert labels.responses == {1: ResponseLabels(False, ("c",), 0)}
