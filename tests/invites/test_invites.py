"""Invitation links: created, listed with use counts and revoked by admins (API and page);
the sign-up page behind one creates a batch member; spent links show a clear page."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.security import token_digest, verify_password
from app.batches.models import BatchMember
from app.batches.service import create_batch
from app.db import utcnow
from app.invites.models import Invite
from tests.support.authkit import csrf_from
from tests.support.queue_factory import seed_project


def _batch(db: Session) -> int:
    project, ids = seed_project(db, 2)
    batch = create_batch(db, project, f"b-{uuid.uuid4().hex[:6]}", overlap=2, item_ids=ids)
    db.commit()
    return batch.id


def _invite(client: TestClient, headers: dict[str, str], batch_id: int, **body: Any) -> Any:
    response = client.post(f"/api/v1/batches/{batch_id}/invites", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _sign_up(
    client: TestClient, url: str, username: str, password: str = "password-123", confirm: str = ""
) -> Any:
    form = client.get(url)
    assert form.status_code == 200, form.text
    data = {
        "csrf_token": csrf_from(form.text),
        "username": username,
        "password": password,
        "password_confirm": confirm or password,
    }
    return client.post(url, data=data, follow_redirects=False)


def _user_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(User)) or 0


def test_an_invite_signs_up_a_member_and_counts_its_use(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    batch_id = _batch(db)
    created = _invite(client, admin_headers, batch_id, max_uses=2, expires_in_seconds=3600)
    assert set(created) >= {"id", "url"} and created["url"].startswith("/join/")
    token = created["url"].removeprefix("/join/")
    stored = db.get(Invite, created["id"])
    assert stored is not None and stored.token_hash == token_digest(token)  # only the hash
    assert token not in stored.token_hash

    name = f"joiner-{uuid.uuid4().hex[:6]}"
    done = _sign_up(client, created["url"], name)
    assert done.status_code == 303 and done.headers["location"] == "/"
    # Logged in as the new annotator, who sees the batch.
    mine = client.get("/api/v1/batches")
    assert [b["id"] for b in mine.json()] == [batch_id]
    user = db.scalars(select(User).where(User.username == name)).one()
    assert user.role == "annotator" and verify_password(user.password_hash, "password-123")
    assert db.get(BatchMember, (batch_id, user.id)) is not None

    listed = client.get(f"/api/v1/batches/{batch_id}/invites", headers=admin_headers).json()
    assert [(i["id"], i["uses"], i["max_uses"], i["state"]) for i in listed] == [
        (created["id"], 1, 2, "active")
    ]
    assert "url" not in listed[0]


def test_a_refused_form_writes_nothing_and_keeps_the_use(
    client: TestClient, admin_headers: dict[str, str], db: Session, make_user: Callable[..., Any]
) -> None:
    batch_id = _batch(db)
    created = _invite(client, admin_headers, batch_id)
    taken, _ = make_user()
    before = _user_count(db)
    for username, password, confirm, message in (
        ("fine-name", "password-123", "password-124", "the two passwords differ"),
        ("bad name!", "password-123", "", "username: 1-64 characters"),
        ("fine-name", "short", "", "password: must be at least 8"),
        (taken.username, "password-123", "", "already exists"),
    ):
        response = _sign_up(client, created["url"], username, password, confirm)
        assert response.status_code in (409, 422), response.text
        assert message in response.text
        client.cookies.clear()
    assert _user_count(db) == before
    assert db.scalar(select(Invite.uses).where(Invite.id == created["id"])) == 0


def test_spent_links_show_a_clear_page_and_create_nothing(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    batch_id = _batch(db)
    used = _invite(client, admin_headers, batch_id)
    assert _sign_up(client, used["url"], f"first-{uuid.uuid4().hex[:6]}").status_code == 303
    client.cookies.clear()
    expired = _invite(client, admin_headers, batch_id, expires_in_seconds=60)
    db.execute(
        update(Invite)
        .where(Invite.id == expired["id"])
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.commit()
    revoked = _invite(client, admin_headers, batch_id, max_uses=5)
    gone = client.delete(
        f"/api/v1/batches/{batch_id}/invites/{revoked['id']}", headers=admin_headers
    )
    assert gone.status_code == 204
    before = _user_count(db)
    for invite, words in (
        (used, "already been used as many times as it allows"),
        (expired, "has expired"),
        (revoked, "was withdrawn"),
        ({"url": "/join/sp_not-a-real-token"}, "is not valid"),
    ):
        page = client.get(invite["url"])
        assert page.status_code == 410 and words in page.text
        assert 'name="password_confirm"' not in page.text
    # A form posted to a link that is spent meanwhile is refused the same way.
    live = _invite(client, admin_headers, batch_id)
    form = client.get(live["url"])
    client.delete(f"/api/v1/batches/{batch_id}/invites/{live['id']}", headers=admin_headers)
    data = {
        "csrf_token": csrf_from(form.text),
        "username": "late-joiner",
        "password": "password-123",
        "password_confirm": "password-123",
    }
    late = client.post(live["url"], data=data, follow_redirects=False)
    assert late.status_code == 410 and "was withdrawn" in late.text
    assert _user_count(db) == before
    states = {
        i["id"]: i["state"]
        for i in client.get(f"/api/v1/batches/{batch_id}/invites", headers=admin_headers).json()
    }
    assert states[used["id"]] == "used up" and states[expired["id"]] == "expired"
    assert states[revoked["id"]] == "revoked"


def test_bad_invite_settings_are_refused(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    batch_id = _batch(db)
    url = f"/api/v1/batches/{batch_id}/invites"
    for body in ({"max_uses": 0}, {"expires_in_seconds": 0}, {"max_uses": "many"}, {"x": 1}):
        assert client.post(url, json=body, headers=admin_headers).status_code == 422
    assert (
        client.post("/api/v1/batches/999999/invites", json={}, headers=admin_headers).status_code
        == 404
    )
    assert (
        db.scalar(select(func.count()).select_from(Invite).where(Invite.batch_id == batch_id)) == 0
    )


def test_annotators_never_see_invites(
    client: TestClient, admin_headers: dict[str, str], db: Session, make_user: Callable[..., Any]
) -> None:
    batch_id = _batch(db)
    created = _invite(client, admin_headers, batch_id)
    user, token = make_user()
    headers = {"Authorization": f"Bearer {token}"}
    client.post(
        f"/api/v1/batches/{batch_id}/members",
        json={"username": user.username},
        headers=admin_headers,
    )
    assert client.get(f"/api/v1/batches/{batch_id}/invites", headers=headers).status_code == 403
    assert (
        client.post(f"/api/v1/batches/{batch_id}/invites", json={}, headers=headers).status_code
        == 403
    )
    assert client.get(f"/batches/{batch_id}/invites", headers=headers).status_code == 403
    path = f"/api/v1/batches/{batch_id}/invites/{created['id']}"
    assert client.delete(path, headers=headers).status_code == 403


def test_the_admin_page_creates_shows_once_and_revokes(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    batch_id = _batch(db)
    page = client.post(
        f"/batches/{batch_id}/invites",
        data={"max_uses": "3", "expires": "7d"},
        headers=admin_headers,
    )
    assert page.status_code == 201 and page.headers["cache-control"] == "no-store"
    url = page.text.split('id="new-invite-url" readonly size="80" value="', 1)[1].split('"', 1)[0]
    assert "/join/sp_" in url
    listing = client.get(f"/batches/{batch_id}/invites", headers=admin_headers)
    assert url.rsplit("/", 1)[1] not in listing.text and "0 of 3" in listing.text
    invite = db.scalars(select(Invite).where(Invite.batch_id == batch_id)).one()
    assert invite.expires_at is not None
    bad = client.post(
        f"/batches/{batch_id}/invites", data={"max_uses": "zero"}, headers=admin_headers
    )
    assert bad.status_code == 422 and "max_uses" in bad.text
    revoked = client.post(
        f"/batches/{batch_id}/invites/{invite.id}/revoke",
        headers=admin_headers,
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    db.refresh(invite)
    assert invite.revoked_at is not None
