"""Pairwise consensus of rankings, for items with more than two answers.

A strict majority on a whole ranking of three or more answers is rare even when annotators
mostly agree, so rankings are settled pair by pair:

* For each pair of answers, the votes that ranked both say which comes first; the pair's winner
  is the one a strict majority (more than half of those votes) put first. Without a strict
  majority the pair is unresolved.
* The consensus ranking is the Copeland order of the pair majorities: each answer scores its
  won pairs minus its lost pairs (an unresolved pair counts for neither), and answers are
  ordered by score. Equal scores (a cycle, or too many unresolved pairs) leave the ranking
  unresolved.

With two answers both rules reduce to the strict majority of the whole ranking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Pair = tuple[int, int]  # two response ids, the smaller first


@dataclass(frozen=True, slots=True)
class PairMajority:
    winner: int | None  # the response a strict majority ranked higher, None if unresolved
    share: float  # share of the pair's votes on the larger side
    n_votes: int


def pair_key(a: int, b: int) -> Pair:
    return (a, b) if a < b else (b, a)


def pair_majorities(rankings: Sequence[Sequence[int]]) -> dict[Pair, PairMajority]:
    """Every pair of responses ranked together by at least one vote, with its majority."""
    first: dict[Pair, int] = {}  # votes that put the pair's smaller id first
    total: dict[Pair, int] = {}
    for ranking in rankings:
        for i, a in enumerate(ranking):
            for b in ranking[i + 1 :]:
                key = pair_key(a, b)
                total[key] = total.get(key, 0) + 1
                if a < b:
                    first[key] = first.get(key, 0) + 1
    found = {}
    for key, n in total.items():
        low = first.get(key, 0)
        high = n - low
        winner = key[0] if 2 * low > n else key[1] if 2 * high > n else None
        found[key] = PairMajority(winner, max(low, high) / n, n)
    return found


def copeland_order(
    response_ids: Sequence[int], majorities: Mapping[Pair, PairMajority]
) -> tuple[int, ...] | None:
    """Responses by Copeland score, best first; None when two responses tie."""
    score = dict.fromkeys(response_ids, 0)
    for (a, b), found in majorities.items():
        if found.winner is None or a not in score or b not in score:
            continue
        loser = b if found.winner == a else a
        score[found.winner] += 1
        score[loser] -= 1
    if len(set(score.values())) < len(score):
        return None
    return tuple(sorted(score, key=lambda rid: -score[rid]))
