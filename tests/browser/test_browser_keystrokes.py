"""Keystrokes per item (issue 13): one unsafe answer with one harm category in at most 8 keys,
counted key by key in real Chromium, on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_browser_never_lose import fresh_batch, start_item, status_of
from tests.support.browserkit import login

pytestmark = [pytest.mark.browser, pytest.mark.live]
KEY_BUDGET = 8


class CountingKeyboard:
    """Presses keys on the page and counts them (a chord such as Shift+1 is one press)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.count = 0

    def press(self, key: str) -> None:
        self.count += 1
        self.page.keyboard.press(key)


def two_answer_item(page: Any, batch_id: int) -> int:
    """The batch's next item with two responses (items with more are skipped, uncounted)."""
    first = start_item(page, batch_id)
    while page.eval_on_selector_all("#annotate .answer", "els => els.length") != 2:
        with page.expect_response(lambda r: "/skip" in r.url):
            page.click("#skip-button")
        # htmx swaps the next item in and then pushes its URL. The skipped item's URL matches
        # the same pattern, so waiting for the pattern could return before the swap (a loaded
        # run did, and then waited for the skipped item): wait for another item and its URL.
        page.wait_for_function(
            """skipped => {
                const item = document.querySelector("#annotate");
                return item !== null && item.dataset.assignment !== String(skipped)
                    && location.pathname === "/assignments/" + item.dataset.assignment;
            }""",
            arg=first,
        )
        first = int(page.url.rsplit("/", 1)[1])
    # Keys pressed before the page's script has taken this item in would be lost (a loaded
    # machine can be that slow): wait until it has shown the parts that need it.
    page.wait_for_function(
        """id => {
            const item = document.querySelector("#annotate");
            return item !== null && item.dataset.assignment === String(id)
                && item.querySelector("[data-needs-script]") !== null
                && item.querySelector("[data-needs-script][hidden]") === null;
        }""",
        arg=first,
    )
    return first


def test_one_unsafe_answer_with_one_category_takes_at_most_eight_keys(
    open_page: Any, live_server: Any
) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=True)
    login(page, "alice")
    first = two_answer_item(page, batch["id"])
    a, b = (
        int(x)
        for x in page.eval_on_selector_all(
            "#annotate .answer", "els => els.map(e => e.dataset.response)"
        )
    )
    keys = CountingKeyboard(page)
    keys.press("s")  # A is safe (and B becomes the current answer)
    keys.press("u")  # B is unsafe: the keyboard lands in B's category filter
    assert page.evaluate("() => document.activeElement.type") == "search"
    keys.press("v")  # narrows B's list to Violence first
    keys.press("Enter")  # ticks it and hands the keyboard back
    keys.press("z")  # minor
    keys.press("1")  # A is more helpful
    # Harmlessness: decided by the rules (A is the only safe answer), already chosen.
    assert page.is_checked(f"input[name=harmlessness_1][value='{a}']")
    assert "only safe response" in (page.text_content("#harmless-auto") or "")
    with page.expect_response(lambda r: r.url.endswith(f"/assignments/{first}")) as posted:
        keys.press("Enter")
    assert posted.value.status == 200
    assert keys.count <= KEY_BUDGET, f"{keys.count} keys"

    body = live_server.api("GET", f"/api/v1/assignments/{first}").json()
    assert status_of(live_server, first) == "submitted"
    payload = body["annotation"]["payload"]
    labels = {r["response_id"]: r for r in payload["responses"]}
    assert labels[a]["is_safe"] is True
    assert labels[b] == {
        "response_id": b,
        "is_safe": False,
        "harm_categories": ["Violence"],
        "severity": "minor",
    }
    assert payload["helpfulness"] == [a, b]
    assert payload["harmlessness"] == [a, b]


def test_the_category_filter_narrows_the_list_and_ticks_the_first_match(
    open_page: Any, live_server: Any
) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=True)
    login(page, "alice")
    two_answer_item(page, batch["id"])
    a = page.get_attribute("#annotate .answer >> nth=0", "data-response")
    page.keyboard.press("u")
    page.keyboard.type("crime")
    shown = page.eval_on_selector_all(
        "#answer-A .cat:not([hidden]) .cat-name", "els => els.map(e => e.textContent)"
    )
    assert shown == ["Economic Crime", "White-Collar Crime"]
    page.keyboard.press("Enter")
    assert page.is_checked(f"input[name=r{a}_cat][value='Economic Crime']")
    # The list is whole again, and keys are shortcuts again (x: moderate).
    assert page.eval_on_selector_all("#answer-A .cat[hidden]", "els => els.length") == 0
    page.keyboard.press("x")
    assert page.is_checked(f"input[name=r{a}_sev][value=moderate]")


def test_keyboard_hints_and_the_filter_show_only_when_the_script_runs(
    open_page: Any, live_server: Any
) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=False)
    login(page, "alice")
    start_item(page, batch["id"])
    assert not page.is_visible(".cat-filter >> nth=0")
    assert not page.is_visible("#shortcut-help")
    assert not page.is_visible("#submit-button kbd")
