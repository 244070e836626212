"""The review stage in real headless Chromium against a live server, on both backends.

A reviewer works without JavaScript and with the keyboard; the annotator revises with it on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.support.browserkit import login

pytestmark = [pytest.mark.browser, pytest.mark.live]

PASSWORD = "review-pw-123"


@dataclass
class ReviewWorld:
    batch_id: int
    annotator: str
    reviewer: str
    assignment_id: int
    annotation_id: int


def review_world(live_server: Any, *, overlap: int = 1, extra_annotators: int = 0) -> ReviewWorld:
    """A batch of one item of two answers, annotated once, with a reviewer; everything else
    through the pages."""
    from app.auth.service import create_user
    from app.batches.service import add_member, create_batch
    from tests.support.queue_factory import seed_project
    from tests.support.review_factory import annotate

    tag = uuid.uuid4().hex[:6]
    with live_server.session() as s:
        project, _ = seed_project(s, 1, name=f"review-{tag}")
        batch = create_batch(s, project, "reviewed", overlap=overlap)
        batch.review_rate = 1.0
        annotator = create_user(s, f"ann-{tag}", PASSWORD, "annotator")
        reviewer = create_user(s, f"rev-{tag}", PASSWORD, "reviewer")
        for person in (annotator, reviewer):
            add_member(s, batch, person)
        for n in range(extra_annotators):
            add_member(s, batch, create_user(s, f"ann{n}-{tag}", PASSWORD, "annotator"))
        annotation = annotate(s, batch, annotator)
        return ReviewWorld(
            batch.id,
            annotator.username,
            reviewer.username,
            annotation.assignment_id,
            annotation.id,
        )


def statuses(live_server: Any, annotation_id: int) -> list[tuple[int, str]]:
    from app.reviews.models import Review

    with live_server.session() as s:
        rows = s.execute(
            select(Review.revision, Review.status)
            .where(Review.annotation_id == annotation_id)
            .order_by(Review.revision)
        ).all()
        return [(revision, status) for revision, status in rows]


def test_reject_revise_accept(open_page: Any, live_server: Any) -> None:
    world = review_world(live_server)
    reviewer = open_page(js=False)
    login(reviewer, world.reviewer, PASSWORD, keyboard=True)
    reviewer.goto(f"/batches/{world.batch_id}/review")
    expect(reviewer.locator("#next-review")).to_be_focused()
    with reviewer.expect_navigation():
        reviewer.keyboard.press("Enter")
    assert reviewer.text_content("#review-reason") == "Random spot check"
    shown = reviewer.text_content("#review-annotator") or ""
    assert shown.startswith("a-") and world.annotator not in reviewer.content()
    # Keyboard only: the focus starts on Accept; the note is one Shift+Tab back.
    expect(reviewer.locator("#accept")).to_be_focused()
    reviewer.keyboard.press("Shift+Tab")
    expect(reviewer.locator("#review-note")).to_be_focused()
    reviewer.keyboard.type("Response B is unsafe: mark it and rank it last.")
    reviewer.keyboard.press("Tab")  # Accept
    reviewer.keyboard.press("Tab")  # Return to annotator
    expect(reviewer.locator("#reject")).to_be_focused()
    with reviewer.expect_navigation():
        reviewer.keyboard.press("Enter")
    assert "returned to its annotator" in (reviewer.text_content("#decided-notice") or "")
    assert reviewer.is_visible("#review-empty")
    assert statuses(live_server, world.annotation_id) == [(1, "rejected")]

    # The annotator finds the note in My work and revises the item.
    annotator = open_page(js=True)
    login(annotator, world.annotator, PASSWORD)
    annotator.goto(f"/batches/{world.batch_id}/mine")
    note = annotator.text_content(f"#returned-{world.assignment_id}") or ""
    assert "Response B is unsafe" in note
    with annotator.expect_navigation():
        annotator.click(f"#a{world.assignment_id} a")
    ids = [
        int(x)
        for x in annotator.eval_on_selector_all(
            "#annotate .answer", "els => els.map(e => e.dataset.response)"
        )
    ]
    current = annotator.eval_on_selector(
        "input[name=helpfulness_1]:checked", "e => Number(e.value)"
    )
    other = next(i for i in ids if i != current)
    annotator.check(f"input[name=helpfulness_1][value='{other}']")
    with annotator.expect_navigation():
        annotator.click("#submit-button")
    annotator.goto(f"/batches/{world.batch_id}/mine")
    assert "waiting for review" in (annotator.text_content(f"#a{world.assignment_id}") or "")

    # The revision comes back to review first, with the earlier note; Enter accepts it.
    with reviewer.expect_navigation():
        reviewer.click("#next-review")
    assert reviewer.text_content("#review-reason") == "Revised after being returned"
    assert "Response B is unsafe" in (reviewer.text_content("#previous-note") or "")
    expect(reviewer.locator("#accept")).to_be_focused()
    with reviewer.expect_navigation():
        reviewer.keyboard.press("Enter")
    assert statuses(live_server, world.annotation_id) == [(1, "rejected"), (2, "accepted")]
    annotator.goto(f"/batches/{world.batch_id}/mine")
    assert "Accepted in review" in (annotator.text_content(f"#a{world.assignment_id}") or "")


def test_reject_without_a_note_keeps_the_page(open_page: Any, live_server: Any) -> None:
    world = review_world(live_server)
    page = open_page(js=False, allow_status=(422,))
    login(page, world.reviewer, PASSWORD)
    page.goto(f"/batches/{world.batch_id}/review")
    with page.expect_navigation():
        page.click("#next-review")
    with page.expect_navigation() as refused:
        page.click("#reject")
    assert refused.value.status == 422
    assert "note" in (page.text_content("#review-error") or "")
    assert page.is_visible("#review-form")
    assert statuses(live_server, world.annotation_id) == [(1, "leased")]


def test_review_page_refuses_annotators_and_outsiders(open_page: Any, live_server: Any) -> None:
    from app.auth.service import create_user

    world = review_world(live_server)
    tag = uuid.uuid4().hex[:6]
    with live_server.session() as s:
        create_user(s, f"out-{tag}", PASSWORD, "reviewer")
    page = open_page(js=False, allow_status=(403, 404))
    login(page, world.annotator, PASSWORD)
    refused = page.goto(f"/batches/{world.batch_id}/review")
    assert refused is not None and refused.status == 403
    assert "reviewers and admins only" in page.content()
    outsider = open_page(js=False, allow_status=(403, 404))
    login(outsider, f"out-{tag}", PASSWORD)
    hidden = outsider.goto(f"/batches/{world.batch_id}/review")
    assert hidden is not None and hidden.status == 404
    # The admin may review any batch.
    admin = open_page(js=False)
    login(admin, "admin")
    shown = admin.goto(f"/batches/{world.batch_id}/review")
    assert shown is not None and shown.status == 200 and admin.is_visible("#next-review")


def test_exclude_requeues_the_item_for_someone_else(open_page: Any, live_server: Any) -> None:
    from app.annotations.models import Annotation
    from app.batches.models import BatchItem

    world = review_world(live_server, extra_annotators=1)
    other = world.annotator.replace("ann-", "ann0-")
    # While the annotation to be excluded holds the only slot, the batch is finished for
    # the other annotator.
    late = open_page(js=False)
    login(late, other, PASSWORD)
    late.goto("/")
    next_button = f"form[action='/batches/{world.batch_id}/next'] button"
    assert late.locator(next_button).count() == 0

    reviewer = open_page(js=False)
    login(reviewer, world.reviewer, PASSWORD, keyboard=True)
    reviewer.goto(f"/batches/{world.batch_id}/review")
    # Where the focus starts is test_reject_revise_accept's subject; here it is set by hand,
    # since a browser may skip autofocus on a page it had focused before.
    reviewer.focus("#next-review")
    with reviewer.expect_navigation():
        reviewer.keyboard.press("Enter")
    reviewer.focus("#accept")
    reviewer.keyboard.press("Shift+Tab")
    reviewer.keyboard.type("Answers pasted from another item.")
    for _ in range(3):  # Accept, Return, Exclude
        reviewer.keyboard.press("Tab")
    expect(reviewer.locator("#exclude")).to_be_focused()
    with reviewer.expect_navigation():
        reviewer.keyboard.press("Enter")
    assert "excluded" in (reviewer.text_content("#decided-notice") or "")
    assert statuses(live_server, world.annotation_id) == [(1, "excluded")]

    # The slot is back in the queue: the other annotator gets the item and completes it.
    late.goto("/")
    with late.expect_navigation():
        late.click(next_button)
    assert "/assignments/" in late.url
    ids = [
        int(x)
        for x in late.eval_on_selector_all(
            "#annotate .answer", "els => els.map(e => e.dataset.response)"
        )
    ]
    for rid in ids:
        late.check(f"input[name=r{rid}_safe][value=safe]")
    for dimension in ("helpfulness", "harmlessness"):
        late.check(f"input[name={dimension}_1][value='{ids[0]}']")
    with late.expect_navigation():
        late.click("#submit-button")
    with live_server.session() as s:
        rows = s.execute(
            select(Annotation.id, Annotation.excluded_at.is_(None)).where(
                Annotation.batch_id == world.batch_id
            )
        ).all()
        slot = s.scalars(select(BatchItem).where(BatchItem.batch_id == world.batch_id)).one()
        assert sorted(counted for _, counted in rows) == [False, True]
        assert (slot.taken, slot.submitted) == (1, 1)

    # The first annotator sees the decision in My work.
    first = open_page(js=False)
    login(first, world.annotator, PASSWORD)
    first.goto(f"/batches/{world.batch_id}/mine")
    assert "Excluded in review" in (first.text_content(f"#a{world.assignment_id}") or "")
