"""Gold items: marking them, their answer keys, and annotators' accuracy on them.

A gold item is an item of a batch with `BatchItem.is_gold` set and an answer key in
`GoldLabel` (the reference-label shape: response *positions*, rankings as positions best
first). The queue mixes gold items into every member's stream at the batch's `gold_rate`;
their answers are scored against the key and never enter consensus, agreement or exports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotations.counted import counted
from app.annotations.models import Annotation
from app.auth.models import User
from app.batches.models import Batch, BatchItem
from app.db import utcnow
from app.errors import Invalid, NotFound
from app.items.models import GoldLabel, Item, ReferenceLabel, Response
from app.projects.models import Project

SEVERITY_LEVELS = {"minor": 1, "moderate": 2, "severe": 3}
PREFERENCES = ("helpfulness", "harmlessness", "single")
GOLD_DIMENSIONS = (*PREFERENCES, "is_safe", "severity", "harm_categories")
GOLD_LABELS = {
    "helpfulness": "Helpfulness",
    "harmlessness": "Harmlessness",
    "single": "Single",
    "is_safe": "Safe / unsafe",
    "severity": "Severity",
    "harm_categories": "Harm categories",
}


@dataclass
class GoldScore:
    """Per dimension (matching answers, compared answers) on gold items."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    items: int = 0

    def add(self, dimension: str, hit: bool) -> None:
        hits, checks = self.counts.get(dimension, (0, 0))
        self.counts[dimension] = (hits + int(hit), checks + 1)

    def accuracy(self, dimension: str) -> float | None:
        hits, checks = self.counts.get(dimension, (0, 0))
        return hits / checks if checks else None

    @property
    def overall(self) -> float | None:
        """Preferences and per-response safety pooled (as the metrics API's gold_accuracy)."""
        hits = checks = 0
        for dimension in (*PREFERENCES, "is_safe"):
            h, c = self.counts.get(dimension, (0, 0))
            hits, checks = hits + h, checks + c
        return hits / checks if checks else None


