"""The queue: an annotator's next assignment in a batch, correct with many server processes.

Invariants: an annotator never gets the same item twice in a batch; an item never
has more than `overlap` live-or-submitted assignments; an unexpired lease is handed back;
expired leases are reclaimed.

How they hold on one PostgreSQL shared by several processes (READ COMMITTED):
- `batch_items.taken` counts live leases plus submitted assignments. It only changes under the
  row lock of that batch item, and a claim only picks rows with `taken < overlap`, locked with
  `FOR NO KEY UPDATE SKIP LOCKED`: two claimers never wait on, nor both take, the last slot.
- The caller's `batch_members` row is locked first: one queue operation per (batch, annotator)
  at a time, so two tabs of one person cannot both claim, and the unique (batch, item,
  annotator) constraint is never raced.
- Lock order everywhere: membership -> assignment(s) -> batch_items (sorted by item id). Sweeps
  and claims take rows with SKIP LOCKED, so they never wait on each other.
On SQLite, `BEGIN IMMEDIATE` (app/db.py) serialises writers and the row locks are no-ops.
On PostgreSQL `next_assignment` is one call of the function safepref_next (app/batches/
queue_pg.py), which does what this module does, in the same order with the same locks.

Order of work: breadth-first (highest `taken` first, so items closest to k finish first), and
among equals a per-annotator rotation of the batch's random `shuffle_key` order: each
annotator starts at their own point of the shuffled ring, so people spread over the batch
instead of colliding on the same rows. The claim is one statement whose branches are range
scans of ix_batch_items_queue (see `_claim_statement`): O(log n) per level in a large batch.

Gold items (issue 7, `BatchItem.is_gold`) are not part of that order: while ordinary work is
left for the caller, each claim is, with probability `batch.gold_rate`, swapped for a gold item
the caller has not seen, whatever its `taken` (every member may get every gold item).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Integer,
    Select,
    Update,
    bindparam,
    exists,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session, joinedload

from app.auth.models import User
from app.batches import queue_pg
from app.batches.models import Assignment, Batch, BatchItem, BatchMember
from app.db import UTCDateTime, utcnow
from app.errors import Conflict, NotFound
from app.items.models import Item, Response

# Expired leases reclaimed per sweep: bounded work per request. Each process sweeps a batch at
# most once per SWEEP_INTERVAL seconds on its way to a claim, and always when a claim finds
# nothing, so a backlog drains far faster than leases expire.
SWEEP_LIMIT = 32
SWEEP_INTERVAL = 1.0
KEY_SPACE = 2**31
_rng = random.SystemRandom()
_gold_rng = random.Random()  # whether this claim is a gold one (tests may seed it)
_last_sweep: dict[int, float] = {}


@dataclass(frozen=True)
class Lease:
    """What `next_assignment` hands out: the assignment and its item, responses in display
    order. `resumed` is True when the caller's own lease was handed back (and renewed)."""

    assignment: Assignment
    item: Item
    responses: list[Response]
    resumed: bool


def lock_membership(session: Session, batch_id: int, user_id: int) -> None:
    """Row-locks the caller's membership (the per-annotator mutex); 404 for non-members."""
    found = session.execute(_membership(), {"batch_id": batch_id, "user_id": user_id}).first()
    if found is None:
        raise NotFound(f"no batch {batch_id}")


def next_assignment(
    session: Session, batch: Batch, user: User, now: datetime | None = None
) -> Lease | None:
    """The caller's next assignment in `batch`, or None when nothing is left for them.

    1. the caller's current lease (renewed for another lease period), if they hold one;
    2. otherwise a claim of the first free item in queue order that the caller has neither
       done nor skipped (an item of theirs whose lease expired may come back to them, with the
       same display order). Expired leases are swept before claiming (at most once a second
       per process and batch, and always before answering that nothing is left).
    Raises NotFound for a non-member (the membership row is the per-annotator lock) and
    Conflict when the batch is closed. Flushes only; the caller commits.
    """
    now = now or utcnow()
    if queue_pg.is_postgresql(session):
        session.flush()  # the function reads the tables, not this session's pending objects
        row = queue_pg.next_lease(
            session,
            batch.id,
            user.id,
            now,
            admin_hint=False,
            **claim_draws(batch.id),
        )
        queue_pg.expire_queue_rows(session)  # the function may have changed rows it holds
        return None if row is None else _lease(session, row.assignment_id, resumed=row.resumed)
    lock_membership(session, batch.id, user.id)
    if not batch.is_open:
        raise Conflict(f"batch {batch.id} is closed")
    # A statement of its own, after the lock: under READ COMMITTED its snapshot then sees
    # whatever my previous, concurrent request committed while this one waited.
    current = session.scalar(_my_lease(), {"batch_id": batch.id, "user_id": user.id})
    lease_until = now + timedelta(seconds=batch.lease_seconds)
    if current is not None and _renew(session, current, "leased", lease_until):
        # Still 'leased' means no sweep took it back: its slot is still counted in `taken`.
        return _lease(session, current, resumed=True)
    swept = sweep_due(batch.id)
    if swept:
        sweep_expired(session, batch.id, now)
    claimed = _claim(session, batch, user.id)
    if claimed is None and not swept and sweep_expired(session, batch.id, now):
        claimed = _claim(session, batch, user.id)
    if claimed is None:
        return None
    if batch.gold_rate > 0 and _gold_rng.random() < batch.gold_rate:
        claimed = _claim_gold(session, batch.id, user.id) or claimed
    item_id, is_gold, mine = claimed
    session.execute(_taken_delta(), {"p_batch": batch.id, "p_item": item_id, "p_delta": 1})
    if mine is not None:  # my own expired lease of this item, revived as it was
        _renew(session, mine, "expired", lease_until)
        return _lease(session, mine, resumed=False)
    item = load_item(session, item_id)
    order = [r.id for r in item.responses]
    _rng.shuffle(order)
    assignment = Assignment(
        batch_id=batch.id,
        item_id=item_id,
        annotator_id=user.id,
        status="leased",
        leased_until=lease_until,
        display_order=order,
        is_gold=is_gold,
        created_at=now,
    )
    session.add(assignment)
    session.flush()
    return Lease(assignment, item, ordered_responses(item, assignment), resumed=False)


