"""The review queue under real concurrency: several reviewers through the real server at once.

PostgreSQL runs with 2 worker processes, SQLite with 1. Every reviewer sends each `next` twice
at the same moment (two tabs): both must get the same review. Two reviewers also annotated,
so their own work is in the batch. At the end every annotation has been drawn exactly once,
by someone other than its annotator, and no reviewer holds a lease.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.service import create_token
from app.batches.service import add_member, create_batch
from app.reviews.models import Review
from tests.conftest import DatabaseFactory
from tests.support.live_server import app_server, migrated
from tests.support.queue_factory import seed_project
from tests.support.review_factory import annotate

pytestmark = [pytest.mark.slow, pytest.mark.live]

ITEMS = 24
REVIEWERS = 6
# A guard against a hang only (the run takes a few seconds).
RUN_TIMEOUT = 200


@dataclass
class Seeded:
    batch_id: int
    tokens: list[str]
    reviewer_ids: list[int]
    annotation_ids: set[int]


def seed(url: str) -> Seeded:
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            project, _ = seed_project(session, ITEMS)
            batch = create_batch(session, project, "review-load", overlap=1)
            batch.review_rate = 1.0
            tag = uuid.uuid4().hex[:6]
            reviewers = [
                User(username=f"rv-{tag}-{i}", role="reviewer", password_hash="!")
                for i in range(REVIEWERS)
            ]
            annotators = [
                User(username=f"an-{tag}-{i}", role="annotator", password_hash="!")
                for i in range(2)
            ]
            session.add_all(reviewers + annotators)
            session.flush()
            for person in reviewers + annotators:
                add_member(session, batch, person)
            # Two reviewers annotate too: their work must go to the others.
            workers = [*annotators, reviewers[0], reviewers[1]]
            ids = {annotate(session, batch, workers[n % 4]).id for n in range(ITEMS)}
            tokens = [create_token(session, r)[1] for r in reviewers]
            return Seeded(batch.id, tokens, [r.id for r in reviewers], ids)
    finally:
        engine.dispose()


@dataclass
class Record:
    drawn: list[tuple[int, int, int]] = field(default_factory=list)  # reviewer, review, annot.
    problems: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def reviewer_loop(base: str, batch_id: int, index: int, token: str, record: Record) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        while True:
            # Two tabs ask at the same moment.
            barrier = threading.Barrier(2)
            answers: list[httpx.Response] = []

            def ask(
                answers: list[httpx.Response] = answers,
                barrier: threading.Barrier = barrier,
            ) -> None:
                barrier.wait()
                answers.append(client.post(f"/api/v1/batches/{batch_id}/reviews/next"))

            tabs = [threading.Thread(target=ask) for _ in range(2)]
            for tab in tabs:
                tab.start()
            for tab in tabs:
                tab.join()
            with record.lock:
                record.statuses.update(a.status_code for a in answers)
            codes = sorted(a.status_code for a in answers)
            if codes == [204, 204]:
                return
            if codes != [200, 200]:
                with record.lock:
                    record.problems.append(f"reviewer {index}: {[a.text for a in answers]}")
                return
            first, second = (a.json() for a in answers)
            if first["review_id"] != second["review_id"]:
                with record.lock:
                    record.problems.append(f"reviewer {index} leased two: {first} / {second}")
            decided = client.put(
                f"/api/v1/reviews/{first['review_id']}", json={"decision": "accept"}
            )
            with record.lock:
                record.statuses[decided.status_code] += 1
                if decided.status_code != 200:
                    record.problems.append(f"reviewer {index}: decide {decided.text}")
                record.drawn.append(
                    (index, first["review_id"], first["annotation"]["assignment_id"])
                )


def test_reviewers_at_once_never_share_nor_double_a_review(
    backend: str, databases: DatabaseFactory
) -> None:
    url = migrated(databases.new_url())
    seeded = seed(url)
    record = Record()
    workers = 2 if backend == "postgresql" else 1
    with app_server(url, workers=workers, secret="review-" + uuid.uuid4().hex) as base:
        threads = [
            threading.Thread(
                target=reviewer_loop, args=(base, seeded.batch_id, i, token, record), daemon=True
            )
            for i, token in enumerate(seeded.tokens)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(RUN_TIMEOUT)
        assert not any(t.is_alive() for t in threads), "reviewers did not finish"
    assert not record.problems, record.problems
    assert not [s for s in record.statuses if s >= 500], record.statuses
    reviews = [review for _, review, _ in record.drawn]
    assert len(reviews) == len(set(reviews)) == ITEMS
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            rows = session.scalars(select(Review).where(Review.batch_id == seeded.batch_id)).all()
    finally:
        engine.dispose()
    assert sorted(r.annotation_id for r in rows) == sorted(seeded.annotation_ids)
    assert all(r.status == "accepted" for r in rows)
    assert all(r.reviewer_id != r.annotator_id for r in rows)
    assert {r.reviewer_id for r in rows} <= set(seeded.reviewer_ids)
