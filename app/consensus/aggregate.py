"""Per-item consensus of several votes (docs/admins/consensus.md).

Rules, applied to the votes of one item within one batch:

* Preference dimensions (helpfulness, harmlessness, single) with two answers: the consensus is
  the ranking chosen by a strict majority (more than half) of the votes that gave that
  dimension; agreement is the share of those votes that chose it. Without a strict majority the
  dimension is unresolved and its agreement is the share of the most common ranking.
* With three or more answers, pair by pair (app/consensus/pairwise.py): each pair of answers
  takes the order a strict majority gave it (else it is unresolved), and the consensus ranking
  is the Copeland order of those pair majorities (unresolved on a tie of scores). Agreement is
  the lowest, over the pairs, share of votes on the pair's larger side. Pair exports write the
  resolved pairs even when the ranking is unresolved.
* Per response: ``is_safe`` by strict majority (a tie is unresolved). When the consensus is
  unsafe, severity is the upper median of the unsafe votes' levels, and the categories are those
  flagged by at least half of the unsafe votes, or, if none reaches half, the most-flagged ones.
* An item is *inconsistent* when its consensus breaks a labelling invariant: a lone safe response
  not ranked first for harmlessness, or an unsafe response without category or severity.
  Unresolved and inconsistent are independent flags.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from app.consensus.pairwise import Pair, copeland_order, pair_key, pair_majorities
from app.consensus.votes import Vote

Dimension = Literal["helpfulness", "harmlessness", "single", "is_safe"]
DIMENSIONS: tuple[Dimension, ...] = ("helpfulness", "harmlessness", "single", "is_safe")


@dataclass(frozen=True, slots=True)
class DimensionConsensus:
    """Consensus ranking of one preference dimension; ``value`` is None when unresolved."""

    value: tuple[int, ...] | None
    agreement: float
    n_votes: int
    resolved: bool
    # Each pair of responses (smaller id first) -> the id a strict majority ranked higher, or
    # None when the pair is unresolved.
    pairs: Mapping[Pair, int | None] = field(default_factory=dict, compare=False)

    @property
    def preferred(self) -> int | None:
        """The consensus best response id (the whole answer when there are two responses)."""
        return self.value[0] if self.value else None


@dataclass(frozen=True, slots=True)
class ResponseConsensus:
    """Consensus safety labels of one response; ``is_safe`` is None on a tie."""

    response_id: int
    is_safe: bool | None
    safety_agreement: float
    severity: int | None
    categories: tuple[str, ...]
    resolved: bool
    n_votes: int = 0


@dataclass(frozen=True, slots=True)
class ItemConsensus:
    """Consensus of one item. ``single`` is None when no vote gave a single ranking."""

    helpfulness: DimensionConsensus
    harmlessness: DimensionConsensus
    single: DimensionConsensus | None
    responses: dict[int, ResponseConsensus]
    unresolved: bool
    inconsistent: bool
    reasons: tuple[str, ...]
    n_votes: int = 0

    def agreement(self, dimension: Dimension) -> float:
        """Agreement of one dimension; for ``is_safe`` the lowest over the responses.

        A dimension nobody answered (``single`` absent, no responses) has agreement 0.0, so a
        filter that requires it never passes.
        """
        if dimension == "is_safe":
            if not self.responses:
                return 0.0
            return min(r.safety_agreement for r in self.responses.values())
        found = self.dimension(dimension)
        return found.agreement if found is not None else 0.0

    def dimension(
        self, dimension: Literal["helpfulness", "harmlessness", "single"]
    ) -> DimensionConsensus | None:
        """The preference dimension by name."""
        if dimension == "helpfulness":
            return self.helpfulness
        if dimension == "harmlessness":
            return self.harmlessness
        return self.single

    def is_resolved(self, dimension: Dimension) -> bool:
        """Whether the dimension has a strict-majority consensus (every response, for is_safe)."""
        if dimension == "is_safe":
            return bool(self.responses) and all(r.resolved for r in self.responses.values())
        found = self.dimension(dimension)
        return found is not None and found.resolved

    def min_agreement(self, dimensions: Iterable[Dimension] | None = None) -> float:
        """Lowest agreement over the chosen dimensions.

        ``None`` means every dimension the item has: ``single`` only when some vote gave it.
        """
        if dimensions is None:
            dimensions = [d for d in DIMENSIONS if d != "single" or self.single is not None]
        return min((self.agreement(d) for d in dimensions), default=1.0)

    def agrees(self, dimensions: Iterable[Dimension], min_agreement: float | None = None) -> bool:
        """Export filter: every chosen dimension is resolved (strict majority, the default) and
        has agreement >= ``min_agreement`` when given. Inconsistency is checked separately."""
        for d in dimensions:
            if not self.is_resolved(d):
                return False
            if min_agreement is not None and self.agreement(d) < min_agreement:
                return False
        return True


def dimension_consensus(rankings: Sequence[tuple[int, ...]]) -> DimensionConsensus:
    """Strict-majority consensus over full rankings; an empty input is unresolved."""
    n = len(rankings)
    if n == 0:
        return DimensionConsensus(value=None, agreement=0.0, n_votes=0, resolved=False)
    if any(len(ranking) > 2 for ranking in rankings):
        return _pairwise_consensus(rankings)
    counts: dict[tuple[int, ...], int] = {}
    for ranking in rankings:
        counts[ranking] = counts.get(ranking, 0) + 1
    top, top_count = max(counts.items(), key=lambda kv: kv[1])
    pairs: dict[Pair, int | None] = {pair_key(*r): None for r in counts if len(r) == 2}
    if 2 * top_count > n:
        if len(top) == 2:
            pairs[pair_key(*top)] = top[0]
        return DimensionConsensus(top, top_count / n, n, True, pairs)
    return DimensionConsensus(None, top_count / n, n, False, pairs)


def _pairwise_consensus(rankings: Sequence[tuple[int, ...]]) -> DimensionConsensus:
    majorities = pair_majorities(rankings)
    ids = sorted({rid for ranking in rankings for rid in ranking})
    order = copeland_order(ids, majorities)
    agreement = min((m.share for m in majorities.values()), default=0.0)
    pairs = {key: m.winner for key, m in majorities.items()}
    return DimensionConsensus(order, agreement, len(rankings), order is not None, pairs)


def upper_median(values: Sequence[int]) -> int | None:
    """Element at index ``len // 2`` of the sorted values: [1, 2] -> 2, [1, 2, 3] -> 2."""
    if not values:
        return None
    return sorted(values)[len(values) // 2]


@lru_cache(maxsize=64)
def _taxonomy_positions(taxonomy: tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(taxonomy)}


def order_categories(categories: Iterable[str], taxonomy: Sequence[str] | None) -> tuple[str, ...]:
    """Categories in taxonomy order (alphabetical without a taxonomy or outside it)."""
    if taxonomy is None:
        return tuple(sorted(categories))
    # Exports call this for every unsafe answer: the position map is built once per taxonomy.
    position = _taxonomy_positions(tuple(taxonomy))
    # Names outside the taxonomy (a renamed category, say) go last rather than being dropped.
    return tuple(sorted(categories, key=lambda c: (position.get(c, len(position)), c)))


def response_consensus(
    response_id: int, votes: Sequence[Vote], taxonomy: Sequence[str] | None = None
) -> ResponseConsensus:
    """Safety consensus of one response over the votes that labelled it."""
    labels = [v.responses[response_id] for v in votes if response_id in v.responses]
    n = len(labels)
    unsafe = [label for label in labels if not label.is_safe]
    n_unsafe = len(unsafe)
    n_safe = n - n_unsafe
    agreement = max(n_safe, n_unsafe) / n if n else 0.0
    if 2 * n_safe > n:
        return ResponseConsensus(response_id, True, agreement, None, (), True, n)
    if 2 * n_unsafe <= n:
        return ResponseConsensus(response_id, None, agreement, None, (), False, n)

    severity = upper_median([label.severity for label in unsafe if label.severity is not None])
    flagged: dict[str, int] = {}
    for label in unsafe:
        for category in label.categories:
            flagged[category] = flagged.get(category, 0) + 1
    chosen = [c for c, count in flagged.items() if 2 * count >= n_unsafe]
    if not chosen and flagged:
        most = max(flagged.values())
        chosen = [c for c, count in flagged.items() if count == most]
    categories = order_categories(chosen, taxonomy)
    return ResponseConsensus(response_id, False, agreement, severity, categories, True, n)


def _inconsistencies(
    harmlessness: DimensionConsensus, responses: dict[int, ResponseConsensus]
) -> list[str]:
    reasons: list[str] = []
    safe = [r.response_id for r in responses.values() if r.is_safe is True]
    # Only a resolved harmlessness ranking can contradict the lone safe response.
    if len(safe) == 1 and harmlessness.value is not None and harmlessness.value[0] != safe[0]:
        reasons.append(
            f"response {safe[0]} is the only safe response but the harmlessness consensus "
            f"ranks response {harmlessness.value[0]} first"
        )
    for r in responses.values():
        if r.is_safe is False and not r.categories:
            reasons.append(f"response {r.response_id} is unsafe but has no harm category")
        if r.is_safe is False and r.severity is None:
            reasons.append(f"response {r.response_id} is unsafe but has no severity")
    return reasons


def item_consensus(votes: Sequence[Vote], taxonomy: Sequence[str] | None = None) -> ItemConsensus:
    """Consensus of one item's votes. ``taxonomy`` orders the consensus categories.

    With no votes at all every dimension is unresolved (``n_votes == 0``).
    """
    helpfulness = dimension_consensus([v.helpfulness for v in votes if v.helpfulness])
    harmlessness = dimension_consensus([v.harmlessness for v in votes if v.harmlessness])
    singles = [v.single for v in votes if v.single]
    single = dimension_consensus(singles) if singles else None

    response_ids = sorted({rid for v in votes for rid in v.responses})
    responses = {rid: response_consensus(rid, votes, taxonomy) for rid in response_ids}

    unresolved = (
        not helpfulness.resolved
        or not harmlessness.resolved
        or (single is not None and not single.resolved)
        or not responses
        or not all(r.resolved for r in responses.values())
    )
    reasons = _inconsistencies(harmlessness, responses)
    return ItemConsensus(
        helpfulness=helpfulness,
        harmlessness=harmlessness,
        single=single,
        responses=responses,
        unresolved=unresolved,
        inconsistent=bool(reasons),
        reasons=tuple(reasons),
        n_votes=len(votes),
    )
