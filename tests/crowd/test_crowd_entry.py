"""Crowd entry: the batch's entry settings (PATCH), the entry link's visit, consent, the
start page and the completion code; bad ids and bad settings refused, writing nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.batches.models import BatchMember
from app.batches.service import create_batch
from app.config import get_settings
from app.crowd.models import BatchEntry, BatchParticipant, Participant
from tests.support.authkit import csrf_from
from tests.support.queue_factory import seed_project

ENTRY = {
    "param": "PROLIFIC_PID",
    "completion_code": "C0DE-42",
    "redirect_url": "https://app.prolific.com/submissions/complete?cc=C0DE-42",
    "consent": "# Consent\n\nWe store **your labels**. <script>alert(1)</script>",
}


def _batch(db: Session, n_items: int = 1, guidelines: str = "Judge *carefully*.") -> int:
    project, ids = seed_project(db, n_items)
    project.guidelines = guidelines
    batch = create_batch(db, project, f"b-{uuid.uuid4().hex[:6]}", overlap=1, item_ids=ids)
    db.commit()
    return batch.id


def _enable(client: TestClient, headers: dict[str, str], batch_id: int, **changes: Any) -> Any:
    response = client.patch(
        f"/api/v1/batches/{batch_id}", json={"entry": {**ENTRY, **changes}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def _count(db: Session, model: Any) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def _pid() -> str:
    return uuid.uuid4().hex[:24]


def test_patch_enables_changes_and_disables_the_entry_link(
    client: TestClient, admin_headers: dict[str, str], db: Session, make_user: Callable[..., Any]
) -> None:
    batch_id = _batch(db)
    first = _enable(client, admin_headers, batch_id)
    assert first["entry_url"].startswith("/enter/")
    assert first["entry"] == ENTRY | {"consent": ENTRY["consent"]}
    changed = _enable(client, admin_headers, batch_id, completion_code="OTHER", consent=None)
    assert changed["entry_url"] == first["entry_url"]  # the link handed out stays valid
    assert changed["entry"]["completion_code"] == "OTHER" and changed["entry"]["consent"] is None
    # Other fields leave it alone.
    renamed = client.patch(
        f"/api/v1/batches/{batch_id}", json={"name": "renamed"}, headers=admin_headers
    )
    assert renamed.json()["entry_url"] == first["entry_url"]
    # An annotator (even a member) never sees the settings, which hold the completion code.
    user, token = make_user()
    client.post(
        f"/api/v1/batches/{batch_id}/members",
        json={"username": user.username},
        headers=admin_headers,
    )
    seen = client.get(f"/api/v1/batches/{batch_id}", headers={"Authorization": f"Bearer {token}"})
    assert seen.json()["entry"] is None and seen.json()["entry_url"] is None
    listed = client.get("/api/v1/batches", headers={"Authorization": f"Bearer {token}"}).json()
    assert all(b["entry"] is None for b in listed) and "OTHER" not in str(listed)

    off = client.patch(f"/api/v1/batches/{batch_id}", json={"entry": None}, headers=admin_headers)
    assert off.json()["entry"] is None and off.json()["entry_url"] is None
    assert client.get(first["entry_url"], params={"PROLIFIC_PID": _pid()}).status_code == 404
    assert _count(db, Participant) == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"param": "has space"}, "entry.param"),
        ({"param": ""}, "entry.param"),
        ({"completion_code": ""}, "entry.completion_code"),
        ({"completion_code": "two words"}, "entry.completion_code"),
        ({"redirect_url": "javascript:alert(1)"}, "entry.redirect_url"),
        ({"redirect_url": "/relative"}, "entry.redirect_url"),
        ({"unknown": 1}, "unknown"),
    ],
    ids=[
        "param-space",
        "param-empty",
        "code-empty",
        "code-space",
        "js-url",
        "relative-url",
        "extra",
    ],
)
def test_bad_entry_settings_are_refused_and_nothing_changes(
    client: TestClient,
    admin_headers: dict[str, str],
    db: Session,
    changes: dict[str, Any],
    message: str,
) -> None:
    batch_id = _batch(db)
    before = _enable(client, admin_headers, batch_id)
    response = client.patch(
        f"/api/v1/batches/{batch_id}",
        json={"name": "should-not-stick", "entry": {**ENTRY, **changes}},
        headers=admin_headers,
    )
    assert response.status_code == 422 and message in response.text
    after = client.get(f"/api/v1/batches/{batch_id}", headers=admin_headers).json()
    assert after["entry"] == before["entry"] and after["name"] == before["name"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "lacks your participant id"),
        ({"PROLIFIC_PID": ""}, "lacks your participant id"),
        ({"PROLIFIC_PID": "x" * 49}, "is not valid"),
        ({"PROLIFIC_PID": "abc;drop"}, "is not valid"),
        ({"PROLIFIC_PID": "<script>"}, "is not valid"),
        ({"OTHER_PARAM": "abc"}, "lacks your participant id"),
    ],
    ids=["missing", "empty", "too-long", "semicolon", "markup", "wrong-param"],
)
def test_bad_participant_ids_are_refused_and_nothing_is_written(
    client: TestClient,
    admin_headers: dict[str, str],
    db: Session,
    query: dict[str, str],
    message: str,
) -> None:
    batch_id = _batch(db)
    url = _enable(client, admin_headers, batch_id)["entry_url"]
    users = _count(db, User)
    response = client.get(url, params=query, follow_redirects=False)
    assert response.status_code == 422 and message in response.text
    assert "safepref_session" not in response.cookies
    assert _count(db, User) == users and _count(db, Participant) == 0


def _csrf(client: TestClient, url: str) -> str:
    return csrf_from(client.get(url).text)


def test_a_participant_goes_through_consent_and_guidelines_to_the_completion_code(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    batch_id = _batch(db)
    url = _enable(client, admin_headers, batch_id)["entry_url"]
    pid = _pid()
    first = client.get(url, params={"PROLIFIC_PID": pid}, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == url + "/consent"
    assert first.headers["referrer-policy"] == "no-referrer"
    user = db.scalars(select(User).join(Participant).where(Participant.external_id == pid)).one()
    assert user.role == "annotator"
    # Not a member until consent is given: the queue is closed to them.
    consent = client.get(url + "/consent")
    token = csrf_from(consent.text)
    assert db.get(BatchMember, (batch_id, user.id)) is None
    early = client.post(f"/api/v1/batches/{batch_id}/next", headers={"X-CSRF-Token": token})
    assert early.status_code == 404

    assert "<strong>your labels</strong>" in consent.text
    assert "<script>alert(1)</script>" not in consent.text  # Markdown with HTML off
    refused = client.post(url + "/consent", data={"csrf_token": token}, follow_redirects=False)
    assert refused.status_code == 422 and "Tick the box" in refused.text
    assert db.get(BatchMember, (batch_id, user.id)) is None
    agreed = client.post(
        url + "/consent", data={"csrf_token": token, "agree": "yes"}, follow_redirects=False
    )
    assert agreed.status_code == 303 and agreed.headers["location"] == url + "/start"
    assert db.get(BatchMember, (batch_id, user.id)) is not None

    start = client.get(url + "/start")
    assert "Judge <em>carefully</em>." in start.text
    assert f'action="/batches/{batch_id}/next"' in start.text
    work = client.post(
        f"/batches/{batch_id}/next", data={"csrf_token": token}, follow_redirects=False
    )
    assignment_url = work.headers["location"]
    assert assignment_url.startswith("/assignments/")
    skipped = client.post(
        assignment_url + "/skip", data={"csrf_token": token}, follow_redirects=False
    )
    done_url = skipped.headers["location"]
    assert done_url.startswith(f"/batches/{batch_id}/done")
    done = client.get(done_url)
    assert 'id="completion-code">C0DE-42<' in done.text
    assert 'href="https://app.prolific.com/submissions/complete?cc=C0DE-42"' in done.text

    # The same id, again: the same account, straight to the guidelines.
    client.cookies.clear()
    again = client.get(url, params={"PROLIFIC_PID": pid}, follow_redirects=False)
    assert again.headers["location"] == url + "/start"
    assert (
        db.scalar(
            select(func.count()).select_from(Participant).where(Participant.external_id == pid)
        )
        == 1
    )
    assert client.get(done_url).text.count("C0DE-42") >= 1
    # After the batch closes, a returning participant is sent to the completion code.
    client.post(f"/api/v1/batches/{batch_id}/close", headers=admin_headers)
    closed = client.get(url + "/start", follow_redirects=False)
    assert closed.headers["location"] == f"/batches/{batch_id}/done"


def test_no_consent_text_means_membership_at_once_and_no_code_for_others(
    client: TestClient, admin_headers: dict[str, str], db: Session, make_user: Callable[..., Any]
) -> None:
    batch_id = _batch(db)
    url = _enable(client, admin_headers, batch_id, consent=None)["entry_url"]
    visit = client.get(url, params={"PROLIFIC_PID": _pid()}, follow_redirects=False)
    assert visit.headers["location"] == url + "/start"
    # An ordinary member of the same batch sees no completion code on the same page.
    member, token = make_user()
    client.post(
        f"/api/v1/batches/{batch_id}/members",
        json={"username": member.username},
        headers=admin_headers,
    )
    page = client.get(f"/batches/{batch_id}/done", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200 and "C0DE-42" not in page.text


def test_a_closed_batch_takes_no_new_participants(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    batch_id = _batch(db)
    url = _enable(client, admin_headers, batch_id)["entry_url"]
    client.post(f"/api/v1/batches/{batch_id}/close", headers=admin_headers)
    users = _count(db, User)
    response = client.get(url, params={"PROLIFIC_PID": _pid()}, follow_redirects=False)
    assert response.status_code == 409 and "This study is closed" in response.text
    assert _count(db, User) == users


@pytest.fixture
def two_accounts_per_address(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SAFEPREF_ENTRY_MAX_ACCOUNTS_PER_ADDRESS", "2")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("SAFEPREF_ENTRY_MAX_ACCOUNTS_PER_ADDRESS")
    get_settings.cache_clear()


def test_account_creation_is_throttled_per_address_but_returning_is_not(
    client: TestClient, admin_headers: dict[str, str], db: Session, two_accounts_per_address: None
) -> None:
    batch_id = _batch(db)
    url = _enable(client, admin_headers, batch_id)["entry_url"]
    ids = [_pid() for _ in range(3)]
    for pid in ids[:2]:
        assert (
            client.get(url, params={"PROLIFIC_PID": pid}, follow_redirects=False).status_code == 303
        )
    third = client.get(url, params={"PROLIFIC_PID": ids[2]}, follow_redirects=False)
    assert third.status_code == 429 and "Too many new participants" in third.text
    assert _count(db, Participant) == 2
    back = client.get(url, params={"PROLIFIC_PID": ids[0]}, follow_redirects=False)
    assert back.status_code == 303


def test_the_admin_page_turns_the_entry_on_and_refuses_bad_settings(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    batch_id = _batch(db)
    form = {"param": "workerId", "completion_code": "DONE", "redirect_url": "", "consent": ""}
    bad = client.post(
        f"/batches/{batch_id}/entry", data={**form, "param": "bad param"}, headers=admin_headers
    )
    assert bad.status_code == 422 and "entry.param" in bad.text
    assert db.get(BatchEntry, batch_id) is None
    saved = client.post(
        f"/batches/{batch_id}/entry", data=form, headers=admin_headers, follow_redirects=False
    )
    assert saved.status_code == 303
    page = client.get(f"/batches/{batch_id}/entry", headers=admin_headers)
    entry = db.get(BatchEntry, batch_id)
    assert entry is not None and f"/enter/{entry.slug}?workerId=" in page.text
    client.post(f"/batches/{batch_id}/entry/disable", headers=admin_headers)
    db.expire_all()
    assert db.get(BatchEntry, batch_id) is None
    assert _count(db, BatchParticipant) == 0
