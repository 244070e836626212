"""Nothing an annotator entered is lost (issue 13): a submit after the session ended, a submit
into a batch closed meanwhile, and an undone skip. Real Chromium against the live server, on
both backends, with and without JavaScript where the paths differ.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.browserkit import DEMO_PASSWORDS, login

pytestmark = [pytest.mark.browser, pytest.mark.live]


def fresh_batch(
    live_server: Any, *, overlap: int = 1, members: tuple[str, ...] = ("alice",)
) -> Any:
    """A batch of its own over the demo project's items, so tests do not share a queue."""
    resp = live_server.api(
        "POST",
        "/api/v1/batches",
        json={
            "project_id": live_server.demo_project_id,
            "name": f"Night shift {uuid.uuid4().hex[:6]}",
            "overlap": overlap,
            "members": list(members),
        },
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def own_batch(live_server: Any, n_items: int = 4, *, members: tuple[str, ...] = ("alice",)) -> Any:
    """A batch over items of a project of its own (PKU pairs imported with their labels).

    For tests that give items answer keys: a key belongs to the item, and a batch holding an
    item with a key anywhere shows no model suggestion, so keys on the demo project's items
    would change what later tests see in the demo batch."""
    from tests.support.samples import jsonl, pku_pair

    name = "own-" + uuid.uuid4().hex[:8]
    project = live_server.api("POST", "/api/v1/projects", json={"name": name})
    assert project.status_code == 201, project.text
    pid = project.json()["id"]
    rows = [
        {k: v for k, v in pku_pair(i).items() if not k.endswith("_sha256")}
        | {"prompt": f"{name} prompt {i}"}
        for i in range(n_items)
    ]
    imported = live_server.api(
        "POST",
        f"/api/v1/projects/{pid}/imports",
        params={"labels_as": "reference"},  # answer keys can be taken from these
        files={"file": ("x.jsonl", jsonl(rows))},
    )
    assert imported.status_code == 201, imported.text
    resp = live_server.api(
        "POST",
        "/api/v1/batches",
        json={"project_id": pid, "name": name, "overlap": 1, "members": list(members)},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def start_item(page: Any, batch_id: int) -> int:
    """From the home page, the batch's next item; returns its assignment id."""
    page.goto("/")
    with page.expect_navigation():
        page.click(f"form[action='/batches/{batch_id}/next'] button")
    match = re.search(r"/assignments/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))


def fill_answers(page: Any) -> dict[str, Any]:
    """Labels every response through the form controls (works with and without JavaScript):
    the first unsafe (first category, moderate), the rest safe, preferences in display order,
    the safe ones first for harmlessness. Returns what was chosen."""
    ids = [
        int(x)
        for x in page.eval_on_selector_all(
            "#annotate .answer", "els => els.map(e => e.dataset.response)"
        )
    ]
    page.check(f"input[name=r{ids[0]}_safe][value=unsafe]")
    category = page.get_attribute(f"input[name=r{ids[0]}_cat] >> nth=0", "value")
    page.check(f"input[name=r{ids[0]}_cat][value='{category}']")
    page.check(f"input[name=r{ids[0]}_sev][value=moderate]")
    for other in ids[1:]:
        page.check(f"input[name=r{other}_safe][value=safe]")
    safer = [*ids[1:], ids[0]]
    for dim, order in (("helpfulness", ids), ("harmlessness", safer)):
        if not page.query_selector(f"[name={dim}_1]"):
            continue
        if len(ids) == 2:
            page.check(f"input[name={dim}_1][value='{order[0]}']")
        else:
            for rank, rid in enumerate(order[:-1], start=1):
                page.select_option(f"select[name={dim}_{rank}]", str(rid))
    if page.query_selector("#rationale"):
        page.fill("#rationale", "kept across the login")
    return {"ids": ids, "category": category}


def assert_filled(page: Any, chosen: dict[str, Any]) -> None:
    ids = chosen["ids"]
    assert page.is_checked(f"input[name=r{ids[0]}_safe][value=unsafe]")
    assert page.is_checked(f"input[name=r{ids[0]}_cat][value='{chosen['category']}']")
    assert page.is_checked(f"input[name=r{ids[0]}_sev][value=moderate]")
    for other in ids[1:]:
        assert page.is_checked(f"input[name=r{other}_safe][value=safe]")


def submit(page: Any) -> None:
    with page.expect_navigation():
        page.click("#submit-button")


def status_of(live_server: Any, assignment_id: int) -> str:
    resp = live_server.api("GET", f"/api/v1/assignments/{assignment_id}")
    assert resp.status_code == 200, resp.text
    return str(resp.json()["status"])


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_a_submit_after_the_session_ended_keeps_the_answers_through_login(
    open_page: Any, live_server: Any, js: bool
) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=js)
    login(page, "alice")
    first = start_item(page, batch["id"])
    chosen = fill_answers(page)

    # The session cookie is gone (expired in the browser) while the item was open.
    page.context.clear_cookies(name="safepref_session")
    submit(page)
    page.wait_for_url(re.compile(r"/login\?"))
    notice = page.text_content("#expired-notice") or ""
    assert "answers" in notice and "Log in again" in notice
    assert status_of(live_server, first) == "leased"  # nothing was saved yet

    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", DEMO_PASSWORDS["alice"])
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")
    assert page.url.endswith(f"/assignments/{first}")
    assert "filled in again" in (page.text_content("#page-notice") or "")
    assert_filled(page, chosen)

    submit(page)
    page.wait_for_url(re.compile(rf"/(assignments/(?!{first}$)\d+|batches/\d+/done)"))
    assert status_of(live_server, first) == "submitted"
    body = live_server.api("GET", f"/api/v1/assignments/{first}").json()
    labels = {r["response_id"]: r for r in body["annotation"]["payload"]["responses"]}
    assert labels[chosen["ids"][0]]["harm_categories"] == [chosen["category"]]

    # Served: the draft is gone, so reopening the item shows the saved answer, no notice.
    from app.annotations.models import Draft

    with live_server.session() as s:
        assert s.scalars(select(Draft).where(Draft.assignment_id == first)).first() is None


def test_kept_answers_come_back_only_in_the_browser_that_posted_them(
    open_page: Any, live_server: Any
) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=False)
    login(page, "alice")
    first = start_item(page, batch["id"])
    fill_answers(page)
    page.context.clear_cookies(name="safepref_session")
    submit(page)
    page.wait_for_url(re.compile(r"/login\?"))

    # The same annotator on another browser (no draft cookie) gets the item as it was.
    elsewhere = open_page(js=False)
    login(elsewhere, "alice")
    elsewhere.goto(f"/assignments/{first}")
    assert elsewhere.query_selector("#page-notice") is None
    assert elsewhere.query_selector("#annotate input[type=radio]:checked") is None


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_a_submit_into_a_batch_closed_meanwhile_keeps_item_and_answers(
    open_page: Any, live_server: Any, js: bool
) -> None:
    batch = fresh_batch(live_server)
    annotator = open_page(js=js, allow_status=(409,))
    login(annotator, "alice")
    first = start_item(annotator, batch["id"])
    chosen = fill_answers(annotator)

    # The admin asks to close the batch: a confirmation says how many items are in progress.
    admin = open_page(js=js)
    login(admin, "admin")
    admin.goto(f"/batches/{batch['id']}")
    with admin.expect_navigation():
        admin.click("#close-batch")
    assert "1 item is in progress" in (admin.text_content("#in-progress") or "")
    assert live_server.api("GET", f"/api/v1/batches/{batch['id']}").json()["is_open"] is True
    with admin.expect_navigation():
        admin.click("#confirm-close")
    assert live_server.api("GET", f"/api/v1/batches/{batch['id']}").json()["is_open"] is False

    if js:
        with annotator.expect_response(lambda r: r.url.endswith(f"/assignments/{first}")) as r:
            annotator.click("#submit-button")
        assert r.value.status == 409
        annotator.wait_for_selector("#page-notice")
    else:
        submit(annotator)
    notice = annotator.text_content("#page-notice") or ""
    assert batch["name"] in notice and "not saved" in notice
    assert "409" not in (annotator.text_content("main") or "")
    assert annotator.url.endswith(f"/assignments/{first}")
    assert_filled(annotator, chosen)
    assert status_of(live_server, first) == "leased"


CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)


