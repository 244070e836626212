"""Which items an export keeps, and with which final labels.

Rules, per (batch, item):

* An adjudicated item is exported with the adjudicator's labels whatever its votes say: the
  admin's decision replaces the consensus, so the vote count and agreement filters do not
  apply to it.
* Otherwise the item needs at least ``min_annotations`` submitted annotations (default: the
  batch overlap), must not be inconsistent, and each dimension that must agree (default: the
  dimensions the format writes) needs a strict majority and, when ``min_agreement`` is given,
  at least that share of the votes.
* ``include_unresolved`` drops the strict-majority requirement: unresolved labels are filled
  by plurality (see ``labels_from_consensus``); the filled labels must still be consistent.
* ``accepted_only`` keeps only items whose annotations in that batch were all accepted in review
  (app/exports/reviewed.py), adjudicated or not; in the annotations format, their annotations.
* The split is decided by the prompt (see ``split_of``), so every pair of a prompt, and the same
  prompt in another batch or project, lands on the same side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.consensus.aggregate import DIMENSIONS, Dimension, ItemConsensus
from app.consensus.labels import FinalLabels, labels_from_consensus, labels_from_payload
from app.consensus.votes import Vote
from app.errors import Invalid

Split = Literal["train", "test"]


@dataclass(frozen=True, slots=True)
class ExportFilters:
    project_id: int | None = None
    batch_id: int | None = None
    min_annotations: int | None = None
    min_agreement: float | None = None
    dimensions: tuple[Dimension, ...] | None = None
    include_unresolved: bool = False
    split: Split | None = None
    test_fraction: float = 0.1
    accepted_only: bool = False

    def __post_init__(self) -> None:
        if self.min_annotations is not None and self.min_annotations < 1:
            raise Invalid("min_annotations: must be at least 1")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise Invalid("min_agreement: must be between 0 and 1")
        if not 0.0 < self.test_fraction < 1.0:
            raise Invalid("test_fraction: must be strictly between 0 and 1")
        for d in self.dimensions or ():
            if d not in DIMENSIONS:
                raise Invalid(f"dimensions: unknown dimension {d!r}; use {', '.join(DIMENSIONS)}")


def parse_dimensions(values: Sequence[str] | None) -> tuple[Dimension, ...] | None:
    """``["helpfulness,is_safe", "harmlessness"]`` -> a tuple of dimensions (None if empty)."""
    if not values:
        return None
    names: list[str] = []
    for value in values:
        names.extend(n.strip() for n in value.split(",") if n.strip())
    for name in names:
        if name not in DIMENSIONS:
            raise Invalid(f"dimensions: unknown dimension {name!r}; use {', '.join(DIMENSIONS)}")
    return tuple(dict.fromkeys(names)) or None  # type: ignore[arg-type]


def split_of(prompt: str, test_fraction: float) -> Split:
    """Deterministic split from the prompt text alone: stable across databases and runs."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2.0**64
    return "test" if bucket < test_fraction else "train"


def select_labels(
    filters: ExportFilters,
    needs: tuple[Dimension, ...],
    *,
    overlap: int,
    votes: Sequence[Vote],
    consensus: ItemConsensus,
    taxonomy: Sequence[str],
    response_ids: Sequence[int],
) -> FinalLabels | None:
    """The labels to export for an item without adjudication, or None if it is filtered out.

    ``needs`` are the dimensions the format writes: they must have a value.
    """
    minimum = filters.min_annotations if filters.min_annotations is not None else overlap
    if len(votes) < minimum or consensus.inconsistent:
        return None
    required = filters.dimensions if filters.dimensions is not None else needs
    for d in required:
        if not filters.include_unresolved and not _settled(consensus, d):
            return None
        if filters.min_agreement is not None and consensus.agreement(d) < filters.min_agreement:
            return None
    labels = labels_from_consensus(
        consensus, votes, taxonomy, fill_unresolved=filters.include_unresolved
    )
    if not has_dimensions(labels, needs, response_ids):
        return None
    if filters.include_unresolved and labels.inconsistencies():
        return None
    return labels


def select_majority(
    filters: ExportFilters,
    needs: tuple[Dimension, ...],
    *,
    overlap: int,
    n_votes: int,
    payload: Mapping[str, Any],
    taxonomy: Sequence[str],
    response_ids: Sequence[int],
) -> FinalLabels | None:
    """``select_labels`` without building votes, for an item where a strict majority of the
    votes are one identical ``payload`` and every vote answers the same questions. The caller
    also ensures that either all votes are identical or no ``min_agreement`` is asked (only
    then are the agreement shares not needed).

    The consensus is then ``payload`` itself: it holds a strict majority on every ranking and
    every safety label; a severity held by a strict majority is the median; a category it does
    not flag is flagged by fewer votes than the majority, so by less than half of the unsafe
    votes. This is the export's common case, kept cheap; tests compare it with the general path.
    """
    minimum = filters.min_annotations if filters.min_annotations is not None else overlap
    if n_votes < minimum:
        return None
    labels = labels_from_payload(payload, taxonomy, adjudicated=False)
    if labels.inconsistencies():
        return None
    required = filters.dimensions if filters.dimensions is not None else needs
    # An absent dimension is unresolved with agreement 0.0 (see ItemConsensus.agreement).
    absent_passes = filters.include_unresolved and not filters.min_agreement
    for d in required:
        if not has_dimensions(labels, (d,), response_ids) and not absent_passes:
            return None
    return labels if has_dimensions(labels, needs, response_ids) else None


def has_dimensions(
    labels: FinalLabels, needs: tuple[Dimension, ...], response_ids: Sequence[int]
) -> bool:
    """Whether the labels hold a value for each needed dimension (safety: every response)."""
    for d in needs:
        if d == "is_safe":
            if any(rid not in labels.responses for rid in response_ids):
                return False
        elif labels.pairs.get(d):
            continue  # pair majorities: the resolved pairs are written, the others left out
        else:
            ranking = labels.ranking(d)
            if ranking is None or not set(response_ids) <= set(ranking):
                return False
    return True


def _settled(consensus: ItemConsensus, dimension: Dimension) -> bool:
    """Resolved, or, for a ranking of three or more answers, at least one pair resolved (pair
    formats write the resolved pairs of an item whose whole ranking is unresolved)."""
    if consensus.is_resolved(dimension):
        return True
    if dimension == "is_safe":
        return False
    found = consensus.dimension(dimension)
    return found is not None and any(w is not None for w in found.pairs.values())
