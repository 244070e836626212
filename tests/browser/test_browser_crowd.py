"""Invitation sign-up and crowd entry in a real browser (JavaScript off: plain forms), and
the two races on the live server: the last use of an invitation, and twenty simultaneous
first visits of one participant id."""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.auth.models import User
from app.batches.models import BatchMember
from app.crowd.models import Participant
from app.invites.models import Invite
from app.items.models import Item
from tests.browser.test_browser_annotate import rank, response_ids
from tests.support.authkit import csrf_from
from tests.support.browserkit import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.live]


def _batch(live_server: Any, n_items: int = 1) -> int:
    with live_server.session() as s:
        ids = list(
            s.scalars(
                select(Item.id)
                .where(Item.project_id == live_server.demo_project_id)
                .order_by(Item.id)
                .limit(n_items)
            )
        )
    body = {
        "project_id": live_server.demo_project_id,
        "name": f"crowd-{uuid.uuid4().hex[:8]}",
        "overlap": 1,
        "item_ids": ids,
    }
    response = live_server.api("POST", "/api/v1/batches", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _invite(live_server: Any, batch_id: int, **body: Any) -> dict[str, Any]:
    response = live_server.api("POST", f"/api/v1/batches/{batch_id}/invites", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_invite_sign_up_without_javascript(open_page: Any, live_server: Any) -> None:
    batch_id = _batch(live_server)
    invite = _invite(live_server, batch_id)
    name = "inv-" + uuid.uuid4().hex[:6]
    page = open_page(js=False, allow_status=(410, 422))
    page.goto(invite["url"])
    screenshot(page, "invite-sign-up", live_server.backend)
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", "my-password-1")
    page.fill("input[name=password_confirm]", "my-password-2")
    with page.expect_navigation() as nav:
        page.click("button[type=submit]")
    assert nav.value.status == 422 and "the two passwords differ" in page.content()
    page.fill("input[name=password]", "my-password-1")
    page.fill("input[name=password_confirm]", "my-password-1")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == live_server.url + "/"
    assert f"{name} (annotator)" in page.inner_text("header")
    with live_server.session() as s:
        user = s.scalars(select(User).where(User.username == name)).one()
        assert s.get(BatchMember, (batch_id, user.id)) is not None
    # The link allowed one sign-up: a second person sees a clear page, and no form.
    other = open_page(js=False, allow_status=(410,))
    other.goto(invite["url"])
    assert "already been used as many times as it allows" in other.inner_text("#invite-gone")
    assert other.locator("input[name=password]").count() == 0
    listed = live_server.api("GET", f"/api/v1/batches/{batch_id}/invites").json()
    assert [(i["uses"], i["state"]) for i in listed] == [(1, "used up")]


@pytest.mark.parametrize("js", [False, True], ids=["no-js", "js"])
def test_crowd_entry_through_consent_to_the_completion_code(
    open_page: Any, live_server: Any, js: bool
) -> None:
    batch_id = _batch(live_server)
    entry = {
        "param": "PROLIFIC_PID",
        "completion_code": "CRWD-" + uuid.uuid4().hex[:6].upper(),
        "redirect_url": "https://app.prolific.com/submissions/complete?cc=X",
        "consent": "## Consent\n\nYour answers are stored **without your name**.",
    }
    patched = live_server.api("PATCH", f"/api/v1/batches/{batch_id}", json={"entry": entry})
    assert patched.status_code == 200, patched.text
    entry_url = patched.json()["entry_url"]
    pid = uuid.uuid4().hex[:24]

    page = open_page(js=js, allow_status=(422,))
    page.goto(f"{entry_url}?PROLIFIC_PID={pid}")
    assert page.url.endswith(entry_url + "/consent")
    assert page.inner_text("#consent-text strong") == "without your name"
    screenshot(page, f"crowd-consent-{'js' if js else 'no-js'}", live_server.backend)
    page.check("input[name=agree]")
    with page.expect_navigation():
        page.click("#consent-accept")
    assert page.url.endswith(entry_url + "/start")
    assert page.locator("#start-guidelines").count() == 1
    with page.expect_navigation():
        page.click("#start-work")
    assert "/assignments/" in page.url
    ids = response_ids(page)
    for rid in ids:
        page.check(f"input[name=r{rid}_safe][value=safe]")
    for dimension in ("helpfulness", "harmlessness", "single"):
        if page.locator(f"[name={dimension}_1]").count():
            rank(page, dimension, ids)
    with page.expect_navigation():
        page.click("#submit-button")
    assert f"/batches/{batch_id}/done" in page.url
    assert page.inner_text("#completion-code") == entry["completion_code"]
    assert page.get_attribute("#completion-link", "href") == entry["redirect_url"]
    screenshot(page, f"crowd-completion-{'js' if js else 'no-js'}", live_server.backend)

    # Coming back with the same id resumes the same account and shows the code again.
    again = open_page(js=js)
    again.goto(f"{entry_url}?PROLIFIC_PID={pid}")
    assert again.url.endswith(entry_url + "/start")
    with again.expect_navigation():
        again.click("#start-work")
    assert again.inner_text("#completion-code") == entry["completion_code"]
    with live_server.session() as s:
        count = s.scalar(
            select(func.count()).select_from(Participant).where(Participant.external_id == pid)
        )
    assert count == 1


def _all_at_once(n: int, work: Any) -> list[Any]:
    """Runs work(i) in n threads released together; returns their results in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # reported by the assertions on the results
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _same_id_race(live_server: Any, batch_id: int, entry_url: str) -> None:
    pid = "W" + uuid.uuid4().hex[:12].upper()
    clients = [httpx.Client(base_url=live_server.url, timeout=60) for _ in range(20)]
    try:
        results = _all_at_once(20, lambda i: clients[i].get(entry_url, params={"workerId": pid}))
    finally:
        for c in clients:
            c.close()
    statuses = [r.status_code if isinstance(r, httpx.Response) else repr(r) for r in results]
    assert statuses == [303] * 20, [*statuses, live_server.log_tail()]
    with live_server.session() as s:
        users = s.scalars(select(User.id).where(User.username == f"crowd-{pid}")).all()
        bound = s.scalars(select(Participant.user_id).where(Participant.external_id == pid)).all()
        member = s.get(BatchMember, (batch_id, users[0]))
    assert len(users) == 1 and bound == users and member is not None
    # Every visitor was logged in as that one account.
    assert {r.cookies.get("safepref_session") is not None for r in results} == {True}


def test_twenty_simultaneous_first_visits_of_one_id_make_one_account(live_server: Any) -> None:
    batch_id = _batch(live_server)
    body = {"entry": {"param": "workerId", "completion_code": "RACE"}}
    patched = live_server.api("PATCH", f"/api/v1/batches/{batch_id}", json=body)
    for _round in range(2):
        _same_id_race(live_server, batch_id, patched.json()["entry_url"])


def _last_use_race(live_server: Any, batch_id: int) -> None:
    invite = _invite(live_server, batch_id, max_uses=1)
    names = [f"racer-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    clients = [httpx.Client(base_url=live_server.url, timeout=60) for _ in range(2)]

    def sign_up(i: int) -> httpx.Response:
        data = {
            "csrf_token": tokens[i],
            "username": names[i],
            "password": "race-password-1",
            "password_confirm": "race-password-1",
        }
        return clients[i].post(invite["url"], data=data)

    try:
        tokens = [csrf_from(c.get(invite["url"]).text) for c in clients]
        results = _all_at_once(2, sign_up)
    finally:
        for c in clients:
            c.close()
    statuses = sorted(r.status_code if isinstance(r, httpx.Response) else 0 for r in results)
    assert statuses == [303, 410], [*statuses, live_server.log_tail()]
    loser = next(r for r in results if r.status_code == 410)
    assert re.search("already been used", loser.text)
    with live_server.session() as s:
        created = s.scalars(select(User.username).where(User.username.in_(names))).all()
        uses = s.scalar(select(Invite.uses).where(Invite.id == invite["id"]))
    assert len(created) == 1 and uses == 1


def test_two_people_racing_for_the_last_use_of_an_invite(live_server: Any) -> None:
    batch_id = _batch(live_server)
    for _round in range(3):
        _last_use_race(live_server, batch_id)
