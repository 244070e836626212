"""The export filter that keeps only items whose annotations were all accepted in review:
the API, the export page and the CLI, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app import migrate
from app.annotations.schemas import AnnotationIn
from app.batches.models import Batch
from app.config import Settings
from app.db import make_engine
from app.items.models import Item
from app.queue import front
from app.reviews import queue, service
from tests.support.queue_factory import response_ids, valid_annotation
from tests.support.review_factory import annotate, reviewer_of, world


def reviewed_batch(db: Session) -> tuple[Batch, dict[str, int]]:
    """Three items with two annotations each: one item with both accepted, one with one
    accepted and one returned, one with both accepted and then one revised after."""
    batch, (a, b) = world(db, 3, 2, overlap=2)
    batch.review_rate = 1.0
    annotations = [annotate(db, batch, who) for who in (a, b, a, b, a, b)]
    items = {}
    for n, name in enumerate(("accepted", "returned", "revised")):
        items[name] = annotations[2 * n].item_id
    assert [x.item_id for x in annotations] == [v for v in items.values() for _ in (0, 1)]
    reviewer = reviewer_of(db, batch)
    while (review := queue.next_review(db, batch, reviewer)) is not None:
        reject = review.annotation_id == annotations[3].id
        service.decide(db, review.id, reviewer, "reject" if reject else "accept", "fix B")
    late = annotations[5]
    body = valid_annotation(response_ids(db, late.item_id), flip=True)
    front.submit(db, late.assignment_id, b, AnnotationIn.model_validate(body))
    db.flush()
    return batch, items


def prompts(text: str) -> list[str]:
    return [json.loads(line)["prompt"] for line in text.splitlines()]


def test_accepted_only_keeps_fully_accepted_items(
    db: Session, client: TestClient, admin_headers: dict[str, str]
) -> None:
    batch, items = reviewed_batch(db)
    base = (
        f"/api/v1/exports/pku-saferlhf?batch_id={batch.id}&min_agreement=0&include_unresolved=true"
    )
    everything = client.get(base, headers=admin_headers)
    assert everything.status_code == 200 and len(everything.text.splitlines()) == 3
    kept = client.get(base + "&accepted_only=true", headers=admin_headers)
    assert kept.status_code == 200
    accepted = db.get_one(Item, items["accepted"])
    assert prompts(kept.text) == [accepted.prompt]
    # The annotations format keeps that item's annotations only.
    rows = client.get(
        f"/api/v1/exports/annotations?batch_id={batch.id}&accepted_only=true",
        headers=admin_headers,
    )
    assert rows.status_code == 200
    assert {json.loads(x)["item_id"] for x in rows.text.splitlines()} == {items["accepted"]}
    assert len(rows.text.splitlines()) == 2
    bad = client.get(base + "&accepted_only=maybe", headers=admin_headers)
    assert bad.status_code == 422 and "accepted_only" in bad.text


def test_export_page_and_cli_take_the_filter(
    db: Session, client: TestClient, admin_headers: dict[str, str], databases: Any
) -> None:
    batch, items = reviewed_batch(db)
    form = client.get(f"/batches/{batch.id}", headers=admin_headers)
    assert 'name="accepted_only"' in form.text
    page = client.get(
        f"/export?format=annotations&batch_id={batch.id}&accepted_only=1", headers=admin_headers
    )
    assert page.status_code == 200
    assert {json.loads(x)["item_id"] for x in page.text.splitlines()} == {items["accepted"]}

    # The CLI, as a user runs it, against a database of its own.
    url = str(databases.new_url())
    engine = make_engine(Settings(database_url=url))
    migrate.upgrade(engine)
    with Session(engine) as other, other.begin():
        cli_batch, _ = reviewed_batch(other)
        batch_id = cli_batch.id
    engine.dispose()
    env = {**os.environ, "SAFEPREF_DATABASE_URL": url}
    base = [sys.executable, "-m", "app.cli", "export", "--format", "annotations"]
    done = subprocess.run(
        [*base, "--batch", str(batch_id), "--accepted-only"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    assert len(lines) == 2 and len({x["item_id"] for x in lines}) == 1
    everything = subprocess.run(
        [*base, "--batch", str(batch_id)], capture_output=True, env=env, timeout=120
    )
    assert len(everything.stdout.splitlines()) == 6


def test_the_work_report_counts_each_annotators_review_outcomes(db: Session) -> None:
    from app.dashboard.work_report import work_report

    batch, (a, b) = world(db, 2, 2, overlap=2)
    batch.review_rate = 1.0
    annotations = [annotate(db, batch, who) for who in (a, b, a, b)]
    reviewer = reviewer_of(db, batch)
    # Whatever order the queue draws them in: a's two are accepted; b's first is returned
    # with a note, b's second excluded.
    b_decisions = iter(("reject", "exclude"))
    mine = {x.id: x.annotator_id for x in annotations}
    while (review := queue.next_review(db, batch, reviewer)) is not None:
        theirs = mine[review.annotation_id] != a.id
        decision = next(b_decisions, "accept") if theirs else "accept"
        service.decide(db, review.id, reviewer, decision, "see guide")
    db.flush()
    rows = {row["username"]: row for row in work_report(db, batch)}
    outcomes = ("reviews_accepted", "reviews_returned", "reviews_excluded")
    assert [rows[a.username][k] for k in outcomes] == [2, 0, 0]
    assert [rows[b.username][k] for k in outcomes] == [0, 1, 1]