def _renew(session: Session, assignment_id: int, status: str, until: datetime) -> bool:
    """Sets a lease of mine in `status` to 'leased' until `until`; False if its status has
    changed meanwhile (a sweep got there first: the row lock makes that decision atomic)."""
    result = session.execute(
        _renew_statement(), {"p_id": assignment_id, "p_status": status, "p_until": until}
    )
    return bool(getattr(result, "rowcount", 0))


def claim_draws(batch_id: int) -> dict[str, Any]:
    """What safepref_next takes from this process for a claim: the gold draw (uniform in
    [0, 1): the claim is swapped for a gold item when it is below the batch's rate) and
    whether this process's sweep of the batch is due."""
    return {"gold_draw": _gold_rng.random(), "sweep": sweep_due(batch_id)}


def sweep_due(batch_id: int) -> bool:
    """Per-process throttle of the opportunistic sweep; a claim that finds nothing always
    sweeps, so a slot held by a dead lease is never reported as unavailable."""
    clock = time.monotonic()
    if clock - _last_sweep.get(batch_id, -SWEEP_INTERVAL) < SWEEP_INTERVAL:
        return False
    _last_sweep[batch_id] = clock
    return True


def sweep_expired(session: Session, batch_id: int, now: datetime, limit: int = SWEEP_LIMIT) -> int:
    """Marks up to `limit` expired leases of the batch 'expired' and frees their slots."""
    rows = session.execute(
        _expired_leases(), {"batch_id": batch_id, "now": now, "limit": limit}
    ).all()
    if not rows:
        return 0
    release_leases(session, batch_id, [(r.id, r.item_id) for r in rows], "expired")
    return len(rows)


def release_leases(
    session: Session, batch_id: int, leases: list[tuple[int, int]], status: str
) -> None:
    """Sets locked, live assignments (id, item id) to `status` and gives their slots back."""
    session.execute(
        update(Assignment)
        .where(Assignment.id.in_([assignment_id for assignment_id, _ in leases]))
        .values(status=status)
    )
    per_item = Counter(item_id for _, item_id in leases)
    for item_id in sorted(per_item):  # one global lock order: no deadlock between sweepers
        params = {"p_batch": batch_id, "p_item": item_id, "p_delta": -per_item[item_id]}
        session.execute(_taken_delta(), params)


