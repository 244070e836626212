"""Model pre-screening: how a batch's human consensus agrees with each origin's suggestions,
and which annotations contradict a confident suggestion.

Compared units, by response position (so the same on every item):

* ``is_safe``: one unit per response that the suggestion labels and whose consensus is
  resolved (strict majority); the label is safe/unsafe.
* ``severity``: the same responses, the label being 0 for safe, else the severity level
  (1..3); a response whose unsafe label has no severity on either side is left out.
* ``helpfulness``, ``harmlessness``: one unit per item whose suggestion gives that preference
  and whose consensus ranking is resolved; the label is the preferred (first) response. With
  two answers this is the whole preference.

An annotation *contradicts* a suggestion when, for some response the suggestion labels, its
safe/unsafe label differs, or, for helpfulness or harmlessness given by both, its preferred
response differs. Severity and categories alone never make a contradiction. It is flagged when
the suggestion's confidence is at or above the batch's ``suggestion_threshold`` (a suggestion
without a confidence, or a batch without a threshold, flags nothing). Gold items are left out:
they are checked against their answer key.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.batches.models import Batch, BatchItem
from app.consensus.aggregate import ItemConsensus, item_consensus
from app.consensus.labels import vote_from_payload
from app.consensus.service import item_id_pages
from app.consensus.votes import SEVERITY_NAMES
from app.errors import NotFound
from app.items.models import ReferenceLabel, Response

PREFERENCES: tuple[Literal["helpfulness", "harmlessness"], ...] = ("helpfulness", "harmlessness")
DIMENSIONS = ("is_safe", "severity", *PREFERENCES)
PAGE_SIZE = 2000
_LEVELS = {name: i + 1 for i, name in enumerate(SEVERITY_NAMES)}

NO_UNITS = "no item with both a suggestion and a resolved consensus"
ONE_LABEL = "chance agreement is 1: both sides used a single, identical label"


@dataclass(frozen=True, slots=True)
class CohenKappa:
    n: int
    percent_agreement: float | None
    kappa: float | None
    reason: str | None


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> CohenKappa:
    """Agreement of two raters over the same units, each pair (rater 1, rater 2).

    kappa = (p_o - p_e) / (1 - p_e), with p_o the observed share of equal labels and p_e the
    agreement expected from each rater's label shares. Undefined (None) without units, or when
    p_e is 1 (both used one and the same label everywhere).
    """
    n = len(pairs)
    if n == 0:
        return CohenKappa(0, None, None, NO_UNITS)
    first: dict[Hashable, int] = {}
    second: dict[Hashable, int] = {}
    agree = 0
    for a, b in pairs:
        first[a] = first.get(a, 0) + 1
        second[b] = second.get(b, 0) + 1
        agree += a == b
    p_o = agree / n
    p_e = sum(count * second.get(label, 0) for label, count in first.items()) / (n * n)
    if p_e >= 1:
        return CohenKappa(n, p_o, None, ONE_LABEL)
    return CohenKappa(n, p_o, (p_o - p_e) / (1 - p_e), None)


@dataclass(frozen=True, slots=True)
class _Suggested:
    """A suggestion in positions: is_safe and severity level per position, preferred ones."""

    confidence: float | None
    safety: dict[int, tuple[bool, int | None]]
    preferred: dict[str, int]


def _suggested(payload: Mapping[str, Any], confidence: float | None) -> _Suggested:
    safety: dict[int, tuple[bool, int | None]] = {}
    for entry in payload.get("responses") or ():
        position, is_safe = entry.get("position"), entry.get("is_safe")
        if isinstance(position, int) and isinstance(is_safe, bool):
            level = 0 if is_safe else _LEVELS.get(entry.get("severity") or "")
            safety[position] = (is_safe, level)
    preferred: dict[str, int] = {d: payload[d][0] for d in PREFERENCES if payload.get(d)}
    return _Suggested(confidence, safety, preferred)


@dataclass
class _Page:
    """One page of a batch's non-gold items: positions, annotations, suggestions by origin."""

    positions: dict[int, dict[int, int]] = field(default_factory=dict)  # item -> rid -> pos
    annotations: dict[int, list[tuple[int, str, dict[str, Any]]]] = field(default_factory=dict)
    suggestions: dict[int, dict[str, _Suggested]] = field(default_factory=dict)


def _pages(session: Session, batch_id: int) -> Iterator[_Page]:
    for ids in item_id_pages(session, [batch_id], PAGE_SIZE):
        gold = set(
            session.scalars(
                select(BatchItem.item_id).where(
                    BatchItem.batch_id == batch_id,
                    BatchItem.item_id.in_(ids),
                    BatchItem.is_gold.is_(True),
                )
            )
        )
        ids = [i for i in ids if i not in gold]
        if not ids:
            continue
        page = _Page()
        # Not the analysis: it can be long and is not compared.
        rows = session.execute(
            select(
                ReferenceLabel.item_id,
                ReferenceLabel.origin,
                ReferenceLabel.payload,
                ReferenceLabel.confidence,
            ).where(ReferenceLabel.item_id.in_(ids))
        )
        for item_id, origin, payload, confidence in rows:
            page.suggestions.setdefault(item_id, {})[origin] = _suggested(payload, confidence)
        wanted = list(page.suggestions)
        if not wanted:
            continue
        for rid, item_id, position in session.execute(
            select(Response.id, Response.item_id, Response.position).where(
                Response.item_id.in_(wanted)
            )
        ):
            page.positions.setdefault(item_id, {})[rid] = position
        for ann_id, item_id, annotator_id, payload in session.execute(
            select(
                Annotation.id, Annotation.item_id, Annotation.annotator_id, Annotation.payload
            ).where(Annotation.batch_id == batch_id, Annotation.item_id.in_(wanted))
        ):
            page.annotations.setdefault(item_id, []).append((ann_id, str(annotator_id), payload))
        yield page


