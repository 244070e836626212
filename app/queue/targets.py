"""Adaptive overlap: how many annotations the queue serves an item up to (`batch_items.wanted`).

The target is a pure function of the item's submitted annotations, recomputed under the
batch item's row lock after each submit or revision, so concurrent submits converge on the
same value whatever order they commit in. With n annotations:

- n < overlap_min: overlap_min;
- complete (n >= overlap, or on every gating dimension the consensus of the n annotations is
  resolved with agreement >= early_stop_agreement): n, no more are served;
- otherwise n + 1: one more vote, served before untouched items (the claim takes the highest
  `taken` first).

The consensus is the exports' own (app/consensus/aggregate.py: `ItemConsensus.agrees`). On
PostgreSQL the submit runs in one SQL function, so sql/target.sql computes the same rule in
SQL; tests/queue/test_adaptive.py checks that the two agree on random annotations. A fixed
overlap (overlap_min = overlap) makes the target `overlap` whatever the annotations say.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.annotations.counted import counted
from app.annotations.models import Annotation
from app.batches.models import Batch, BatchItem
from app.batches.schemas import GATING_DIMENSIONS
from app.consensus.aggregate import Dimension
from app.consensus.pairwise import pair_majorities
from app.projects.models import Project

# The dimensions a batch may gate on, in the order the API lists them (all are consensus
# dimensions: app/consensus/aggregate.py).
GATEABLE: tuple[Dimension, ...] = GATING_DIMENSIONS


def gating_dimensions(
    gating: Sequence[str] | None, *, ask_safety: bool, ask_dual: bool, ask_single: bool
) -> tuple[Dimension, ...]:
    """The dimensions whose agreement ends an item early: the chosen ones (None: all) among
    those the project asks (a question nobody answers could never agree)."""
    asked = {
        "helpfulness": ask_dual,
        "harmlessness": ask_dual,
        "single": ask_single,
        "is_safe": ask_safety,
    }
    return tuple(d for d in GATEABLE if asked[d] and (gating is None or d in gating))


def target(
    payloads: Sequence[Mapping[str, Any]],
    *,
    overlap: int,
    overlap_min: int,
    agreement: float,
    dimensions: Iterable[Dimension],
) -> int:
    """The item's target given its submitted annotations' payloads (the module's rule)."""
    n = len(payloads)
    if n < overlap_min:
        return overlap_min
    if n >= overlap:
        return n
    return n if settled(payloads, tuple(dimensions), agreement) else n + 1


def settled(
    payloads: Sequence[Mapping[str, Any]], dimensions: Sequence[str], agreement: float
) -> bool:
    """Whether every gating dimension is settled among these votes. A unit is the safe/unsafe
    label of one response, a ranking of two answers, or one pair of a ranking of three or
    more (which of the two comes first: the pairwise consensus the exports use for such
    items). Every unit needs a strict majority with at least `agreement` of its votes, and
    every gating dimension at least one unit. Requiring each pair, not the whole ranking, to
    agree keeps items whose rankings differ only where the exports do not look.

    sql/target.sql computes the same rule on PostgreSQL (tests/queue/test_adaptive.py
    compares the two)."""
    units: dict[tuple[str, str], Counter[Any]] = defaultdict(Counter)
    long: dict[str, list[tuple[int, ...]]] = defaultdict(list)  # rankings of 3+, per dimension
    for payload in payloads:
        for dim in dimensions:
            if dim == "is_safe":
                for label in payload.get("responses") or ():
                    units[(dim, str(label.get("response_id")))][label.get("is_safe")] += 1
                continue
            ranking = payload.get(dim)
            if not isinstance(ranking, list) or not ranking:
                continue
            if len(ranking) <= 2:
                units[(dim, dim)][tuple(ranking)] += 1
            else:
                long[dim].append(tuple(ranking))
    if {dim for dim, _ in units} | set(long) != set(dimensions):
        return False
    for counts in units.values():
        top, votes = max(counts.values()), sum(counts.values())
        if not (2 * top > votes and top / votes >= agreement):
            return False
    return all(
        found.winner is not None and found.share >= agreement
        for rankings in long.values()
        for found in pair_majorities(rankings).values()
    )


def refresh_targets(session: Session, batch_id: int, item_ids: Iterable[int] | None) -> None:
    """Recomputes the target of these items of the batch (None: all of them), for instance
    after annotations were excluded or included again, or the batch's options changed.

    Locks the batch items in ascending item id (the queue's lock order) before reading their
    annotations. Flushes only; the caller commits.
    """
    session.flush()
    locked = (
        select(BatchItem.item_id)
        .where(BatchItem.batch_id == batch_id)
        .order_by(BatchItem.item_id)
        .with_for_update(key_share=True)
    )
    if item_ids is not None:
        wanted_ids = sorted(set(item_ids))
        if not wanted_ids:
            return
        locked = locked.where(BatchItem.item_id.in_(wanted_ids))
    ids = list(session.scalars(locked))
    if not ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        # The same rule as the submit, in SQL (sql/target.sql).
        session.execute(
            text(
                "UPDATE batch_items SET wanted = safepref_target(batch_id, item_id) "
                "WHERE batch_id = :batch AND item_id = ANY(:items)"
            ),
            {"batch": batch_id, "items": ids},
        )
    else:
        batch, project = session.execute(
            select(Batch, Project).join(Project).where(Batch.id == batch_id)
        ).one()
        payloads: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        query = select(Annotation.item_id, Annotation.payload).where(
            Annotation.batch_id == batch_id, counted()
        )
        if item_ids is not None:
            query = query.where(Annotation.item_id.in_(ids))
        for item_id, payload in session.execute(query.order_by(Annotation.id)):
            if item_id in payloads:
                payloads[item_id].append(payload)
        rule = batch_rule(batch, project)
        for item_id in ids:
            session.execute(
                update(BatchItem)
                .where(BatchItem.batch_id == batch_id, BatchItem.item_id == item_id)
                .values(wanted=target(payloads[item_id], **rule))
                .execution_options(synchronize_session=False)
            )
    for instance in list(session.identity_map.values()):
        if isinstance(instance, BatchItem) and instance.batch_id == batch_id:
            session.expire(instance)


def batch_rule(batch: Batch, project: Project) -> dict[str, Any]:
    """The batch's parameters of `target`."""
    return {
        "overlap": batch.overlap,
        "overlap_min": batch.min_overlap,
        "agreement": batch.early_stop_agreement,
        "dimensions": gating_dimensions(
            batch.gating,
            ask_safety=project.ask_safety,
            ask_dual=project.ask_dual,
            ask_single=project.ask_single,
        ),
    }
