"""The admin dashboard in headless Chromium against a live server (issue 7).

With JavaScript off the charts (inline SVG) are drawn and every figure is on the page; with
JavaScript on, htmx swaps in new figures every five seconds. Pages fail the test on any
console error or Content-Security-Policy violation. Screenshots: artifacts/screenshots/.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.browserkit import WIDE, login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.live]


@dataclass
class Seeded:
    batch_id: int
    items: list[int]
    people: list[int]
    responses: dict[int, list[int]]


def _vote(ids: list[int], *, flip: bool = False, unsafe: bool = False) -> dict[str, Any]:
    second = (
        {"is_safe": False, "harm_categories": ["Violence"], "severity": "moderate"}
        if unsafe
        else {"is_safe": True, "harm_categories": [], "severity": None}
    )
    return {
        "responses": [
            {"response_id": ids[0], "is_safe": True, "harm_categories": [], "severity": None},
            {"response_id": ids[1], **second},
            *[
                {"response_id": rid, "is_safe": True, "harm_categories": [], "severity": None}
                for rid in ids[2:]
            ],
        ],
        "helpfulness": ids[::-1] if flip else ids,
        "harmlessness": ids,
    }


def add_annotation(
    s: Any, batch_id: int, item_id: int, user_id: int, body: dict[str, Any], hours_ago: float
) -> None:
    from app.annotations.models import Annotation
    from app.batches.models import Assignment, BatchItem
    from app.db import utcnow

    at = utcnow() - timedelta(hours=hours_ago)
    order = [r["response_id"] for r in body["responses"]]
    assignment = Assignment(
        batch_id=batch_id,
        item_id=item_id,
        annotator_id=user_id,
        status="submitted",
        leased_until=at,
        display_order=order,
        submitted_at=at,
        created_at=at,
    )
    s.add(assignment)
    s.flush()
    s.add(
        Annotation(
            assignment_id=assignment.id,
            batch_id=batch_id,
            item_id=item_id,
            annotator_id=user_id,
            payload=body,
            duration_ms=20_000,
            created_at=at,
            updated_at=at,
        )
    )
    row = s.get(BatchItem, (batch_id, item_id))
    row.taken += 1
    row.submitted += 1


@pytest.fixture(scope="module")
def seeded(live_server: Any) -> Seeded:
    """A batch of 8 demo items, overlap 3, three new annotators (the demo batch and its
    accounts stay untouched for the other browser tests); one item is gold."""
    from app.auth.models import User
    from app.auth.service import create_user
    from app.batches.service import add_member, create_batch
    from app.dashboard.gold import mark_gold
    from app.items.models import Item, Response
    from app.projects.models import Project

    tag = uuid.uuid4().hex[:6]
    with live_server.session() as s:
        project = s.get(Project, live_server.demo_project_id)
        item_ids = list(
            s.scalars(select(Item.id).where(Item.project_id == project.id).order_by(Item.id))
        )[:8]
        batch = create_batch(s, project, f"dashboard-{tag}", overlap=3, item_ids=item_ids)
        people = [create_user(s, f"dash{k}-{tag}", "password-123", "annotator") for k in range(3)]
        for person in people:
            add_member(s, batch, person)
        responses = {
            i: list(
                s.scalars(
                    select(Response.id).where(Response.item_id == i).order_by(Response.position)
                )
            )
            for i in item_ids
        }
        for k, item_id in enumerate(item_ids[:5]):
            ids = responses[item_id]
            for p, person in enumerate(people):
                body = _vote(ids, flip=(p == 2 and k % 2 == 0), unsafe=(p > 0 and k == 1))
                add_annotation(s, batch.id, item_id, person.id, body, hours_ago=6 - k)
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        mark_gold(s, batch, item_ids[7], admin)
        return Seeded(batch.id, item_ids, [p.id for p in people], responses)


def text_of(page: Any, figure: str) -> str:
    return str(page.locator(f"[data-figure='{figure}']").inner_text()).strip()


def test_dashboard_charts_and_figures_without_javascript(
    open_page: Any, live_server: Any, seeded: Seeded
) -> None:
    page = open_page(js=False, viewport=WIDE)
    login(page, "admin")
    page.goto(f"/batches/{seeded.batch_id}/dashboard")
    # 7 ordinary items: 5 with 3 annotations (done), 2 untouched; item 8 is gold.
    assert text_of(page, "done") == "5"
    assert text_of(page, "untouched") == "2"
    assert text_of(page, "submitted") == "15 / 21"
    assert text_of(page, "gold").startswith("1 ·")
    for section in ("progress", "timeline", "severity", "categories"):
        box = page.locator(f"#{section} svg.chart").first.bounding_box()
        assert box is not None and box["width"] > 150 and box["height"] > 20, section
    bars = page.locator("#timeline svg rect.bar")
    assert bars.count() >= 5
    assert page.locator("#severity svg rect.bar").count() == 4
    # Agreement figures are printed, with a reading, for each question the project asks.
    rows = page.locator("#agreement tr[data-dimension]")
    assert rows.count() == 4
    assert "%" in rows.first.locator("td").first.inner_text()
    assert page.locator("table.annotators tbody tr").count() == 3
    screenshot(page, "dashboard-nojs", live_server.backend)
    page.locator("#annotators").scroll_into_view_if_needed()
    screenshot(page, "dashboard-nojs-annotators", live_server.backend)

    # Sorting works as a plain link.
    with page.expect_navigation():
        page.click("table.annotators th a:has-text('Agreement')")
    assert "sort=agreement" in page.url

    page.goto("/overview")
    row = page.locator(f"tr[data-batch='{seeded.batch_id}']")
    assert row.locator("[data-figure='done']").inner_text().strip() == "5 / 7"
    assert row.locator("svg").bounding_box() is not None
    screenshot(page, "overview-nojs", live_server.backend)


def test_dashboard_figures_refresh_in_place_with_htmx(
    open_page: Any, live_server: Any, seeded: Seeded
) -> None:
    page = open_page(js=True, viewport=WIDE)
    login(page, "admin")
    page.goto(f"/batches/{seeded.batch_id}/dashboard")
    before = text_of(page, "submitted")
    page.evaluate("document.querySelector('#dashboard-live').dataset.marker = 'original'")
    with live_server.session() as s:
        item_id = seeded.items[5]
        add_annotation(
            s, seeded.batch_id, item_id, seeded.people[0], _vote(seeded.responses[item_id]), 0
        )
    page.wait_for_function(
        "b => document.querySelector(\"[data-figure='submitted']\").innerText.trim() !== b",
        arg=before,
        timeout=30_000,  # the region refreshes every 5 s; the bound is for a loaded machine
    )
    assert text_of(page, "submitted").startswith(str(int(before.split(" / ")[0]) + 1))
    # Swapped in place: same page, the live region was replaced.
    assert page.url.endswith("/dashboard")
    assert page.evaluate("document.querySelector('#dashboard-live').dataset.marker") is None
    screenshot(page, "dashboard-live", live_server.backend)


def test_disagreement_page_renders(open_page: Any, live_server: Any, seeded: Seeded) -> None:
    page = open_page(js=False, viewport=WIDE)
    login(page, "admin")
    page.goto(f"/batches/{seeded.batch_id}/disagreements")
    first = page.locator("table.disagreements tbody tr a").first
    with page.expect_navigation():
        first.click()
    assert page.locator("table.side-by-side").is_visible()
    assert page.locator("table.side-by-side thead th[data-annotator]").count() == 3
    screenshot(page, "disagreement-item", live_server.backend)
