"""The per-process parts of the order of work, shared by both backends.

The order itself (app/queue/__init__.py) is a statement per backend: `_claim_statement` in
app/queue/orm.py and app/queue/sql/claim.sql. What a claim needs from the process (the gold
draw, whether its sweep of the batch is due) and the annotator's point on the shuffled ring
are computed here once for both; safepref_rotation computes the same number in SQL.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import TypedDict

# Expired leases reclaimed per sweep: bounded work per request. Each process sweeps a batch at
# most once per SWEEP_INTERVAL seconds on its way to a claim, and always when a claim finds
# nothing, so a backlog drains far faster than leases expire. (safepref_next: the same 32.)
SWEEP_LIMIT = 32
SWEEP_INTERVAL = 1.0
KEY_SPACE = 2**31
gold_rng = random.Random()  # whether this claim is a gold one (tests may seed it)
_last_sweep: dict[int, float] = {}


class Draws(TypedDict):
    gold_draw: float
    sweep: bool


def claim_draws(batch_id: int) -> Draws:
    """What a claim takes from this process: the gold draw (uniform in [0, 1): the claim is
    swapped for a gold item when it is below the batch's rate) and whether this process's
    sweep of the batch is due."""
    return {"gold_draw": gold_rng.random(), "sweep": sweep_due(batch_id)}


def sweep_due(batch_id: int) -> bool:
    """Per-process throttle of the opportunistic sweep; a claim that finds nothing always
    sweeps, so a slot held by a dead lease is never reported as unavailable."""
    clock = time.monotonic()
    if clock - _last_sweep.get(batch_id, -SWEEP_INTERVAL) < SWEEP_INTERVAL:
        return False
    _last_sweep[batch_id] = clock
    return True


def rotation_start(batch_id: int, user_id: int, level: int) -> int:
    """Where this annotator starts on the shuffled ring at this level (stable, per person):
    the first 31 bits of sha256("batch:user:level"), as safepref_rotation computes it."""
    digest = hashlib.sha256(f"{batch_id}:{user_id}:{level}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & (KEY_SPACE - 1)
