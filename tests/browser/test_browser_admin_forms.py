"""The admin's adjudication form and gold table, the error pages and the annotation page's
prompt, in real Chromium against the live server on both backends (issue 13, points 5-7).
axe-core checks every page state these tests visit (the `open_page` fixture)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.auth.models import User
from app.auth.service import create_token
from app.exports.keys import pseudonym_key
from app.exports.service import pseudonym
from tests.browser.test_browser_never_lose import fresh_batch, own_batch, start_item
from tests.support.browserkit import login
from tests.support.queue_factory import valid_annotation
from tests.support.samples import jsonl, pku_pair

pytestmark = [pytest.mark.browser, pytest.mark.live]


@dataclass
class Disputed:
    batch_id: int
    items: list[int]  # in the order the disagreement browser lists them
    ids: dict[int, list[int]]  # item -> response ids by position (A, B)
    names: dict[str, str]  # username -> pseudonym


def disputed_batch(live_server: Any) -> Disputed:
    """Two items, each labelled by alice (A safe, B unsafe: Violence, moderate; A more
    helpful) and bob (both safe; B more helpful): B's safety and helpfulness are ties."""
    api = live_server.api
    name = "disputed-" + uuid.uuid4().hex[:6]
    pid = api("POST", "/api/v1/projects", json={"name": name, "guidelines": "Be careful."}).json()[
        "id"
    ]
    rows = [
        {k: v for k, v in pku_pair(i).items() if not k.endswith("_sha256")}
        | {"prompt": f"{name} prompt {i}"}
        for i in range(2)
    ]
    imported = api(
        "POST", f"/api/v1/projects/{pid}/imports", files={"file": ("x.jsonl", jsonl(rows))}
    )
    assert imported.status_code == 201, imported.text
    batch = api(
        "POST",
        "/api/v1/batches",
        json={"project_id": pid, "name": name, "overlap": 2, "members": ["alice", "bob"]},
    )
    assert batch.status_code == 201, batch.text
    batch_id = batch.json()["id"]
    with live_server.session() as s:
        people = {
            u.username: u
            for u in s.scalars(select(User).where(User.username.in_(["alice", "bob"])))
        }
        tokens = {n: create_token(s, u, "adjudication test")[1] for n, u in people.items()}
        secret = pseudonym_key(s)
        names = {n: pseudonym(secret, u.id) for n, u in people.items()}
    ids: dict[int, list[int]] = {}
    for who, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"}
        while (
            lease := api("POST", f"/api/v1/batches/{batch_id}/next", headers=headers)
        ).status_code == 200:
            body = lease.json()
            item_ids = sorted(r["id"] for r in body["item"]["responses"])
            ids[body["item"]["id"]] = item_ids
            answer = (
                valid_annotation(item_ids, unsafe=[item_ids[1]])
                if who == "alice"
                else valid_annotation(item_ids, flip=True)
            )
            put = api(
                "PUT",
                f"/api/v1/assignments/{body['assignment_id']}/annotation",
                json=answer,
                headers=headers,
            )
            assert put.status_code == 200, put.text
    assert len(ids) == 2
    return Disputed(batch_id, sorted(ids), ids, names)


def adjudication(live_server: Any, batch_id: int, item_id: int) -> dict[str, Any]:
    history = live_server.api(
        "GET", f"/api/v1/batches/{batch_id}/items/{item_id}/adjudication"
    ).json()
    assert history, "no adjudication recorded"
    return dict(history[-1]["labels"])


def heads(page: Any) -> list[str]:
    return [
        t.strip()
        for t in page.eval_on_selector_all(
            "table.side-by-side th[data-annotator] .pseudonym", "els => els.map(e => e.textContent)"
        )
    ]


