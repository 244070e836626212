"""Accounts and API tokens: creation, revocation, deactivation, password reset and change."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, User
from app.auth.security import verify_password
from app.config import ConfigurationError, get_settings
from app.core.cookies import SESSION_COOKIE
from tests.support.authkit import PASSWORD, csrf_from, logged_in, login

MakeUser = Callable[..., tuple[Any, str]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_admin_creates_accounts_with_checked_fields(
    client: TestClient, admin_headers: dict[str, str], make_user: MakeUser, db: Session
) -> None:
    body = {"username": "carol", "password": "long-enough-pw", "role": "annotator"}
    created = client.post("/api/v1/users", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["username"] == "carol" and out["role"] == "annotator" and out["is_active"]
    assert "password" not in out and "password_hash" not in out
    stored = db.scalar(select(User).where(User.username == "carol"))
    assert stored is not None and stored.password_hash.startswith("$argon2id$")
    assert verify_password(stored.password_hash, "long-enough-pw")

    assert client.post("/api/v1/users", json=body, headers=admin_headers).status_code == 409
    for bad in (
        {**body, "username": "x y"},
        {**body, "password": "short"},
        {**body, "role": "root"},
    ):
        assert client.post("/api/v1/users", json=bad, headers=admin_headers).status_code == 422
    _, annotator = make_user()
    assert client.post("/api/v1/users", json=body, headers=bearer(annotator)).status_code == 403
    assert client.post("/api/v1/users", json=body).status_code == 401


def test_token_is_shown_once_stored_hashed_records_use_and_can_be_revoked(
    client: TestClient, admin_headers: dict[str, str], make_user: MakeUser, db: Session
) -> None:
    make_user("dora")
    created = client.post(
        "/api/v1/users/dora/tokens", json={"name": "export job"}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    token, token_id = created.json()["token"], created.json()["id"]
    row = db.get(ApiToken, token_id)
    assert row is not None and row.name == "export job"
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token

    listed = client.get("/api/v1/users/dora/tokens", headers=admin_headers).json()
    mine = next(t for t in listed if t["id"] == token_id)
    assert set(mine) >= {"id", "created_at", "last_used_at"} and "token" not in mine
    assert mine["last_used_at"] is None

    assert client.get("/api/v1/me", headers=bearer(token)).json()["username"] == "dora"
    listed = client.get("/api/v1/users/dora/tokens", headers=admin_headers).json()
    assert next(t for t in listed if t["id"] == token_id)["last_used_at"] is not None

    # Another user's name with this token's id: not found, and nothing revoked.
    make_user("erin")
    wrong = client.delete(f"/api/v1/users/erin/tokens/{token_id}", headers=admin_headers)
    assert wrong.status_code == 404
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200

    revoked = client.delete(f"/api/v1/users/dora/tokens/{token_id}", headers=admin_headers)
    assert revoked.status_code == 204
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    listed = client.get("/api/v1/users/dora/tokens", headers=admin_headers).json()
    assert next(t for t in listed if t["id"] == token_id)["revoked_at"] is not None


def test_deactivation_ends_sessions_and_tokens_at_once(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    _, token = make_user("frank")
    browser = TestClient(app)
    logged_in(browser, "frank")
    assert browser.get("/api/v1/me").status_code == 200
    assert browser.get("/account/password").status_code == 200

    off = client.post("/api/v1/users/frank/deactivate", headers=admin_headers)
    assert off.status_code == 200 and off.json()["is_active"] is False

    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert browser.get("/api/v1/me").status_code == 401
    page = browser.get("/account/password", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert login(TestClient(app), "frank").status_code == 401

    on = client.post("/api/v1/users/frank/reactivate", headers=admin_headers)
    assert on.status_code == 200 and on.json()["is_active"] is True
    # Credentials from before stay dead; the password works again.
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert browser.get("/api/v1/me").status_code == 401
    assert login(TestClient(app), "frank").status_code == 303


def test_admins_cannot_lock_themselves_or_the_last_admin_out(
    client: TestClient, make_user: MakeUser, db: Session
) -> None:
    admin, token = make_user("root-admin", "admin")
    for other in db.scalars(select(User).where(User.role == "admin", User.id != admin.id)):
        other.is_active = False
    db.commit()
    own = client.post("/api/v1/users/root-admin/deactivate", headers=bearer(token))
    assert own.status_code == 409
    make_user("second-admin", "admin")
    assert (
        client.post("/api/v1/users/second-admin/deactivate", headers=bearer(token)).status_code
        == 200
    )
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_no_token_for_a_deactivated_user(
    client: TestClient, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    make_user("gina")
    client.post("/api/v1/users/gina/deactivate", headers=admin_headers)
    assert client.post("/api/v1/users/gina/tokens", headers=admin_headers).status_code == 409


def test_admin_password_reset_ends_the_users_sessions(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], make_user: MakeUser
) -> None:
    _, token = make_user("hank")
    browser = TestClient(app)
    logged_in(browser, "hank")
    reset = client.put(
        "/api/v1/users/hank/password", json={"password": "brand-new-pw"}, headers=admin_headers
    )
    assert reset.status_code == 204
    assert browser.get("/api/v1/me").status_code == 401
    assert login(TestClient(app), "hank").status_code == 401
    assert login(TestClient(app), "hank", "brand-new-pw").status_code == 303
    # A token is a credential of its own: an admin revokes it separately.
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_users_change_their_own_password_and_other_sessions_end(
    app: FastAPI, make_user: MakeUser
) -> None:
    make_user("ivy")
    browser, other = TestClient(app), TestClient(app)
    csrf = logged_in(browser, "ivy")
    logged_in(other, "ivy")

    def change(current: str, new: str, repeat: str) -> Any:
        data = {
            "current_password": current,
            "new_password": new,
            "repeat_password": repeat,
            "csrf_token": csrf,
        }
        return browser.post("/account/password", data=data, follow_redirects=False)

    wrong = change("not-my-password", "another-pw-1", "another-pw-1")
    assert wrong.status_code == 422 and "wrong password" in wrong.text
    assert change(PASSWORD, "another-pw-1", "another-pw-2").status_code == 422
    done = change(PASSWORD, "another-pw-1", "another-pw-1")
    assert done.status_code == 303 and done.headers["location"] == "/account/password?done=changed"

    assert browser.get("/api/v1/me").status_code == 200  # this browser got a fresh cookie
    assert other.get("/api/v1/me").status_code == 401  # every other session ended
    assert login(TestClient(app), "ivy").status_code == 401
    assert login(TestClient(app), "ivy", "another-pw-1").status_code == 303
    assert "changed" in browser.get("/account/password?done=changed").text


def test_change_own_password_over_the_api(client: TestClient, make_user: MakeUser) -> None:
    _, token = make_user("jack")
    body = {"current_password": "nope-nope", "new_password": "jack-new-password"}
    assert client.put("/api/v1/me/password", json=body, headers=bearer(token)).status_code == 422
    body["current_password"] = PASSWORD
    assert client.put("/api/v1/me/password", json=body, headers=bearer(token)).status_code == 204
    assert login(client, "jack", "jack-new-password").status_code == 303


def test_admin_pages_create_users_and_show_a_token_once(
    app: FastAPI, make_user: MakeUser, db: Session
) -> None:
    make_user("boss", "admin")
    browser = TestClient(app)
    csrf = logged_in(browser, "boss")
    listing = browser.get("/users")
    assert listing.status_code == 200 and "boss" in listing.text

    form = {"username": "kim", "password": "kim-password", "role": "annotator", "csrf_token": csrf}
    created = browser.post("/users", data=form, follow_redirects=False)
    assert created.status_code == 303 and created.headers["location"].startswith("/users/kim")
    assert browser.post("/users", data=form).status_code == 409

    shown = browser.post("/users/kim/tokens", data={"name": "cli", "csrf_token": csrf})
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    token = shown.text.split('id="new-token">', 1)[1].split("<", 1)[0]
    assert token.startswith("sp_")
    assert browser.get("/users/kim").text.count(token) == 0  # never shown again
    assert TestClient(app).get("/api/v1/me", headers=bearer(token)).status_code == 200

    row = db.scalar(select(ApiToken).join(User).where(User.username == "kim"))
    assert row is not None
    revoke = browser.post(
        f"/users/kim/tokens/{row.id}/revoke", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert revoke.status_code == 303
    assert TestClient(app).get("/api/v1/me", headers=bearer(token)).status_code == 401

    off = browser.post("/users/kim/deactivate", data={"csrf_token": csrf}, follow_redirects=False)
    assert off.status_code == 303
    assert "deactivated" in browser.get(off.headers["location"]).text
    reset = browser.post("/users/kim/password", data={"password": "short", "csrf_token": csrf})
    assert reset.status_code == 422


def test_annotators_get_no_admin_pages(app: FastAPI, make_user: MakeUser) -> None:
    make_user("lee")
    browser = TestClient(app)
    logged_in(browser, "lee")
    assert browser.get("/users").status_code == 403
    assert "/users" not in browser.get("/account/password").text.split("<main", 1)[0]


def test_password_hashing_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.auth import security

    def fresh(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        security._hasher.cache_clear()

    try:
        fresh(SAFEPREF_PASSWORD_HASH_COST="standard")
        strong = security.hash_password("pw-standard")
        assert strong.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        fresh(SAFEPREF_PASSWORD_HASH_COST="minimal")
        assert security.needs_rehash(strong)
        fresh(SAFEPREF_PASSWORD_HASH_COST="minimal", SAFEPREF_ENVIRONMENT="production")
        with pytest.raises(ConfigurationError, match="tests only"):
            security.hash_password("pw")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        security._hasher.cache_clear()


def test_login_upgrades_a_hash_made_with_weaker_parameters(
    client: TestClient, make_user: MakeUser, db: Session
) -> None:
    from argon2 import PasswordHasher

    user, _ = make_user("mo")
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=16, parallelism=2).hash(PASSWORD)
    db.flush()
    assert login(client, "mo").status_code == 303
    db.refresh(user)
    assert "p=2" not in user.password_hash and verify_password(user.password_hash, PASSWORD)


def test_session_cookie_for_unknown_or_inactive_user_is_refused(
    client: TestClient, make_user: MakeUser
) -> None:
    page = client.get("/login")
    assert csrf_from(page.text)
    client.cookies.set(SESSION_COOKIE, "forged.cookie.value")
    assert client.get("/api/v1/me").status_code == 401
