"""Suggestions from two origins on the annotation page, in headless Chromium against the live
server, with and without JavaScript: each origin's content arrives only when asked for, and
the server records which origins each assignment was sent.

A project of its own (uploaded through the API, as an admin would), so the demo batch other
tests use keeps its single origin.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.browserkit import login
from tests.support.samples import jsonl, pku_pair

pytestmark = [pytest.mark.browser, pytest.mark.live]


def suggestion_lines(item_ids: list[int], safe: bool, analysis: str) -> bytes:
    rows = [
        {
            "item_id": item_id,
            "responses": [
                {
                    "position": 0,
                    "is_safe": safe,
                    "harm_categories": [] if safe else ["Violence"],
                    "severity": None if safe else "minor",
                },
                {"position": 1, "is_safe": True, "harm_categories": [], "severity": None},
            ],
            "helpfulness": [0, 1],
            "confidence": 0.9,
            "analysis": analysis,
        }
        for item_id in item_ids
    ]
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def batch_with_two_origins(live_server: Any) -> int:
    """A fresh project (suggestions shown), two items, a batch for alice, origins a and b."""
    name = f"sugg-{uuid.uuid4().hex[:8]}"
    r = live_server.api("POST", "/api/v1/projects", json={"name": name, "show_suggestions": True})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = live_server.api(
        "POST",
        f"/api/v1/projects/{pid}/imports",
        files={"file": ("d.jsonl", jsonl([pku_pair(1000 + i) for i in range(2)]), "text/plain")},
    )
    assert r.status_code == 201, r.text
    item_ids = r.json()["item_ids"]
    for origin, safe in (("model-a", False), ("model-b", True)):
        data = suggestion_lines(item_ids, safe, f"Analysis by **{origin}**.")
        r = live_server.api(
            "POST",
            f"/api/v1/projects/{pid}/suggestions",
            params={"origin": origin},
            files={"file": ("s.ndjson", data, "application/x-ndjson")},
        )
        assert r.status_code == 200, r.text
        assert r.json()["suggestions_created"] == 2
    r = live_server.api(
        "POST",
        "/api/v1/batches",
        json={"project_id": pid, "name": "b", "overlap": 1, "members": ["alice"]},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def viewed(live_server: Any, assignment_id: int) -> list[str]:
    from app.suggestions.viewed import origins_viewed

    with live_server.session() as s:
        return origins_viewed(s, [assignment_id]).get(assignment_id, [])


def open_item(page: Any, batch_id: int) -> int:
    page.goto(f"/batches/{batch_id}/mine")
    with page.expect_navigation():
        page.click(f"form[action='/batches/{batch_id}/next'] button")
    match = re.search(r"/assignments/(\d+)$", page.url)
    assert match, page.url
    return int(match.group(1))


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_choose_between_two_origins(open_page: Any, live_server: Any, js: bool) -> None:
    batch_id = batch_with_two_origins(live_server)
    page = open_page(js=js)
    login(page, "alice")
    aid = open_item(page, batch_id)
    choices = page.locator(".suggestion-show")
    expect(choices).to_have_count(2)
    assert page.query_selector("#suggestion-body") is None
    assert "Analysis by" not in page.content()
    assert viewed(live_server, aid) == []

    # A first answer, kept across the no-JS round trip.
    first_safe = page.locator("#answer-A input[value=safe]")
    first_safe.check()
    button = page.locator(".suggestion-show[value='model-b']")
    if js:
        with page.expect_response(lambda r: r.url.endswith(f"/assignments/{aid}/suggestion")):
            button.click()
    else:
        with page.expect_navigation() as nav:
            button.click()
        assert nav.value.status == 200
    body = page.locator("#suggestion-body")
    expect(body).to_be_visible()
    expect(page.locator("[data-origin='model-b']")).to_contain_text("Analysis by model-b.")
    expect(page.locator("[data-origin='model-b'] strong", has_text="model-b").first).to_be_visible()
    assert page.query_selector("[data-origin='model-a']") is None
    assert "Analysis by" in page.content() and "model-a." not in page.content()
    assert viewed(live_server, aid) == ["model-b"]
    expect(first_safe).to_be_checked()

    # The other origin: still offered, and shown beside the first once asked for.
    expect(choices).to_have_count(1)
    if js:
        with page.expect_response(lambda r: r.url.endswith(f"/assignments/{aid}/suggestion")):
            page.keyboard.press("Escape")  # focus back on the page, then the shortcut
            page.locator("#suggestion-button").click()
    else:
        with page.expect_navigation():
            page.locator("#suggestion-button").click()
    expect(page.locator("[data-origin='model-a']")).to_contain_text("Analysis by model-a.")
    expect(page.locator("[data-origin='model-b']")).to_be_visible()
    expect(choices).to_have_count(0)
    assert viewed(live_server, aid) == ["model-a", "model-b"]
    expect(first_safe).to_be_checked()