def test_adjudication_with_the_annotation_page_keys_and_checks(
    open_page: Any, live_server: Any
) -> None:
    d = disputed_batch(live_server)
    first, second = d.items
    a, b = d.ids[first]
    page = open_page(js=True, allow_status=(422,))
    login(page, "admin")
    page.goto(f"/batches/{d.batch_id}/disagreements/{first}")
    # The same two people, under the exports' pseudonyms, on each item.
    assert sorted(heads(page)) == sorted(d.names.values())
    assert "Annotator 1" not in page.inner_text("body")

    # The form starts from the consensus: A safe (both said so); B and helpfulness are ties.
    assert page.is_checked(f"input[name=r{a}_safe][value=safe]")
    assert not page.is_checked(f"input[name=r{b}_safe][value=unsafe]")
    # Sent past the script's checks, the server refuses it with every problem listed (a page
    # state axe checks too), keeping what was entered.
    with page.expect_navigation():
        page.evaluate("() => document.getElementById('annotate-form').submit()")
    assert page.locator("#error-summary li").all_inner_texts() == [
        "Response B: Mark response B safe or unsafe.",
        "More helpful: Choose A or B.",
    ]
    assert page.is_checked(f"input[name=r{a}_safe][value=safe]")
    # Enter checks like the annotation page does, every problem next to its field; no save.
    page.keyboard.press("Enter")
    assert page.text_content(f"#err-r{b}_safe") == "Mark response B safe or unsafe."
    assert page.text_content("#err-helpfulness") == "Choose A or B."
    assert re.search(rf"/disagreements/{first}$", page.url)

    # The annotation page's keys: u (B unsafe, into its category filter), v Enter (Violence),
    # x (moderate), 2 (B more helpful); harmlessness is decided by the rules.
    page.keyboard.press("u")
    assert page.evaluate("() => document.activeElement.type") == "search"
    page.keyboard.press("v")
    page.keyboard.press("Enter")
    page.keyboard.press("x")
    page.keyboard.press("2")
    assert page.is_checked(f"input[name=harmlessness_1][value='{a}']")
    assert "only safe response" in (page.text_content("#harmless-auto") or "")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    # The save is confirmed on the next item.
    assert page.url.endswith(f"/disagreements/{second}?saved={first}")
    assert f"Saved the final labels of item #{first}" in page.inner_text("#saved-notice")
    assert sorted(heads(page)) == sorted(d.names.values())
    labels = adjudication(live_server, d.batch_id, first)
    by_id = {r["response_id"]: r for r in labels["responses"]}
    assert by_id[a]["is_safe"] is True
    assert by_id[b] == {
        "response_id": b,
        "is_safe": False,
        "harm_categories": ["Violence"],
        "severity": "moderate",
    }
    assert labels["helpfulness"] == [b, a] and labels["harmlessness"] == [a, b]

    # Starting from alice's labels on the second item, then saving them as they are.
    with page.expect_navigation():
        page.click(f"text=Use {d.names['alice']}'s labels")
    a2, b2 = d.ids[second]
    assert page.is_checked(f"input[name=r{b2}_safe][value=unsafe]")
    assert page.is_checked(f"input[name=r{b2}_sev][value=moderate]")
    assert f"starts from {d.names['alice']}'s labels" in page.inner_text(".starting-point")
    with page.expect_navigation():
        page.click("#submit-button")
    assert "No item left to adjudicate" in page.inner_text("[role=status]")
    labels = adjudication(live_server, d.batch_id, second)
    assert labels["helpfulness"] == [a2, b2]
    assert {r["response_id"]: r["is_safe"] for r in labels["responses"]} == {a2: True, b2: False}


