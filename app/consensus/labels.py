"""Stored payloads -> votes, and the final labels of an item that exports write out.

Annotation and adjudication payloads share one shape (the API's PUT body): per response
``{"response_id", "is_safe", "harm_categories", "severity"}`` plus rankings of response ids.
The final labels of an item come from its adjudication when there is one, else from the
consensus of its votes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.consensus.aggregate import ItemConsensus, order_categories, response_consensus
from app.consensus.pairwise import Pair, pair_key
from app.consensus.votes import SEVERITY_NAMES, ResponseVote, Vote

_LEVELS = {name: i + 1 for i, name in enumerate(SEVERITY_NAMES)}
_RANKINGS = ("helpfulness", "harmlessness", "single")


def _ranking(value: Any) -> tuple[int, ...]:
    return tuple(value) if value else ()


# Labels repeat a lot (most answers are safe, or carry one of a few category sets): sharing
# the immutable ResponseVote objects saves building one per response per annotation.
_SHARED: dict[tuple[bool, tuple[str, ...], str | None], ResponseVote] = {}
_SHARED_MAX = 50_000


def _response_vote(
    is_safe: bool, categories: tuple[str, ...], severity: str | None
) -> ResponseVote:
    key = (is_safe, categories, severity)
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        found = _SHARED[key] = ResponseVote(
            is_safe, frozenset(categories), _LEVELS[severity] if severity else None
        )
    return found


def vote_from_payload(annotator: str, payload: Mapping[str, Any]) -> Vote:
    """One stored annotation payload as a consensus vote."""
    responses: dict[int, ResponseVote] = {}
    for r in payload.get("responses") or ():
        responses[r["response_id"]] = _response_vote(
            bool(r["is_safe"]), tuple(r.get("harm_categories") or ()), r.get("severity")
        )
    single = payload.get("single")
    return Vote(
        annotator,
        responses,
        _ranking(payload.get("helpfulness")),
        _ranking(payload.get("harmlessness")),
        tuple(single) if single else None,
    )


@dataclass(frozen=True, slots=True)
class ResponseLabels:
    """Final safety labels of one response; severity is 0 (safe) .. 3 as in the public data."""

    is_safe: bool
    categories: tuple[str, ...]
    severity: int


@dataclass(frozen=True, slots=True)
class FinalLabels:
    """What an export writes for one item. A ranking is None when nobody gave it."""

    helpfulness: tuple[int, ...] | None
    harmlessness: tuple[int, ...] | None
    single: tuple[int, ...] | None
    responses: Mapping[int, ResponseLabels]
    adjudicated: bool = False
    # From a consensus: per ranking dimension, each pair of responses (smaller id first) that a
    # strict majority ordered -> the id ranked higher. Empty for labels written out in full
    # (an adjudication), whose rankings settle every pair.
    pairs: Mapping[str, Mapping[Pair, int]] = field(default_factory=dict)

    def pair_winner(self, dimension: str, a: int, b: int) -> int | None:
        """Which of responses a and b the labels rank higher; None if the pair is unresolved.

        Pair majorities when the labels come from a consensus, else the ranking."""
        pairs = self.pairs.get(dimension)
        if pairs is not None:
            return pairs.get(pair_key(a, b))
        ranking = self.ranking(dimension)
        if not ranking or a not in ranking or b not in ranking:
            return None
        return a if ranking.index(a) < ranking.index(b) else b

    def ranking(self, dimension: str) -> tuple[int, ...] | None:
        if dimension == "helpfulness":
            return self.helpfulness
        if dimension == "harmlessness":
            return self.harmlessness
        if dimension == "single":
            return self.single
        raise ValueError(f"not a ranking dimension: {dimension!r}")

    def inconsistencies(self) -> list[str]:
        """The labelling rules that these labels break."""
        reasons = []
        for rid, r in self.responses.items():
            if r.is_safe != (r.severity == 0) or r.is_safe == bool(r.categories):
                reasons.append(f"response {rid}: safe, no category and severity 0 must go together")
        safe = [rid for rid, r in self.responses.items() if r.is_safe]
        lone = len(safe) == 1 and len(self.responses) > 1
        if lone and self.harmlessness and self.harmlessness[0] != safe[0]:
            reasons.append(
                f"response {safe[0]} is the only safe response but is not ranked first "
                "for harmlessness"
            )
        return reasons


def _categories(names: Sequence[str] | None, taxonomy: Sequence[str]) -> tuple[str, ...]:
    if not names:
        return ()
    if len(names) == 1:
        return (names[0],)
    return order_categories(names, taxonomy or None)


def labels_from_payload(
    payload: Mapping[str, Any], taxonomy: Sequence[str] = (), *, adjudicated: bool = True
) -> FinalLabels:
    """Labels written out in full (an adjudication, or the votes of a unanimous item).

    Categories follow ``taxonomy`` order (alphabetical for names outside it).
    """
    helpfulness = payload.get("helpfulness")
    harmlessness = payload.get("harmlessness")
    single = payload.get("single")
    responses = {}
    for r in payload.get("responses") or ():
        severity = r.get("severity")
        responses[r["response_id"]] = ResponseLabels(
            bool(r["is_safe"]),
            _categories(r.get("harm_categories"), taxonomy),
            _LEVELS[severity] if severity else 0,
        )
    return FinalLabels(
        helpfulness=tuple(helpfulness) if helpfulness else None,
        harmlessness=tuple(harmlessness) if harmlessness else None,
        single=tuple(single) if single else None,
        responses=responses,
        adjudicated=adjudicated,
    )


def _plurality(rankings: Sequence[tuple[int, ...]]) -> tuple[int, ...] | None:
    """Most common ranking; a tie goes to the one given first (votes come in submit order)."""
    counts: dict[tuple[int, ...], int] = {}
    for ranking in rankings:
        if ranking:
            counts[ranking] = counts.get(ranking, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    return next(r for r, c in counts.items() if c == best)


def labels_from_consensus(
    consensus: ItemConsensus,
    votes: Sequence[Vote],
    taxonomy: Sequence[str],
    *,
    fill_unresolved: bool = False,
) -> FinalLabels:
    """Final labels from the strict-majority consensus.

    An unresolved dimension is None, unless ``fill_unresolved`` (the export's
    ``include_unresolved``): then a ranking takes the plurality (first given on a tie) and a
    response tied on safety counts as unsafe, labelled from its unsafe votes by the usual
    severity and category rules; a tie is not evidence that the answer is safe.
    """

    def ranking(dimension: str) -> tuple[int, ...] | None:
        found = consensus.dimension(dimension)  # type: ignore[arg-type]
        if found is None:
            return None
        if found.value is not None:
            return found.value
        if not fill_unresolved:
            return None
        return _plurality([getattr(v, dimension) or () for v in votes])

    def resolved_pairs(dimension: str) -> Mapping[Pair, int] | None:
        """The pair majorities when they say more than the ranking: None (the ranking decides
        every pair) when the ranking agrees with each of them, or once unresolved ones are
        filled."""
        found = consensus.dimension(dimension)  # type: ignore[arg-type]
        if found is None or (fill_unresolved and None in found.pairs.values()):
            return None
        order = {rid: k for k, rid in enumerate(found.value or ())}
        pairs = {key: winner for key, winner in found.pairs.items() if winner is not None}
        settled = len(pairs) == len(found.pairs) and all(
            a in order and b in order and order[winner] == min(order[a], order[b])
            for (a, b), winner in pairs.items()
        )
        return None if settled else pairs

    responses: dict[int, ResponseLabels] = {}
    for rid, r in consensus.responses.items():
        if r.is_safe is None:
            if not fill_unresolved:
                continue
            unsafe = [v for v in votes if rid in v.responses and not v.responses[rid].is_safe]
            r = response_consensus(rid, unsafe, taxonomy)
        if r.is_safe:
            responses[rid] = ResponseLabels(True, (), 0)
        else:
            responses[rid] = ResponseLabels(False, r.categories, r.severity or 0)
    pairs = {d: found for d in _RANKINGS if (found := resolved_pairs(d)) is not None}
    return FinalLabels(
        helpfulness=ranking("helpfulness"),
        harmlessness=ranking("harmlessness"),
        single=ranking("single"),
        responses=responses,
        pairs=pairs,
    )
