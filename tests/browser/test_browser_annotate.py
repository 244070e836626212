"""The annotation page in real headless Chromium against a live server (issue 5).

Each test runs on SQLite and on PostgreSQL (the `backend` fixture). Pages fail the test on any
JavaScript dialog, page error, console error or Content-Security-Policy violation.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.support.browserkit import PHONE, WIDE, login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.live]


def assignment_id_of(page: Any) -> int:
    match = re.search(r"/assignments/(\d+)$", page.url)
    assert match, page.url
    return int(match.group(1))


def response_ids(page: Any) -> list[int]:
    """Response ids in display order (A, B, ...)."""
    return [
        int(x)
        for x in page.eval_on_selector_all(
            "#annotate .answer", "els => els.map(e => e.dataset.response)"
        )
    ]


def tab_to(page: Any, selector: str, limit: int = 40) -> None:
    """Presses Tab until the focused element matches `selector`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def set_hidden(page: Any, hidden: bool) -> None:
    """Simulates the tab being hidden or shown again (Page Visibility API)."""
    page.evaluate(
        """h => {
            Object.defineProperty(document, "hidden", {configurable: true, get: () => h});
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def stored(live_server: Any, assignment_id: int) -> dict[str, Any]:
    """The assignment as the API returns it to an admin (bearer token)."""
    resp = live_server.api("GET", f"/api/v1/assignments/{assignment_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def assignment_row(live_server: Any, assignment_id: int) -> Any:
    from app.batches.models import Assignment

    with live_server.session() as s:
        return s.get(Assignment, assignment_id)


def annotation_row(live_server: Any, assignment_id: int) -> Any:
    from app.annotations.models import Annotation

    with live_server.session() as s:
        return s.scalars(select(Annotation).where(Annotation.assignment_id == assignment_id)).one()


def test_annotate_an_item_with_the_keyboard_alone(open_page: Any, live_server: Any) -> None:
    page = open_page(js=True)
    login(page, "alice", keyboard=True)
    tab_to(page, "form[action$='/next'] button")
    # Before the page opens, so that the wall time below bounds the page's own clock however
    # slowly the machine runs (the page starts timing when it loads, before this call returns).
    opened = time.monotonic()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    first = assignment_id_of(page)
    ids = response_ids(page)
    n = len(ids)
    categories = page.eval_on_selector_all(
        f"#answer-A input[name=r{ids[0]}_cat]", "els => els.map(e => e.value)"
    )
    page.evaluate("() => { window.__sameDocument = true; }")

    # A: unsafe, first and third categories, moderate; the others safe. Helpfulness A, B, ...
    # best first; harmlessness B, C, ... then A (the safe ones must come first).
    page.keyboard.press("u")
    page.keyboard.press("ArrowDown")  # from the category filter into the list
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    page.keyboard.press("x")
    for _ in ids[1:]:
        page.keyboard.press("s")
    assert page.is_disabled(f"#answer-B input[name=r{ids[1]}_cat] >> nth=0")
    for index in range(1, n):
        page.keyboard.press(str(index))
    for index in range(2, n + 1):
        page.keyboard.press(f"Shift+{index}")
    # The suggestion is not in the page until asked for; "m" fetches it (htmx) and the
    # server records the view before anything is submitted.
    assert page.query_selector("#suggestion-body") is None
    assert assignment_row(live_server, first).suggestion_viewed is False
    with page.expect_response(lambda r: r.url.endswith(f"/assignments/{first}/suggestion")) as got:
        page.keyboard.press("m")
    assert got.value.status == 200
    expect(page.locator("#suggestion-body")).to_be_visible()
    assert page.query_selector("#suggestion-button") is None
    assert assignment_row(live_server, first).suggestion_viewed is True
    set_hidden(page, True)  # the tab goes to the background for 1.5 s
    page.wait_for_timeout(1500)
    set_hidden(page, False)
    with page.expect_response(lambda r: r.url.endswith(f"/assignments/{first}")) as posted:
        page.keyboard.press("Enter")
    assert posted.value.status == 200
    wall_ms = (time.monotonic() - opened) * 1000
    page.wait_for_url(re.compile(rf"/assignments/(?!{first}$)\d+$"))
    # htmx swapped the next item in: same document, progress moved on.
    assert page.evaluate("() => window.__sameDocument === true")
    assert page.text_content("#progress-mine") == "1"
    assert page.evaluate("() => document.activeElement.id") == "annotate"

    body = stored(live_server, first)
    assert body["status"] == "submitted"
    payload = body["annotation"]["payload"]
    labels = {r["response_id"]: r for r in payload["responses"]}
    assert labels[ids[0]] == {
        "response_id": ids[0],
        "is_safe": False,
        "harm_categories": [categories[0], categories[2]],
        "severity": "moderate",
    }
    for other in ids[1:]:
        assert labels[other] == {
            "response_id": other,
            "is_safe": True,
            "harm_categories": [],
            "severity": None,
        }
    assert payload["helpfulness"] == ids
    assert payload["harmlessness"] == [*ids[1:], ids[0]]
    row = annotation_row(live_server, first)
    assert row.suggestion_viewed is True
    # Time on the item counts only while the tab was visible.
    assert row.duration_ms is not None and 0 < row.duration_ms <= wall_ms - 1300

    # Back: the submitted item comes back from the server (nothing cached in the browser).
    page.go_back()
    page.wait_for_url(re.compile(rf"/assignments/{first}$"))
    # The URL changes at once; htmx then fetches the item from the server: wait for it.
    expect(page.locator("#annotate")).to_contain_text("revision 1")
    assert page.evaluate("() => localStorage.length") == 0


def test_keys_are_left_alone_while_typing(open_page: Any, live_server: Any) -> None:
    page = open_page(js=True)
    login(page, "alice")
    page.click("form[action$='/next'] button")
    page.wait_for_url(re.compile(r"/assignments/\d+$"))
    a_id = response_ids(page)[0]

    page.focus("#skip-reason")
    page.keyboard.type("su12?mS")
    assert page.input_value("#skip-reason") == "su12?mS"
    assert page.evaluate("() => document.querySelector('#annotate-form input:checked') === null")
    assert not page.is_visible("#shortcut-dialog")
    assert re.search(r"/assignments/\d+$", page.url)  # Shift+S did not skip

    page.keyboard.press("Escape")
    page.keyboard.press("s")
    assert page.is_checked(f"input[name=r{a_id}_safe][value=safe]")
    page.keyboard.press("?")
    assert page.is_visible("#shortcut-dialog")
    assert "Harmlessness" in page.text_content("#shortcut-dialog")
    page.keyboard.press("Escape")
    assert not page.is_visible("#shortcut-dialog")

    # The page's own check refuses an incomplete answer before anything is sent.
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    page.keyboard.press("Enter")
    assert page.text_content(f"[data-error-for='r{response_ids(page)[1]}_safe']")
    assert page.text_content("[data-error-for=helpfulness]") in (
        "Choose A or B.",
        "Rank every response.",
    )
    assert sent == []

    # Shift+S skips, with the reason typed above; htmx brings in the next item.
    skipped = assignment_id_of(page)
    page.keyboard.press("Shift+S")
    page.wait_for_url(re.compile(rf"/assignments/(?!{skipped}$)\d+$"))
    body = stored(live_server, skipped)
    assert body["status"] == "skipped" and body["skip_reason"] == "su12?mS"


def rank(page: Any, dimension: str, ids: list[int]) -> None:
    """Fills a ranking control by mouse: a radio for two responses, else one select per rank
    (on a fresh item the last rank may stay empty: it is the remaining response)."""
    if len(ids) == 2:
        page.check(f"input[name={dimension}_1][value='{ids[0]}']")
        return
    for rank_, rid in enumerate(ids[:-1], start=1):
        page.select_option(f"select[name={dimension}_{rank_}]", str(rid))
    # A reopened item shows its stored ranking in every select, the last one included: set it
    # too, or it may repeat a response chosen above (the server refuses such a ranking).
    last = f"select[name={dimension}_{len(ids)}]"
    if page.locator(last).count():
        page.select_option(last, str(ids[-1]))


def test_annotate_and_revise_without_javascript(open_page: Any, live_server: Any) -> None:
    page = open_page(js=False, allow_status=(422,))
    login(page, "bob")
    with page.expect_navigation():
        page.click("form[action$='/next'] button")
    first = assignment_id_of(page)
    ids = response_ids(page)
    a_id = ids[0]
    others = ids[1:]

    # Unsafe without categories or severity: the server refuses it and keeps the answers.
    page.check(f"input[name=r{a_id}_safe][value=unsafe]")
    for rid in others:
        page.check(f"input[name=r{rid}_safe][value=safe]")
    rank(page, "helpfulness", [*others, a_id])
    rank(page, "harmlessness", [*others, a_id])
    with page.expect_navigation() as nav:
        page.click("#submit-button")
    assert nav.value.status == 422
    assert "Not saved yet" in page.text_content("#error-summary")
    assert page.text_content(f"[data-error-for=r{a_id}_cat]")
    assert page.is_checked(f"input[name=r{a_id}_safe][value=unsafe]")
    assert page.is_checked(f"input[name=r{others[0]}_safe][value=safe]")
    if len(ids) == 2:
        assert page.is_checked(f"input[name=helpfulness_1][value='{others[0]}']")
    else:
        assert page.input_value("select[name=helpfulness_1]") == str(others[0])

    cats = page.eval_on_selector_all(f"input[name=r{a_id}_cat]", "els => els.map(e => e.value)")
    page.check(f"input[name=r{a_id}_cat][value='{cats[5]}']")
    page.check(f"input[name=r{a_id}_sev][value=severe]")
    # Without script the suggestion button posts the form: the page comes back with the
    # answers so far and the suggestion, and the server has recorded the view.
    assert page.query_selector("#suggestion-body") is None
    assert assignment_row(live_server, first).suggestion_viewed is False
    with page.expect_navigation() as nav:
        page.click("#suggestion-button")
    assert nav.value.status == 200
    assert page.is_visible("#suggestion-body")
    assert assignment_row(live_server, first).suggestion_viewed is True
    assert page.is_checked(f"input[name=r{a_id}_cat][value='{cats[5]}']")
    assert page.is_checked(f"input[name=r{a_id}_sev][value=severe]")
    with page.expect_navigation() as nav:
        page.click("#submit-button")
    assert nav.value.status == 200
    assert assignment_id_of(page) != first

    body = stored(live_server, first)
    payload = body["annotation"]["payload"]
    labels = {r["response_id"]: r for r in payload["responses"]}
    assert labels[a_id]["harm_categories"] == [cats[5]]
    assert labels[a_id]["severity"] == "severe"
    assert payload["helpfulness"] == [*others, a_id]
    row = annotation_row(live_server, first)
    assert row.revision == 1
    assert row.suggestion_viewed is True
    assert row.duration_ms is not None  # from the lease, without the page's script

    # My work: reopen the item, make A the most helpful, save a revision.
    page.goto(f"/batches/{live_server.demo_batch_id}/mine")
    with page.expect_navigation():
        page.click(f"#a{first} a")
    assert "revision 1" in page.text_content("#annotate")
    rank(page, "helpfulness", ids)
    with page.expect_navigation() as saved:
        page.click("#submit-button")
    assert f"/batches/{live_server.demo_batch_id}/mine" in page.url, (
        saved.value.status,
        page.inner_text("body")[:2000],
    )
    assert page.text_content(f"#a{first} td.num") == "2"
    body = stored(live_server, first)
    assert body["annotation"]["revision"] == 2
    assert body["annotation"]["payload"]["helpfulness"] == ids


def test_layout_and_screenshots(open_page: Any, live_server: Any) -> None:
    """Side by side on a laptop, stacked on a phone; no sideways scrolling; screenshots."""
    for name, viewport in (("wide", WIDE), ("phone", PHONE)):
        page = open_page(js=True, viewport=viewport)
        login(page, "alice")
        page.click("form[action$='/next'] button")
        page.wait_for_url(re.compile(r"/assignments/\d+$"))
        boxes = [page.locator(f"#answer-{x}").bounding_box() for x in "AB"]
        if name == "wide":
            assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]
        else:
            assert boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"]
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"{name}: page scrolls sideways ({width}px)"
        screenshot(page, "annotate", live_server.backend)
        page.keyboard.press("u")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Space")
        page.keyboard.press("z")
        screenshot(page, "annotate-unsafe", live_server.backend)
        page.keyboard.press("?")
        screenshot(page, "annotate-shortcuts", live_server.backend)
        page.keyboard.press("Escape")
        page.goto(f"/batches/{live_server.demo_batch_id}/mine")
        screenshot(page, "my-work", live_server.backend)