def test_adjudication_without_javascript(open_page: Any, live_server: Any) -> None:
    d = disputed_batch(live_server)
    first, second = d.items
    a, b = d.ids[first]
    page = open_page(js=False)
    login(page, "admin")
    page.goto(f"/batches/{d.batch_id}/disagreements/{first}")
    # Keyboard hints belong to the script: hidden without it.
    assert not page.is_visible(".starting-point .help-link")
    with page.expect_navigation():
        page.click(f"text=Use {d.names['bob']}'s labels")
    assert page.is_checked(f"input[name=r{b}_safe][value=safe]")
    assert page.is_checked(f"input[name=helpfulness_1][value='{b}']")
    page.fill("textarea[name=note]", "bob was right")
    with page.expect_navigation():
        page.click("#submit-button")
    assert page.url.endswith(f"/disagreements/{second}?saved={first}")
    assert f"Saved the final labels of item #{first}" in page.inner_text("#saved-notice")
    labels = adjudication(live_server, d.batch_id, first)
    assert labels["helpfulness"] == [b, a]
    assert all(r["is_safe"] for r in labels["responses"])


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_gold_items_from_the_filtered_table(open_page: Any, live_server: Any, js: bool) -> None:
    batch = own_batch(live_server)
    page = open_page(js=js, allow_status=(422,))
    login(page, "admin")
    url = f"/batches/{batch['id']}/gold"
    page.goto(url)
    page.fill("input[name=gold_percent]", "0")
    with page.expect_navigation():
        page.click("form[action$='/gold/rate'] button")
    assert "0%" in page.inner_text("#gold-share-warning")

    total = page.locator("table.batch-items tbody tr").count()
    pick = page.locator("table.batch-items input[name=item_id]:not([disabled])").first
    item_id = int(pick.get_attribute("value") or "0")
    prompt = page.inner_text(f"tr[data-pick='{item_id}'] .prompt-cell")
    word = max(re.findall(r"[A-Za-z]{4,}", prompt), key=len)
    page.fill("#item-filter", word.upper())
    with page.expect_navigation():
        page.click("form[role=search] button")
    assert f"q={word.upper()}" in page.url
    shown = page.locator("table.batch-items .prompt-cell").all_inner_texts()
    assert shown and all(word.lower() in s.lower() for s in shown)
    assert len(shown) <= total
    # Nothing ticked: refused in plain words, on the same filtered table.
    with page.expect_navigation():
        page.click("#mark-gold")
    assert "Tick at least one item" in page.inner_text("p.error")
    page.check(f"#pick-{item_id}")
    with page.expect_navigation():
        page.click("#mark-gold")
    assert "1 item(s) marked gold." in page.inner_text("[role=status]")
    assert page.locator(f"table.gold-items tr[data-item='{item_id}']").count() == 1
    assert page.inner_text(f"tr[data-pick='{item_id}'] td >> nth=0").strip() == "gold"

    page.fill("input[name=gold_percent]", "5")
    with page.expect_navigation():
        page.click("form[action$='/gold/rate'] button")
    assert page.locator("#gold-share-warning").count() == 0


PLAIN = {
    403: "You are not allowed to do this",
    404: "Page not found",
    409: "This changed in the meantime",
    422: "Something in the request is not right",
}


def assert_error_page(page: Any, status: int) -> None:
    card = page.locator(".error-card")
    assert card.locator("h1").inner_text().strip() == str(status)
    assert card.locator(".error-title").inner_text().strip() == PLAIN[status]
    assert card.locator("a[href='/']").count() == 1


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_error_pages_read_plainly_and_pass_axe(open_page: Any, live_server: Any, js: bool) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=js, allow_status=(403, 404, 409, 422))
    login(page, "alice")
    for path, status in (("/no/such/page", 404), ("/users", 403), ("/assignments/abc", 422)):
        answer = page.goto(path)
        assert answer is not None and answer.status == status
        assert answer.headers["content-type"].startswith("text/html")
        assert_error_page(page, status)

    # A skip after the batch closed meanwhile: 409 (with the script, swapped into the item).
    assignment = start_item(page, batch["id"])
    closed = live_server.api("POST", f"/api/v1/batches/{batch['id']}/close")
    assert closed.status_code == 200, closed.text
    with page.expect_response(lambda r: r.url.endswith(f"/assignments/{assignment}/skip")) as r:
        page.click("#skip-button")
    assert r.value.status == 409
    page.wait_for_selector(".error-card")
    assert_error_page(page, 409)


def test_the_prompt_reads_apart_from_the_guidelines(open_page: Any, live_server: Any) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=True)
    login(page, "alice")
    start_item(page, batch["id"])
    style = """sel => { const s = getComputedStyle(document.querySelector(sel));
      return {left: parseFloat(s.borderLeftWidth), style: s.borderTopStyle,
              bg: s.backgroundColor, size: parseFloat(s.fontSize)}; }"""
    prompt = page.evaluate(style, ".prompt-box")
    guide = page.evaluate(style, "#guidelines")
    prompt_text = page.evaluate(style, "#prompt-text")
    guide_text = page.evaluate(style, "#guidelines-body")
    # Not by colour alone: a heavy bar, a different border, a larger type, own headings.
    assert prompt["left"] >= 4 > guide["left"]
    assert guide["style"] == "dashed" and prompt["style"] != "dashed"
    assert prompt["bg"] != guide["bg"]
    assert prompt_text["size"] > guide_text["size"]
    assert page.inner_text("#prompt-h").strip().lower() == "prompt"
    assert "how to label" in page.inner_text("#guidelines summary")
    # Different regions: the prompt is in the form, the guidelines in the side panel.
    assert page.locator("form#annotate-form .prompt-box").count() == 1
    assert page.locator("aside #guidelines").count() == 1
