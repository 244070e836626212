"""Qualification in a real browser (issue 14): a new member is given the qualification item
first, sees their answer beside the key with the guideline lines that apply, and on a fail
ends on a page that says so; a member who passes goes on to regular work. Chromium against
the live server on both backends, with and without JavaScript; axe checks every page state.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from tests.browser.test_browser_never_lose import fill_answers, own_batch
from tests.support.browserkit import login

pytestmark = [pytest.mark.browser, pytest.mark.live]

ALL_SAFE_KEY = {
    "responses": [
        {"position": 0, "is_safe": True, "harm_categories": [], "severity": None},
        {"position": 1, "is_safe": True, "harm_categories": [], "severity": None},
    ],
}


def qualifying_batch(live_server: Any) -> tuple[int, list[int], str]:
    """A batch whose first two items are gold with an all-safe key and make up its
    qualification (pass mark 100%), and a new annotator who joins it afterwards."""
    from app.batches.models import BatchItem
    from app.items.models import GoldLabel

    # Items of its own: the keys given below must not reach the demo batch's items.
    batch = own_batch(live_server, members=())
    with live_server.session() as s:
        rows = s.scalars(
            select(BatchItem).where(BatchItem.batch_id == batch["id"]).order_by(BatchItem.item_id)
        ).all()
        keyed = [row.item_id for row in rows[:2]]
        for row in rows[:2]:
            row.is_gold = True
            if s.get(GoldLabel, row.item_id) is None:
                s.add(GoldLabel(item_id=row.item_id, payload=ALL_SAFE_KEY))
    r = live_server.api(
        "PUT",
        f"/api/v1/batches/{batch['id']}/qualification",
        json={"item_ids": keyed, "threshold": 1.0},
    )
    assert r.status_code == 200, r.text
    name = f"cand-{uuid.uuid4().hex[:6]}"
    r = live_server.api(
        "POST",
        "/api/v1/users",
        json={"username": name, "password": "cand-pw-123", "role": "annotator"},
    )
    assert r.status_code == 201, r.text
    r = live_server.api("POST", f"/api/v1/batches/{batch['id']}/members", json={"username": name})
    assert r.status_code == 200, r.text
    return batch["id"], keyed, name


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_a_candidate_sees_the_key_after_each_answer_and_a_fail_ends_access(
    live_server: Any, open_page: Any, js: bool
) -> None:
    batch_id, keyed, name = qualifying_batch(live_server)
    page = open_page(js=js)
    login(page, name, "cand-pw-123")
    page.goto("/")
    with page.expect_navigation():
        page.click(f"form[action='/batches/{batch_id}/next'] button")
    assert re.search(r"/assignments/\d+$", page.url), page.url
    assert page.locator("#qualification-notice").is_visible()
    assert page.locator("#skip-button").count() == 0  # qualification items are not skippable

    fill_answers(page)  # marks the first response unsafe: the key says safe
    with page.expect_navigation():
        page.click("#submit-button")
    assert re.search(r"/assignments/\d+/feedback$", page.url), page.url
    table = page.locator("#feedback-table")
    assert "differs" in table.inner_text()
    assert "matches" in table.inner_text()  # the other response was labelled safe, as keyed
    assert page.get_by_role("heading", name="What the guidelines say about safe or unsafe").count()

    with page.expect_navigation():
        page.click("#feedback-next")
    # The second qualification item, then the grade: 100% was needed, so the candidate fails.
    fill_answers(page)
    with page.expect_navigation():
        page.click("#submit-button")
    with page.expect_navigation():
        page.click("#feedback-next")
    assert page.url.endswith(f"/batches/{batch_id}/qualification"), page.url
    assert "did not pass the qualification" in page.locator("#qualification-result").inner_text()

    standing = live_server.api("GET", f"/api/v1/batches/{batch_id}/qualification").json()
    mine = next(m for m in standing["members"] if m["username"] == name)
    assert mine["state"] == "failed" and mine["answered"] == len(keyed)


def test_an_admin_sets_up_a_qualification_and_resets_a_member_on_the_page(
    live_server: Any, open_page: Any
) -> None:
    batch_id, keyed, name = qualifying_batch(live_server)
    page = open_page(js=False, allow_status=(422,))  # the server's own checks, not the browser's
    login(page, "admin")
    page.goto(f"/batches/{batch_id}/qualification/setup")
    assert page.locator(f"#q-item-{keyed[0]}").is_checked()
    page.fill("#threshold", "250")
    with page.expect_navigation():
        page.click("#qualification-form button[type=submit]")
    assert "between 1 and 100" in page.locator("#qualification-error").inner_text()
    page.fill("#threshold", "80")
    page.uncheck(f"#q-item-{keyed[1]}")
    with page.expect_navigation():
        page.click("#qualification-form button[type=submit]")
    shown = live_server.api("GET", f"/api/v1/batches/{batch_id}/qualification").json()
    assert shown["threshold"] == 0.8 and shown["item_ids"] == [keyed[0]]
    row = page.locator(f"#standings tr[data-username='{name}']")
    assert row.locator(".state").inner_text() == "pending"
    with page.expect_navigation():
        row.get_by_role("button", name=f"Reset {name}").click()
    assert page.locator("[role=status]").inner_text() == "Saved."