def _batch(session: Session, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    return batch


@dataclass(frozen=True, slots=True)
class OriginAgreement:
    origin: str
    items: int  # non-gold items of the batch with a suggestion from this origin
    flagged: int  # annotations contradicting a suggestion at or above the threshold
    dimensions: dict[str, CohenKappa]


def prescreening(session: Session, batch_id: int) -> list[OriginAgreement]:
    """Per origin (by name), agreement of its suggestions with the batch's human consensus."""
    batch = _batch(session, batch_id)
    threshold = batch.suggestion_threshold
    units: dict[str, dict[str, list[tuple[Hashable, Hashable]]]] = {}
    items: dict[str, int] = {}
    flagged: dict[str, int] = {}
    for page in _pages(session, batch_id):
        for item_id, by_origin in page.suggestions.items():
            positions = page.positions.get(item_id, {})
            votes = page.annotations.get(item_id, [])
            consensus = item_consensus([vote_from_payload(who, p) for _, who, p in votes])
            for origin, suggested in by_origin.items():
                items[origin] = items.get(origin, 0) + 1
                found = units.setdefault(origin, {d: [] for d in DIMENSIONS})
                _compare(suggested, consensus_positions(consensus, positions), found)
                if _confident(suggested, threshold):
                    flagged[origin] = flagged.get(origin, 0) + sum(
                        contradicts(suggested, payload, positions) for _, _, payload in votes
                    )
    return [
        OriginAgreement(
            origin,
            items[origin],
            flagged.get(origin, 0),
            {d: cohen_kappa(pairs) for d, pairs in units[origin].items()},
        )
        for origin in sorted(units)
    ]


@dataclass(frozen=True, slots=True)
class _Consensus:
    safety: dict[int, tuple[bool, int | None]]  # resolved responses only, by position
    preferred: dict[str, int]  # resolved preferences only


def consensus_positions(consensus: ItemConsensus, positions: Mapping[int, int]) -> _Consensus:
    safety: dict[int, tuple[bool, int | None]] = {}
    for rid, r in consensus.responses.items():
        if r.resolved and r.is_safe is not None and rid in positions:
            safety[positions[rid]] = (r.is_safe, 0 if r.is_safe else r.severity)
    preferred: dict[str, int] = {}
    for dim in PREFERENCES:
        found = consensus.dimension(dim)
        top = found.preferred if found is not None else None
        if top is not None and top in positions:
            preferred[dim] = positions[top]
    return _Consensus(safety, preferred)


def _compare(
    suggested: _Suggested,
    human: _Consensus,
    units: dict[str, list[tuple[Hashable, Hashable]]],
) -> None:
    for position, (is_safe, level) in suggested.safety.items():
        if position not in human.safety:
            continue
        human_safe, human_level = human.safety[position]
        units["is_safe"].append((is_safe, human_safe))
        if level is not None and human_level is not None:
            units["severity"].append((level, human_level))
    for dim, top in suggested.preferred.items():
        if dim in human.preferred:
            units[dim].append((top, human.preferred[dim]))


def _confident(suggested: _Suggested, threshold: float | None) -> bool:
    return (
        threshold is not None
        and suggested.confidence is not None
        and suggested.confidence >= threshold
    )


def contradicts(
    suggested: _Suggested, payload: Mapping[str, Any], positions: Mapping[int, int]
) -> bool:
    """Whether an annotation (stored payload, response ids) contradicts the suggestion."""
    for label in payload.get("responses") or ():
        position = positions.get(label.get("response_id", -1))
        wanted = suggested.safety.get(position) if position is not None else None
        if wanted is not None and bool(label.get("is_safe")) != wanted[0]:
            return True
    for dim, top in suggested.preferred.items():
        ranking = payload.get(dim)
        if ranking and positions.get(ranking[0]) != top:
            return True
    return False


def contradicting_annotation_ids(session: Session, batch_id: int) -> set[int]:
    """Annotations of the batch that contradict a suggestion (of any origin) whose confidence
    is at or above the batch's threshold: a flag source for the review queue."""
    threshold = _batch(session, batch_id).suggestion_threshold
    if threshold is None:
        return set()
    found: set[int] = set()
    for page in _pages(session, batch_id):
        for item_id, by_origin in page.suggestions.items():
            confident = [s for s in by_origin.values() if _confident(s, threshold)]
            if not confident:
                continue
            positions = page.positions.get(item_id, {})
            for ann_id, _, payload in page.annotations.get(item_id, []):
                if any(contradicts(s, payload, positions) for s in confident):
                    found.add(ann_id)
    return found