def score_answer(score: GoldScore, key: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
    """Adds one annotation (positions already: rankings and per-position labels) to `score`."""
    for dimension in PREFERENCES:
        expected, given = key.get(dimension), answer.get(dimension)
        if expected and given:
            score.add(dimension, list(given) == list(expected))
    given_labels = {r["position"]: r for r in answer.get("responses") or ()}
    for want in key.get("responses") or ():
        got = given_labels.get(want.get("position"))
        if got is None or want.get("is_safe") is None:
            continue
        score.add("is_safe", bool(got["is_safe"]) == bool(want["is_safe"]))
        if want["is_safe"] or want.get("severity") in SEVERITY_LEVELS:
            want_level = 0 if want["is_safe"] else SEVERITY_LEVELS[want["severity"]]
            got_level = 0 if got["is_safe"] else SEVERITY_LEVELS.get(got.get("severity"), 0)
            score.add("severity", got_level == want_level)
        if want["is_safe"] or "harm_categories" in want:
            want_set = set() if want["is_safe"] else set(want.get("harm_categories") or ())
            got_set = set() if got["is_safe"] else set(got.get("harm_categories") or ())
            score.add("harm_categories", got_set == want_set)


def to_positions(payload: Mapping[str, Any], positions: Mapping[int, int]) -> dict[str, Any]:
    """A stored annotation payload (response ids) rewritten with response positions."""
    out: dict[str, Any] = {
        "responses": [
            {**{k: v for k, v in r.items() if k != "response_id"}, "position": positions[rid]}
            for r in payload.get("responses") or ()
            if (rid := r.get("response_id")) in positions
        ]
    }
    for dimension in PREFERENCES:
        ranking = payload.get(dimension)
        if ranking:
            out[dimension] = [positions.get(rid, -1) for rid in ranking]
    return out


def to_ids(key: Mapping[str, Any], ids: Mapping[int, int]) -> dict[str, Any]:
    """An answer key (positions) as a payload with response ids (`ids`: position -> id)."""
    out: dict[str, Any] = {
        "responses": [
            {**{k: v for k, v in r.items() if k != "position"}, "response_id": ids[p]}
            for r in key.get("responses") or ()
            if (p := r.get("position")) in ids
        ]
    }
    for dimension in PREFERENCES:
        ranking = key.get(dimension)
        if ranking:
            out[dimension] = [ids.get(p, -1) for p in ranking]
    return out


def gold_scores(
    session: Session, batch_id: int, *, annotator_id: int | None = None
) -> dict[int, GoldScore]:
    """Per annotator (or only `annotator_id`): accuracy against the answer keys of the
    batch's gold items, on counted annotations."""
    query = (
        select(Annotation.annotator_id, Annotation.item_id, Annotation.payload, GoldLabel.payload)
        .join(
            BatchItem,
            (BatchItem.batch_id == Annotation.batch_id) & (BatchItem.item_id == Annotation.item_id),
        )
        .join(GoldLabel, GoldLabel.item_id == Annotation.item_id)
        .where(Annotation.batch_id == batch_id, BatchItem.is_gold.is_(True), counted())
        .order_by(Annotation.id)
    )
    if annotator_id is not None:
        query = query.where(Annotation.annotator_id == annotator_id)
    rows = session.execute(query).all()
    item_ids = {item_id for _, item_id, _, _ in rows}
    positions: dict[int, dict[int, int]] = {}
    for item_id, rid, position in session.execute(
        select(Response.item_id, Response.id, Response.position).where(
            Response.item_id.in_(item_ids)
        )
    ):
        positions.setdefault(item_id, {})[rid] = position
    scores: dict[int, GoldScore] = {}
    for annotator_id, item_id, payload, key in rows:
        score = scores.setdefault(annotator_id, GoldScore())
        score.items += 1
        score_answer(score, key, to_positions(payload, positions.get(item_id, {})))
    return scores


# --------------------------------------------------------------------------- marking


@dataclass(frozen=True)
class GoldItem:
    item: Item
    key: dict[str, Any] | None
    answers: int
    created_by: str | None


def check_in_batch(session: Session, batch: Batch, item_id: int) -> BatchItem:
    found = session.get(BatchItem, (batch.id, item_id))
    if found is None:
        raise NotFound(f"no item {item_id} in batch {batch.id}")
    return found


def check_key(session: Session, project: Project, item_id: int, key: Mapping[str, Any]) -> None:
    """An answer key must follow the labelling rules, with positions of the item's responses."""
    n = session.scalar(select(func.count()).where(Response.item_id == item_id)) or 0
    labels = key.get("responses") or []
    seen = set()
    for label in labels:
        position = label.get("position")
        if not isinstance(position, int) or not 0 <= position < n or position in seen:
            raise Invalid(f"labels: response position {position!r} is not one of 0..{n - 1}")
        seen.add(position)
        categories = label.get("harm_categories") or []
        unknown = [c for c in categories if c not in project.taxonomy]
        if unknown:
            raise Invalid(f"labels: {unknown[0]!r} is not a harm category of this project")
        if label.get("is_safe") is True and (categories or label.get("severity")):
            raise Invalid(f"labels: response {position} is safe but has harm labels")
        if label.get("is_safe") is False and label.get("severity") not in SEVERITY_LEVELS:
            raise Invalid(f"labels: response {position} is unsafe: choose a severity")
    for dimension in PREFERENCES:
        ranking = key.get(dimension)
        if ranking is not None and sorted(ranking) != list(range(n)):
            raise Invalid(f"labels: {dimension} must rank every response position 0..{n - 1}")
    safe = [label["position"] for label in labels if label.get("is_safe") is True]
    harmless = key.get("harmlessness")
    if len(safe) == 1 and len(labels) == n > 1 and harmless and harmless[0] != safe[0]:
        raise Invalid("labels: the only safe response must be ranked first for harmlessness")
    if not labels and not any(key.get(d) for d in PREFERENCES):
        raise Invalid("labels: an answer key needs at least one label or ranking")


def mark_gold(
    session: Session,
    batch: Batch,
    item_id: int,
    admin: User,
    key: Mapping[str, Any] | None = None,
) -> GoldLabel:
    """Makes the item gold in the batch with `key` (positions), or with its reference label
    when `key` is None. The answer key belongs to the item, shared by every batch."""
    bi = check_in_batch(session, batch, item_id)
    project = session.get_one(Project, batch.project_id)
    if key is None:
        ref = session.scalars(
            select(ReferenceLabel)
            .where(ReferenceLabel.item_id == item_id)
            .order_by(ReferenceLabel.id)
        ).first()
        if ref is None:
            raise Invalid(
                f"item {item_id} has no reference label: enter its answer key on the gold page"
            )
        key = ref.payload
    clean = {k: v for k, v in key.items() if k in ("responses", *PREFERENCES)}
    check_key(session, project, item_id, clean)
    gold = session.get(GoldLabel, item_id)
    if gold is None:
        gold = GoldLabel(item_id=item_id, payload=clean, created_by_id=admin.id)
        session.add(gold)
    else:
        gold.payload, gold.created_by_id = clean, admin.id
        gold.created_at = utcnow()  # a new key: the dashboard's snapshot must see the change
    bi.is_gold = True
    session.flush()
    return gold


def mark_many_from_reference(
    session: Session, batch: Batch, item_ids: Sequence[int], admin: User
) -> int:
    """Marks each item with its reference label; checks every item before changing any."""
    missing = [
        i
        for i in item_ids
        if session.scalar(select(ReferenceLabel.id).where(ReferenceLabel.item_id == i).limit(1))
        is None
    ]
    for i in item_ids:
        check_in_batch(session, batch, i)
    if missing:
        raise Invalid(f"item_ids: item {missing[0]} has no reference label")
    for i in item_ids:
        mark_gold(session, batch, i, admin)
    return len(item_ids)


def unmark_gold(session: Session, batch: Batch, item_id: int) -> None:
    """The item becomes ordinary again in this batch (its answer key is kept for reuse)."""
    check_in_batch(session, batch, item_id).is_gold = False
    session.flush()


def set_gold_rate(session: Session, batch: Batch, rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise Invalid("gold_rate: must be between 0 and 1")
    batch.gold_rate = rate
    session.flush()


def gold_items(session: Session, batch: Batch) -> list[GoldItem]:
    rows = session.execute(
        select(Item, GoldLabel.payload, User.username, BatchItem.submitted)
        .join(BatchItem, (BatchItem.item_id == Item.id) & (BatchItem.batch_id == batch.id))
        .outerjoin(GoldLabel, GoldLabel.item_id == Item.id)
        .outerjoin(User, User.id == GoldLabel.created_by_id)
        .where(BatchItem.is_gold.is_(True))
        .order_by(Item.id)
    ).all()
    return [GoldItem(item, key, int(n), name) for item, key, name, n in rows]


def reference_candidates(session: Session, batch: Batch, limit: int = 20) -> list[int]:
    """Ordinary items of the batch that have a reference label (to pick gold items from)."""
    return list(
        session.scalars(
            select(BatchItem.item_id)
            .where(
                BatchItem.batch_id == batch.id,
                BatchItem.is_gold.is_(False),
                select(ReferenceLabel.id)
                .where(ReferenceLabel.item_id == BatchItem.item_id)
                .exists(),
            )
            .order_by(BatchItem.item_id)
            .limit(limit)
        )
    )
