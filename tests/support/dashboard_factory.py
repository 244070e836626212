"""A small batch whose every dashboard figure is worked out by hand in
tests/dashboard/test_dashboard.py.

Overlap 3, annotators a, b, c, d; labels by response position (p0, p1):

  item  state         votes
  I0    done          a, b, c: helpful 01, harmless 01, p0 safe, p1 safe          (03:04 UTC)
  I1    done          a: 01 01 safe / unsafe minor [Insulting]                      (04:04)
                      b: 10 01 safe / unsafe moderate [Insulting, Violence]
                      c: 01 01 safe / safe
  I2    in progress   a: 10 10 safe safe;  b: 01 01 safe safe                       (06:04)
  I3    in progress   a live lease held by d
  I4    untouched     skipped by d
  I5    gold          key: 01 01 safe / unsafe severe [Violence]                    (06:14)
                      a: exact;  b: 10 01 safe / unsafe moderate [Violence];
                      d: 01 01 safe / safe

Durations (ms): a 10k 20k 30k 40k (I0 I1 I2 I5), b 1k 2k 3k 4k, c 60k 80k, d 5k.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from app.auth.models import User
from app.batches.models import Assignment, BatchItem
from app.db import utcnow
from app.items.models import GoldLabel
from tests.support.consensus_factory import (
    NOW,
    SAFE,
    Built,
    annotate,
    build,
    payload,
    skip,
    unsafe,
    user,
)

H01, H10 = (0, 1), (1, 0)
GOLD_KEY = {
    "responses": [
        {"position": 0, "is_safe": True, "harm_categories": [], "severity": None},
        {"position": 1, "is_safe": False, "harm_categories": ["Violence"], "severity": "severe"},
    ],
    "helpfulness": [0, 1],
    "harmlessness": [0, 1],
}


@dataclass
class Campaign:
    built: Built
    people: dict[str, User]

    @property
    def batch_id(self) -> int:
        return self.built.batch.id


def build_campaign(db: Session) -> Campaign:
    built = build(db, 6, overlap=3)
    suffix = uuid.uuid4().hex[:6]
    people = {name: user(db, name=f"{name}-{suffix}") for name in "abcd"}
    i0, i1, i2, i3, i4, i5 = built.items

    def vote(item_index: int, name: str, body: dict[str, object], ms: int, hours: float) -> None:
        item = built.items[item_index]
        ann = annotate(db, built, item, people[name], body, duration_ms=ms)
        ann.created_at = ann.updated_at = NOW + timedelta(hours=hours)

    ids = {item.id: built.ids(item) for item in built.items}
    for name, ms in (("a", 10_000), ("b", 1_000), ("c", 60_000)):
        vote(0, name, payload(ids[i0.id]), ms, 0)
    vote(1, "a", payload(ids[i1.id], [SAFE, unsafe("minor", "Insulting Behavior")]), 20_000, 1)
    vote(
        1,
        "b",
        payload(
            ids[i1.id],
            [SAFE, unsafe("moderate", "Insulting Behavior", "Violence")],
            helpful=H10,
        ),
        2_000,
        1,
    )
    vote(1, "c", payload(ids[i1.id]), 80_000, 1)
    vote(2, "a", payload(ids[i2.id], helpful=H10, harmless=H10), 30_000, 3)
    vote(2, "b", payload(ids[i2.id]), 3_000, 3)
    # I5, the gold item.
    key_severe = unsafe("severe", "Violence")
    vote(5, "a", payload(ids[i5.id], [SAFE, key_severe]), 40_000, 3 + 1 / 6)
    vote(
        5, "b", payload(ids[i5.id], [SAFE, unsafe("moderate", "Violence")], helpful=H10), 4_000, 3.2
    )
    vote(5, "d", payload(ids[i5.id]), 5_000, 3.2)
    db.add(GoldLabel(item_id=i5.id, payload=GOLD_KEY))
    # I3: d holds a live lease; I4: d skipped it.
    db.add(
        Assignment(
            batch_id=built.batch.id,
            item_id=i3.id,
            annotator_id=people["d"].id,
            status="leased",
            leased_until=utcnow() + timedelta(hours=1),
            display_order=ids[i3.id],
        )
    )
    skip(db, built, i4, people["d"])
    counters = {i0.id: (3, 3), i1.id: (3, 3), i2.id: (2, 2), i3.id: (1, 0), i5.id: (3, 3)}
    for item_id, (taken, submitted) in counters.items():
        row = db.get(BatchItem, (built.batch.id, item_id))
        assert row is not None
        row.taken, row.submitted = taken, submitted
        row.is_gold = item_id == i5.id
    db.flush()
    return Campaign(built, people)
