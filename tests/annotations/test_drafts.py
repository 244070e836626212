"""Answers posted without a session are kept only when they can be bound safely (issue 13):
a same-origin post from the browser that will log in again. The browser tests cover the
whole way back through the login page."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotations.models import Draft
from app.core.cookies import DRAFT_COOKIE
from tests.annotations.test_annotation_pages import good_form, lease, seed, shown_ids

ORIGIN = "http://testserver"


def post_without_session(client: TestClient, aid: int, form: dict[str, Any], **headers: str) -> Any:
    client.cookies.clear()
    return client.post(f"/assignments/{aid}", data=form, headers=headers, follow_redirects=False)


def drafts(db: Session, aid: int) -> int:
    return int(db.scalar(select(func.count()).where(Draft.assignment_id == aid)) or 0)


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site", "origin": "https://evil.example"},
        {"sec-fetch-site": "same-site", "origin": "https://sub.testserver"},
        {"origin": "https://evil.example"},
        {},
    ],
    ids=["cross-site", "same-site", "foreign-origin", "no-origin"],
)
def test_a_post_from_elsewhere_keeps_nothing(
    client: TestClient, db: Session, make_user: Any, headers: dict[str, str]
) -> None:
    world = seed(db, make_user)
    aid = lease(client, world)
    ids = shown_ids(client.get(f"/assignments/{aid}", headers=world.headers).text)
    r = post_without_session(client, aid, good_form(ids), **headers)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert DRAFT_COOKIE not in r.cookies
    assert drafts(db, aid) == 0


def test_a_same_origin_post_is_kept_and_shown_only_to_the_owner_with_the_cookie(
    client: TestClient, db: Session, make_user: Any
) -> None:
    world = seed(db, make_user)
    aid = lease(client, world)
    ids = shown_ids(client.get(f"/assignments/{aid}", headers=world.headers).text)
    r = post_without_session(client, aid, good_form(ids), **{"sec-fetch-site": "same-origin"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next=/assignments/{aid}&expired=1"
    token = r.cookies.get(DRAFT_COOKIE)
    assert token and drafts(db, aid) == 1

    # The owner with the cookie: the answers are back. Without it: the blank item.
    client.cookies.set(DRAFT_COOKIE, token)
    page = client.get(f"/assignments/{aid}", headers=world.headers)
    assert "filled in again" in page.text
    assert f'name="r{ids[0]}_sev" value="severe" checked' in page.text
    client.cookies.clear()
    page = client.get(f"/assignments/{aid}", headers=world.headers)
    assert "filled in again" not in page.text
    # Another annotator with the same cookie cannot open the item at all.
    client.cookies.set(DRAFT_COOKIE, token)
    other = client.get(f"/assignments/{aid}", headers=world.other_headers)
    assert other.status_code == 404 and 'severe" checked' not in other.text