def rotation_start(batch_id: int, user_id: int, level: int) -> int:
    """Where this annotator starts on the shuffled ring at this level (stable, per person):
    the first 31 bits of a sha256, as safepref_rotation computes it on PostgreSQL."""
    digest = hashlib.sha256(f"{batch_id}:{user_id}:{level}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & (KEY_SPACE - 1)


def _claim(session: Session, batch: Batch, user_id: int) -> tuple[int, bool, int | None] | None:
    """Locks the first free item in queue order that I have not done or skipped: its id,
    whether it is gold, and my expired assignment of it if I had one."""
    params: dict[str, int] = {"batch_id": batch.id, "user_id": user_id}
    for level in range(batch.overlap):
        params[f"start_{level}"] = rotation_start(batch.id, user_id, level)
    row = session.execute(_claim_statement(batch.overlap), params).first()
    return None if row is None else (row[0], row[1], row[2])


def _claim_branch(level: int | None, arc_start: str, upper: bool) -> Select[int, bool, int]:
    """One range scan of the queue order: the first unlocked batch item of one `taken` level
    (gold items: any level) on one arc of the caller's rotation that the caller has neither
    done nor skipped, with the caller's expired assignment of it if any."""
    user_id = bindparam("user_id", type_=Integer)
    mine = (
        (Assignment.batch_id == BatchItem.batch_id)
        & (Assignment.item_id == BatchItem.item_id)
        & (Assignment.annotator_id == user_id)
    )
    done_by_me = exists().where(mine, Assignment.status != "expired")
    my_expired = select(Assignment.id).where(mine).scalar_subquery().label("mine")
    start = bindparam(arc_start, type_=Integer)
    arc = BatchItem.shuffle_key >= start if upper else BatchItem.shuffle_key < start
    conditions = [
        BatchItem.batch_id == bindparam("batch_id", type_=Integer),
        BatchItem.is_gold.is_(level is None),
        arc,
        ~done_by_me,
    ]
    if level is not None:
        conditions.append(BatchItem.taken == level)
    branch = (
        select(BatchItem.item_id, BatchItem.is_gold, my_expired)
        .where(*conditions)
        .order_by(BatchItem.shuffle_key)
        .limit(1)
        .with_for_update(skip_locked=True, key_share=True, of=BatchItem)
        .subquery()
    )
    return select(branch.c.item_id, branch.c.is_gold, branch.c.mine)


@cache
def _claim_statement(overlap: int) -> CompoundSelect[int, bool, int]:
    """One statement per overlap value, built once (building it costs more than running it).

    A UNION ALL of one branch per (level, arc) in queue order, each an index range scan with
    `LIMIT 1 ... SKIP LOCKED`, under an outer `LIMIT 1`. The database runs the branches one
    after the other and stops at the first row, so only that row is locked and an empty
    level costs an index probe, not a round trip.
    """
    branches = [
        _claim_branch(level, f"start_{level}", upper)
        for level in range(overlap - 1, -1, -1)
        for upper in (True, False)
    ]
    return union_all(*branches).limit(1)


def _claim_gold(
    session: Session, batch_id: int, user_id: int
) -> tuple[int, bool, int | None] | None:
    """Locks a gold item of the batch I have not done or skipped (my own rotation of the
    shuffled order), with my expired assignment of it if I had one; no overlap limit."""
    params = {"batch_id": batch_id, "user_id": user_id}
    params["start"] = rotation_start(batch_id, user_id, -1)
    row = session.execute(_gold_claim_statement(), params).first()
    return None if row is None else (row[0], row[1], row[2])


@cache
def _gold_claim_statement() -> CompoundSelect[int, bool, int]:
    return union_all(*(_claim_branch(None, "start", upper) for upper in (True, False))).limit(1)


def load_item(session: Session, item_id: int) -> Item:
    return (
        session.scalars(select(Item).where(Item.id == item_id).options(joinedload(Item.responses)))
        .unique()
        .one()
    )


def _lease(session: Session, assignment_id: int, *, resumed: bool) -> Lease:
    assignment = session.scalars(
        select(Assignment)
        .where(Assignment.id == assignment_id)
        .execution_options(populate_existing=True)
    ).one()
    item = load_item(session, assignment.item_id)
    return Lease(assignment, item, ordered_responses(item, assignment), resumed=resumed)


def ordered_responses(item: Item, assignment: Assignment) -> list[Response]:
    """The item's responses in the assignment's display order."""
    by_id = {r.id: r for r in item.responses}
    shown = set(assignment.display_order)
    ordered = [by_id[i] for i in assignment.display_order if i in by_id]
    # Responses added after the assignment was made (not expected) go last, never dropped.
    return ordered + [r for r in item.responses if r.id not in shown]


# Statements of the hot path, built once: building a statement costs more CPU than the
# database needs to run it. (An UPDATE's bind names must differ from its column names.)


@cache
def _membership() -> Select[int]:
    return (
        select(BatchMember.user_id)
        .where(
            BatchMember.batch_id == bindparam("batch_id"),
            BatchMember.user_id == bindparam("user_id"),
        )
        .with_for_update(key_share=True)
    )


@cache
def _my_lease() -> Select[int]:
    return (
        select(Assignment.id)
        .where(
            Assignment.batch_id == bindparam("batch_id"),
            Assignment.annotator_id == bindparam("user_id"),
            Assignment.status == "leased",
        )
        .order_by(Assignment.id)
        .limit(1)
    )


@cache
def _renew_statement() -> Update:
    return (
        update(Assignment)
        .where(Assignment.id == bindparam("p_id"), Assignment.status == bindparam("p_status"))
        .values(status="leased", leased_until=bindparam("p_until", type_=UTCDateTime()))
        .execution_options(synchronize_session=False)
    )


@cache
def _expired_leases() -> Select[int, int]:
    return (
        select(Assignment.id, Assignment.item_id)
        .where(
            Assignment.batch_id == bindparam("batch_id"),
            Assignment.status == "leased",
            Assignment.leased_until < bindparam("now"),
        )
        .order_by(Assignment.leased_until)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True, key_share=True)
    )


@cache
def _taken_delta() -> Update:
    return (
        update(BatchItem)
        .where(BatchItem.batch_id == bindparam("p_batch"), BatchItem.item_id == bindparam("p_item"))
        .values(taken=BatchItem.taken + bindparam("p_delta", type_=Integer))
        .execution_options(synchronize_session=False)
    )
