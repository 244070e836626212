"""A tour of every page as admin and as annotator, with and without JavaScript, so that the
axe-core check of the `open_page` fixture (tests/support/axe.py) sees each of them: any
violation fails the test (issue 13)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_browser_never_lose import fresh_batch, start_item
from tests.support.browserkit import login

pytestmark = [pytest.mark.browser, pytest.mark.live]


def first_item_id(live_server: Any) -> int:
    from sqlalchemy import select

    from app.batches.models import BatchItem

    with live_server.session() as s:
        found = s.scalar(
            select(BatchItem.item_id).where(BatchItem.batch_id == live_server.demo_batch_id)
        )
    assert found is not None
    return int(found)


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_every_admin_page_passes_axe(open_page: Any, live_server: Any, js: bool) -> None:
    page = open_page(js=js)
    login(page, "admin")
    b, p = live_server.demo_batch_id, live_server.demo_project_id
    item = first_item_id(live_server)
    for path in (
        "/",
        "/projects",
        "/projects/new",
        f"/projects/{p}",
        f"/projects/{p}/batches/new",
        "/batches",
        f"/batches/{b}",
        f"/batches/{b}/close",
        f"/batches/{b}/dashboard",
        f"/batches/{b}/disagreements",
        f"/batches/{b}/disagreements/{item}",
        f"/batches/{b}/gold",
        f"/batches/{b}/members/alice/exclude",
        f"/batches/{b}/work-report",
        "/overview",
        "/users",
        "/users/alice",
        "/account/password",
    ):
        response = page.goto(path)
        assert response is not None and response.status == 200, path


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_every_annotator_page_passes_axe(open_page: Any, live_server: Any, js: bool) -> None:
    batch = fresh_batch(live_server)
    page = open_page(js=js, allow_status=(422,))
    page.goto("/login")
    login(page, "alice")
    start_item(page, batch["id"])
    # A refused submit with the script: its checks next to the fields. (Without it, the
    # browser's own required-field check stops the form; the server's summary is covered
    # in-process.)
    if js:
        page.click("#submit-button")
        page.wait_for_selector(".field-error:not(:empty)")
    mine = f"/batches/{batch['id']}/mine"
    for path in ("/", mine, f"/batches/{batch['id']}/done", "/account/password"):
        page.goto(path)