def test_shift_s_skips_with_an_undo_that_gives_the_item_back(
    open_page: Any, live_server: Any
) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=True)
    # The undo offer leaves after a few seconds (a timer on the page). A loaded machine can
    # take longer than that between two steps of this test, so the page's clock stands still
    # once the item is open and moves only when the test moves it.
    page.clock.install(time=CLOCK_START)
    login(page, "alice")
    first = start_item(page, batch["id"])
    page.clock.pause_at(CLOCK_START + timedelta(hours=1))

    page.keyboard.press("Shift+S")
    page.wait_for_selector("#skip-undo")
    page.clock.run_for(1000)  # the page settles; the offer's timer is far from due
    assert "Skipped" in (page.text_content("#skip-undo") or "")
    page.wait_for_url(lambda url: not url.endswith(f"/assignments/{first}"))
    assert status_of(live_server, first) == "skipped"

    page.click("#undo-skip")
    page.wait_for_selector(f"#annotate[data-assignment='{first}']")
    page.clock.run_for(1000)
    page.wait_for_url(re.compile(rf"/assignments/{first}$"))
    assert status_of(live_server, first) == "leased"
    assert page.get_attribute("#annotate", "data-editable") == "true"

    # A few seconds later the offer is gone from the next page.
    page.keyboard.press("Shift+S")
    page.wait_for_selector("#skip-undo")
    page.clock.run_for(1000)
    page.clock.run_for(10_000)
    page.wait_for_selector("#skip-undo", state="detached")
    page.clock.resume()  # the accessibility check that follows the test runs on timers


def test_undo_of_a_skip_without_javascript(open_page: Any, live_server: Any) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=False)
    login(page, "alice")
    first = start_item(page, batch["id"])
    with page.expect_navigation():
        page.click("#skip-button")
    assert "Skipped" in (page.text_content("#skip-undo") or "")
    with page.expect_navigation():
        page.click("#undo-skip")
    assert page.url.endswith(f"/assignments/{first}")
    assert status_of(live_server, first) == "leased"


def test_letter_shortcuts_work_with_caps_lock_on(open_page: Any, live_server: Any) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=True)
    login(page, "alice")
    first = start_item(page, batch["id"])
    ids = [
        int(x)
        for x in page.eval_on_selector_all(
            "#annotate .answer", "els => els.map(e => e.dataset.response)"
        )
    ]
    # With Caps Lock on, the keys arrive as capitals without Shift.
    page.keyboard.press("U")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    page.keyboard.press("X")
    page.keyboard.press("S")
    assert page.is_checked(f"input[name=r{ids[0]}_safe][value=unsafe]")
    assert page.is_checked(f"input[name=r{ids[0]}_sev][value=moderate]")
    assert page.is_checked(f"input[name=r{ids[1]}_safe][value=safe]")
    assert page.url.endswith(f"/assignments/{first}")  # "S" without Shift did not skip
    assert status_of(live_server, first) == "leased"
