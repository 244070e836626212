"""Hostile text in every place the annotation page shows it: displayed literally, never run.

Prompts, responses (one of 200 KB), guidelines, a project name and usernames carry script
tags, event handlers, javascript:/data: URLs, SVG with script, unbalanced tags, a
right-to-left override, emoji and combining characters. The page must show each string as
text (textContent equals the input), execute nothing (no dialog, no page error) and trigger
no Content-Security-Policy violation (the `open_page` guard fails the test on any of them).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.annotations.models import Annotation
from tests.support import hostile
from tests.support.browserkit import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.live]
PASSWORD = "hostile-pw-123"
# A custom taxonomy whose category names are hostile too (checkbox labels and values).
TAXONOMY = [hostile.SCRIPT_TAG, hostile.ATTR_BREAKOUT, hostile.RTL_OVERRIDE, "Violence"]
# Elements or attributes that would mean the text was parsed as markup.
INJECTED = (
    "#annotate script, #annotate iframe, #annotate svg, #annotate img, #annotate b, "
    "#annotate i, #annotate body, [onerror], [onload], [onclick], [onfocus], [onmouseover], "
    "a[href^='javascript:' i], a[href^='data:' i], a[href^='vbscript:' i]"
)


def seed_hostile(live_server: Any) -> dict[str, Any]:
    """A project, batch, items and an annotator named with hostile text (direct inserts)."""
    from app.auth.models import User
    from app.auth.security import hash_password
    from app.batches.service import add_member, create_batch
    from app.imports.formats import DraftItem, DraftResponse, response_sha256
    from app.items.models import Item, Response
    from app.projects.service import create_project

    tag = uuid.uuid4().hex[:6]
    texts = [hostile.big_answer(), "\n".join(hostile.SHORT.values()), hostile.RTL_OVERRIDE]
    with live_server.session() as s:
        user = User(
            username=hostile.USERNAMES[0][:56] + tag,
            role="annotator",
            password_hash=hash_password(PASSWORD),
        )
        s.add(user)
        project = create_project(
            s,
            f"{hostile.PROJECT_NAME} {tag}",
            TAXONOMY,
            hostile.GUIDELINES,
            ask_single=True,
            ask_rationale=True,
        )
        for count in (3, 2):
            prompt = hostile.PROMPT + f"\n{count} answers {tag}"
            draft = DraftItem(0, prompt, "x", [DraftResponse(t, "m") for t in texts[:count]])
            item = Item(
                project_id=project.id,
                prompt=prompt,
                prompt_source=hostile.SCRIPT_TAG,
                content_hash=draft.content_hash(),
            )
            s.add(item)
            s.flush()
            for pos, text in enumerate(texts[:count]):
                s.add(
                    Response(
                        item_id=item.id,
                        position=pos,
                        text=text,
                        source=hostile.EVENT_HANDLER,
                        sha256=response_sha256(prompt, text),
                    )
                )
        s.flush()
        batch = create_batch(s, project, f"batch {hostile.SVG_SCRIPT} {tag}", overlap=1)
        add_member(s, batch, user)
        return {
            "username": user.username,
            "project_name": project.name,
            "batch_id": batch.id,
            "texts": texts,
        }


def check_literal(page: Any, seeded: dict[str, Any]) -> None:
    assert page.text_content(".project-name") == seeded["project_name"]
    prompt = page.text_content("#prompt-text")
    assert prompt.startswith(hostile.PROMPT + "\n")
    shown = page.eval_on_selector_all(
        "#annotate .answer-text", "els => els.map(e => e.textContent)"
    )
    assert sorted(shown) == sorted(seeded["texts"][: len(shown)])
    assert seeded["username"] in page.text_content("header.topbar")
    first_answer = page.locator("#annotate .answer").first
    names = first_answer.locator(".cat-name").evaluate_all("els => els.map(e => e.textContent)")
    values = first_answer.locator(".cat input").evaluate_all("els => els.map(e => e.value)")
    assert names == values == TAXONOMY
    assert page.eval_on_selector_all(INJECTED, "els => els.map(e => e.outerHTML)") == []
    # Only our own two scripts exist on the page.
    sources = page.eval_on_selector_all("script", "els => els.map(e => e.src)")
    assert sorted(re.sub(r"^https?://[^/]+", "", s) for s in sources) == [
        "/static/annotate.js",
        "/static/vendor/htmx.min.js",
    ]
    guidelines = page.locator("#guidelines-body")
    assert hostile.SCRIPT_TAG in guidelines.text_content()
    assert "[js link](javascript:alert('md-js'))" in guidelines.text_content()
    hrefs = guidelines.locator("a").evaluate_all("els => els.map(e => e.href)")
    assert hrefs == ["http://example.com/ok"]


def test_hostile_text_is_shown_literally_and_runs_nothing(open_page: Any, live_server: Any) -> None:
    seeded = seed_hostile(live_server)
    page = open_page(js=True)
    login(page, seeded["username"], PASSWORD)
    page.goto("/")
    page.click(f"form[action='/batches/{seeded['batch_id']}/next'] button")
    page.wait_for_url(re.compile(r"/assignments/\d+$"))
    check_literal(page, seeded)

    # The 200 KB answer scrolls inside its column instead of stretching the page.
    sizes = page.eval_on_selector_all(
        ".answer-text",
        "els => els.map(e => [e.textContent.length, e.scrollHeight, e.clientHeight])",
    )
    length, scroll, visible = max(sizes)
    assert length >= 200 * 1024  # UTF-16 units: emoji count twice
    assert scroll > 10 * visible and visible < 768
    screenshot(page, "hostile", live_server.backend)

    # Answer with the keyboard: A unsafe with the hostile category, the others safe, every
    # ranking, a hostile rationale. The hostile strings reach the database unchanged and the
    # next item comes in by htmx, just as inert.
    n = page.locator("#annotate .answer").count()
    first_id = int(page.get_attribute("#answer-A", "data-response"))
    page.keyboard.press("u")
    page.keyboard.press("ArrowDown")  # from the category filter into the list
    page.keyboard.press("Space")
    page.keyboard.press("z")
    for _ in range(n - 1):
        page.keyboard.press("s")
    for index in range(1, n):
        page.keyboard.press(str(index))
        page.keyboard.press(f"Shift+{index + 1}")
        page.keyboard.press("t")
        page.keyboard.press(str(index))
    page.keyboard.press("n")
    page.keyboard.type(hostile.SCRIPT_TAG)
    first_url = page.url
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: url != first_url and "/assignments/" in url)
    with live_server.session() as s:
        assignment_id = int(first_url.rsplit("/", 1)[1])
        payload = s.scalars(
            select(Annotation.payload).where(Annotation.assignment_id == assignment_id)
        ).one()
    labels = {r["response_id"]: r for r in payload["responses"]}
    assert labels[first_id]["harm_categories"] == [hostile.SCRIPT_TAG]
    assert payload["rationale"] == hostile.SCRIPT_TAG
    check_literal(page, seeded)
    page.goto(f"/batches/{seeded['batch_id']}/mine")
    cells = page.eval_on_selector_all(".prompt-cell", "els => els.map(e => e.textContent)")
    assert cells and all(hostile.PROMPT.startswith(c.rstrip("…")) for c in cells)


def test_hostile_project_name_on_admin_pages(open_page: Any, live_server: Any) -> None:
    seeded = seed_hostile(live_server)
    page = open_page(js=True)
    login(page, "admin")
    page.goto("/projects")
    assert seeded["project_name"] in page.text_content("main")
    assert page.eval_on_selector_all("main svg, main script, [onload]", "els => els.length") == 0
