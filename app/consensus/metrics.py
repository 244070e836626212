"""Inter-annotator agreement metrics in pure Python.

A *unit* is the list of labels one item received on one dimension (any hashable values; an item
may have any number of ratings, a missing rating is simply absent). Every metric runs in
O(total ratings) with dict counting, plus O(V^2) over the V distinct labels for ordinal alpha.
Items with no rating at all carry no information and are dropped before anything else.

A metric that is undefined on the data returns ``MetricValue(None, reason)`` instead of raising,
so a batch page can show why a number is missing.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Units = Sequence[Sequence[Hashable]]
# "rank": labels are rankings (tuples of response positions, best first), compared with
# rank_distance.
Level = Literal["nominal", "ordinal", "rank"]

NO_ITEMS = "no items"
TOO_FEW_RATINGS = "fewer than two ratings per item"
NO_VARIATION = "no variation in labels"
UNEQUAL_RATINGS = "items have different numbers of ratings"
NO_MAJORITY_ITEMS = "no item where the other annotators have a strict majority"


@dataclass(frozen=True, slots=True)
class MetricValue:
    """A metric, or None with the reason it is undefined (reason is set exactly then)."""

    value: float | None
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.reason is None):
            raise ValueError("exactly one of value and reason must be set")

    @classmethod
    def null(cls, reason: str) -> MetricValue:
        return cls(None, reason)


@dataclass(frozen=True, slots=True)
class AgreementSummary:
    """The three batch metrics of one dimension; ``n_items`` counts items with >= 2 ratings."""

    percent_agreement: MetricValue
    fleiss_kappa: MetricValue
    krippendorff_alpha: MetricValue
    n_items: int

    def to_dict(self) -> dict[str, Any]:
        """The pinned API shape, plus the reasons of the null metrics."""
        metrics = {
            "percent_agreement": self.percent_agreement,
            "fleiss_kappa": self.fleiss_kappa,
            "krippendorff_alpha": self.krippendorff_alpha,
        }
        out: dict[str, Any] = {name: m.value for name, m in metrics.items()}
        out["n_items"] = self.n_items
        out["reasons"] = {name: m.reason for name, m in metrics.items() if m.reason is not None}
        return out


# A tallied unit: (number of ratings, label -> count, how many identical units it stands for).
_Tally = tuple[int, Mapping[Hashable, int], int]


def _tally(units: Iterable[Iterable[Hashable]]) -> list[_Tally]:
    tallies: list[_Tally] = []
    for unit in units:
        counts: dict[Hashable, int] = {}
        m = 0
        for label in unit:
            counts[label] = counts.get(label, 0) + 1
            m += 1
        if m:
            tallies.append((m, counts, 1))
    return tallies


class UnitTally:
    """Units accumulated as weighted patterns, for batches too large to keep unit by unit.

    Identical units (same label counts) are stored once with a count, so memory stays small
    whatever the number of items, and the metrics are exactly those of the expanded units.
    """

    def __init__(self) -> None:
        self._patterns: dict[frozenset[tuple[Hashable, int]], int] = {}

    def add(self, labels: Iterable[Hashable]) -> None:
        """One unit given as its labels (one per rating)."""
        counts: dict[Hashable, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        if counts:
            self.add_counts(counts)

    def add_counts(self, counts: Mapping[Hashable, int], weight: int = 1) -> None:
        """``weight`` units whose labels have these counts (zero counts are ignored)."""
        key = frozenset((label, c) for label, c in counts.items() if c > 0)
        if key and weight > 0:
            self._patterns[key] = self._patterns.get(key, 0) + weight

    def merge(self, other: UnitTally) -> None:
        for key, weight in other._patterns.items():
            self._patterns[key] = self._patterns.get(key, 0) + weight

    def tallies(self) -> list[_Tally]:
        return [
            (sum(c for _, c in key), dict(key), weight) for key, weight in self._patterns.items()
        ]

    def summary(self, level: Level = "nominal") -> AgreementSummary:
        return _summary(self.tallies(), level)


def _percent_agreement(tallies: list[_Tally]) -> MetricValue:
    if not tallies:
        return MetricValue.null(NO_ITEMS)
    total = 0.0
    n_items = 0
    for m, counts, weight in tallies:
        if m < 2:
            continue
        agreeing = sum(c * (c - 1) for c in counts.values())
        total += weight * agreeing / (m * (m - 1))
        n_items += weight
    if n_items == 0:
        return MetricValue.null(TOO_FEW_RATINGS)
    return MetricValue(total / n_items)


def _fleiss_kappa(tallies: list[_Tally]) -> MetricValue:
    if not tallies:
        return MetricValue.null(NO_ITEMS)
    n = tallies[0][0]
    if any(m != n for m, _, _ in tallies):
        return MetricValue.null(UNEQUAL_RATINGS)
    if n < 2:
        return MetricValue.null(TOO_FEW_RATINGS)
    n_items = sum(weight for _, _, weight in tallies)
    totals: dict[Hashable, int] = {}
    squares = 0
    for _, counts, weight in tallies:
        for label, c in counts.items():
            totals[label] = totals.get(label, 0) + weight * c
            squares += weight * c * c
    # Checked on counts, not on the float P_e == 1, so rounding cannot hide it.
    if len(totals) < 2:
        return MetricValue.null(NO_VARIATION)
    observed = (squares - n_items * n) / (n_items * n * (n - 1))
    n_ratings = n_items * n
    expected = sum((t / n_ratings) ** 2 for t in totals.values())
    return MetricValue((observed - expected) / (1.0 - expected))


def _ordinal_key(label: Hashable) -> Any:
    # Ordinal labels must be mutually comparable (ints, severity levels); Hashable alone is not.
    return label


def _krippendorff_alpha(tallies: list[_Tally], level: Level) -> MetricValue:
    if not tallies:
        return MetricValue.null(NO_ITEMS)
    pairable = [t for t in tallies if t[0] >= 2]
    if not pairable:
        return MetricValue.null(TOO_FEW_RATINGS)
    n_c: dict[Hashable, int] = {}
    for _, counts, weight in pairable:
        for label, c in counts.items():
            n_c[label] = n_c.get(label, 0) + weight * c
    if len(n_c) < 2:
        return MetricValue.null(NO_VARIATION)
    n = sum(n_c.values())

    if level == "nominal":
        # Observed disagreement = n - sum of the coincidence matrix diagonal.
        diagonal = 0.0
        for m, counts, weight in pairable:
            diagonal += weight * sum(c * (c - 1) for c in counts.values()) / (m - 1)
        expected_pairs = n * n - sum(c * c for c in n_c.values())
        return MetricValue(1.0 - (n - 1) * (n - diagonal) / expected_pairs)

    if level == "rank":
        return _rank_alpha(pairable, n_c, n)
    if level != "ordinal":
        raise ValueError(f"unsupported level of measurement {level!r}")
    domain = sorted(n_c, key=_ordinal_key)
    index = {label: i for i, label in enumerate(domain)}
    weights = [n_c[label] for label in domain]
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)

    def delta(i: int, j: int) -> float:
        # Krippendorff's ordinal distance for i < j: mass between the two values, halved ends.
        return (prefix[j + 1] - prefix[i] - (weights[i] + weights[j]) / 2) ** 2

    # Off-diagonal coincidences o[i][j], i < j; the diagonal has zero distance.
    off_diagonal: dict[tuple[int, int], float] = {}
    for m, counts, weight in pairable:
        if len(counts) < 2:
            continue
        items = sorted((index[label], c) for label, c in counts.items())
        for a in range(len(items)):
            i, ci = items[a]
            for b in range(a + 1, len(items)):
                j, cj = items[b]
                share = weight * ci * cj / (m - 1)
                off_diagonal[(i, j)] = off_diagonal.get((i, j), 0.0) + share
    observed = sum(o * delta(i, j) for (i, j), o in off_diagonal.items())
    v = len(domain)
    expected = sum(
        weights[i] * weights[j] * delta(i, j) for i in range(v) for j in range(i + 1, v)
    ) / (n - 1)
    return MetricValue(1.0 - observed / expected)


def rank_distance(first: Hashable, second: Hashable) -> float:
    """Normalised Kendall distance of two rankings: the share of pairs of answers they order
    differently (0 equal, 1 reversed). Rankings of different answers (or lengths) are 1 apart.
    With two answers this is the nominal distance."""
    a: tuple[Any, ...] = first if isinstance(first, tuple) else (first,)
    b: tuple[Any, ...] = second if isinstance(second, tuple) else (second,)
    if a == b:
        return 0.0
    if len(a) != len(b) or set(a) != set(b):
        return 1.0
    where = {label: i for i, label in enumerate(b)}
    k = len(a)
    discordant = sum(1 for i in range(k) for j in range(i + 1, k) if where[a[i]] > where[a[j]])
    return discordant / (k * (k - 1) / 2)


def _rank_alpha(pairable: list[_Tally], n_c: Mapping[Hashable, int], n: int) -> MetricValue:
    """Alpha with rank_distance: 1 - (n - 1) * sum(o * d) / sum(n_c n_k d), the sums over
    ordered pairs of distinct rankings (o: coincidences within units)."""
    observed = 0.0
    for m, counts, weight in pairable:
        labels = list(counts)
        for i, c in enumerate(labels):
            for k in labels[i + 1 :]:
                observed += 2 * weight * counts[c] * counts[k] * rank_distance(c, k) / (m - 1)
    domain = list(n_c)
    expected = 0.0
    for i, c in enumerate(domain):
        for k in domain[i + 1 :]:
            expected += 2 * n_c[c] * n_c[k] * rank_distance(c, k)
    if expected == 0:
        return MetricValue.null(NO_VARIATION)
    return MetricValue(1.0 - (n - 1) * observed / expected)


def percent_agreement(units: Units) -> MetricValue:
    """Mean pairwise agreement.

    For each item with at least two ratings: the share of unordered pairs of its ratings that
    carry the same label, sum_k c_k (c_k - 1) / (m (m - 1)) for label counts c_k and m ratings.
    The result is the unweighted mean of that share over those items; items with one rating
    are ignored. 1.0 means every pair agrees.
    """
    return _percent_agreement(_tally(units))


def fleiss_kappa(units: Units) -> MetricValue:
    """Fleiss' kappa (Fleiss 1971), as ``statsmodels.stats.inter_rater.fleiss_kappa``.

    Defined only when every item has the same number n >= 2 of ratings, and when the labels
    vary (expected agreement below 1).
    """
    return _fleiss_kappa(_tally(units))


def krippendorff_alpha(units: Units, level: Level = "nominal") -> MetricValue:
    """Krippendorff's alpha from the coincidence matrix: 1 - (n - 1) D_o / D_e.

    Items with fewer than two ratings are not pairable and are ignored. ``ordinal`` uses the
    ordinal distance over the sorted distinct values, so labels must be comparable.
    Null when no value is pairable or when every pairable value is the same (D_e = 0).
    """
    return _krippendorff_alpha(_tally(units), level)


def agreement_summary(units: Units, level: Level = "nominal") -> AgreementSummary:
    """The three metrics of one dimension from a single pass over the ratings."""
    return _summary(_tally(units), level)


def _summary(tallies: list[_Tally], level: Level) -> AgreementSummary:
    return AgreementSummary(
        percent_agreement=_percent_agreement(tallies),
        fleiss_kappa=_fleiss_kappa(tallies),
        krippendorff_alpha=_krippendorff_alpha(tallies, level),
        n_items=sum(weight for m, _, weight in tallies if m >= 2),
    )


def leave_one_out_agreement(
    votes_by_item: Sequence[Mapping[str, Hashable]],
) -> dict[str, MetricValue]:
    """Per annotator: agreement with the majority of the *other* annotators.

    ``votes_by_item`` holds, per item, annotator -> label. An item counts for an annotator when
    the other annotators of that item have a strict majority label; the value is the share of
    those items where the annotator's label equals it. Null when no item counts.
    """
    counter = LeaveOneOut()
    for votes in votes_by_item:
        counter.add(votes)
    return counter.values()


class LeaveOneOut:
    """Leave-one-out agreement counted unit by unit, so a batch can be streamed through it."""

    def __init__(self) -> None:
        self.matched: dict[str, int] = {}
        self.counted: dict[str, int] = {}

    def add(self, votes: Mapping[str, Hashable], weight: int = 1) -> None:
        """One unit (annotator -> label), or ``weight`` units with the same votes."""
        matched, counted = self.matched, self.counted
        counts: dict[Hashable, int] = {}
        for label in votes.values():
            counts[label] = counts.get(label, 0) + 1
        others = len(votes) - 1
        # Only the two most common labels can hold a strict majority once one vote is removed.
        ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:2]
        first, first_count = ranked[0] if ranked else (None, 0)
        second, second_count = ranked[1] if len(ranked) > 1 else (None, 0)
        for annotator, label in votes.items():
            matched.setdefault(annotator, 0)
            counted.setdefault(annotator, 0)
            majority: Hashable | None = None
            found = False
            if label != first:
                if 2 * first_count > others:
                    majority, found = first, True
            elif 2 * (first_count - 1) > others:
                majority, found = first, True
            elif len(ranked) > 1 and 2 * second_count > others:
                majority, found = second, True
            if found:
                counted[annotator] += weight
                matched[annotator] += weight if label == majority else 0

    def merge(self, other: LeaveOneOut) -> None:
        for annotator, n in other.counted.items():
            self.counted[annotator] = self.counted.get(annotator, 0) + n
            self.matched[annotator] = self.matched.get(annotator, 0) + other.matched[annotator]

    def values(self) -> dict[str, MetricValue]:
        return {
            a: MetricValue(self.matched[a] / n) if n else MetricValue.null(NO_MAJORITY_ITEMS)
            for a, n in self.counted.items()
        }


def median(values: Iterable[float | None]) -> float | None:
    """Median of the non-None values (mean of the middle two when even); None when empty."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    mid = len(present) // 2
    if len(present) % 2:
        return float(present[mid])
    return (present[mid - 1] + present[mid]) / 2
