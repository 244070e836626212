"""Behind a reverse proxy: whose X-Forwarded-For is believed (SAFEPREF_TRUSTED_PROXIES), and a
login throttle that does not lock a whole office out for one person's typos."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.auth.models import LoginFailure
from app.auth.service import create_user
from app.config import Settings, get_settings
from app.db import get_session
from app.main import create_app
from tests.conftest import DatabaseFactory
from tests.support.authkit import PASSWORD, login
from tests.support.live_server import app_server, migrated

SECRET = "proxy-test-" + uuid.uuid4().hex
OFFICE = "203.0.113.50"  # the address every annotator of the office shares


def test_trusted_proxies_are_addresses_or_networks() -> None:
    settings = Settings(trusted_proxies=" 10.0.0.0/8 , 192.168.1.7,::1, 10.1.2.3/16")
    assert settings.trusted_proxy_list == ["10.0.0.0/8", "192.168.1.7", "::1", "10.1.0.0/16"]
    with pytest.raises(ValidationError, match=r"'proxy\.example' is neither an address"):
        Settings(trusted_proxies="10.0.0.1,proxy.example")


@pytest.fixture
def proxied_app(db: Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    monkeypatch.setenv("SAFEPREF_TRUSTED_PROXIES", "10.0.0.0/8")
    get_settings.cache_clear()
    application = create_app()

    def session_override() -> Iterator[Session]:
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise

    application.dependency_overrides[get_session] = session_override
    yield application
    monkeypatch.undo()
    get_settings.cache_clear()


def failed_from(app: FastAPI, db: Session, peer: str, forwarded: str | None) -> str:
    """Fails one login from TCP peer `peer` with that X-Forwarded-For; the address the
    throttle recorded for it."""
    client = TestClient(app, client=(peer, 40000))
    if forwarded is not None:
        client.headers["X-Forwarded-For"] = forwarded
    name = "nobody-" + uuid.uuid4().hex[:8]
    assert login(client, name, "wrong-wrong").status_code == 401
    recorded = db.scalar(select(LoginFailure.client).where(LoginFailure.username == name))
    assert recorded is not None
    return recorded


def test_the_rightmost_untrusted_address_is_the_client(proxied_app: FastAPI, db: Session) -> None:
    # A trusted proxy: the address it appended is the client.
    assert failed_from(proxied_app, db, "10.0.0.2", "198.51.100.1") == "198.51.100.1"
    # Whatever the client wrote itself is left of it, and ignored.
    assert failed_from(proxied_app, db, "10.0.0.2", "1.2.3.4, 198.51.100.1") == "198.51.100.1"
    # Two trusted proxies in a row: skipped from the right.
    assert failed_from(proxied_app, db, "10.0.0.2", "198.51.100.1, 10.9.9.9") == "198.51.100.1"
    # No header from the proxy: the proxy itself.
    assert failed_from(proxied_app, db, "10.0.0.2", None) == "10.0.0.2"


def test_an_untrusted_peer_cannot_choose_its_address(proxied_app: FastAPI, db: Session) -> None:
    assert failed_from(proxied_app, db, "198.51.100.9", "10.0.0.3") == "198.51.100.9"
    assert failed_from(proxied_app, db, "198.51.100.9", "192.0.2.1") == "198.51.100.9"


def test_without_trusted_proxies_the_header_is_ignored(app: FastAPI, db: Session) -> None:
    assert failed_from(app, db, "10.0.0.2", "198.51.100.1") == "10.0.0.2"


def _users(url: str, count: int) -> list[str]:
    names = [f"office{i:02d}" for i in range(count)]
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            for name in names:
                create_user(session, name, PASSWORD, "annotator")
    finally:
        engine.dispose()
    return names


@pytest.mark.live
def test_one_persons_typos_behind_the_office_proxy_lock_out_nobody_else(
    databases: DatabaseFactory,
) -> None:
    """The live server behind a proxy at 127.0.0.1 (the test's own connections): 25 people
    share the office address; one fails 15 times; the 24 others still log in."""
    url = migrated(databases.new_url())
    names = _users(url, 25)
    trusted = {"SAFEPREF_TRUSTED_PROXIES": "127.0.0.1"}
    with app_server(url, workers=1, secret=SECRET, env=trusted) as base:

        def browser(client_address: str) -> httpx.Client:
            # What the proxy adds: the address it received the connection from.
            return httpx.Client(base_url=base, headers={"X-Forwarded-For": client_address})

        clumsy = browser(OFFICE)
        codes = [login(clumsy, names[0], "typo-typo").status_code for _ in range(15)]
        assert codes == [401] * 10 + [429] * 5
        for name in names[1:]:
            assert login(browser(OFFICE), name).status_code == 303, name
        # The locked person, from home (another address), is not locked out either.
        assert login(browser("198.51.100.77"), names[0]).status_code == 303
        # A client that writes its own X-Forwarded-For cannot escape the lock: the proxy
        # appends the address it saw, and the rightmost untrusted one is believed.
        spoofed = httpx.Client(base_url=base, headers={"X-Forwarded-For": f"192.0.2.1, {OFFICE}"})
        assert login(spoofed, names[0]).status_code == 429


@pytest.mark.live
def test_a_spoofed_header_from_an_untrusted_peer_changes_nothing(
    databases: DatabaseFactory,
) -> None:
    """The live server trusts another proxy's address only: the test's connections come from
    an untrusted peer, whose X-Forwarded-For must neither unlock nor lock anyone."""
    url = migrated(databases.new_url())
    victim, bystander = _users(url, 2)
    trusted = {"SAFEPREF_TRUSTED_PROXIES": "10.0.0.0/8"}
    with app_server(url, workers=1, secret=SECRET, env=trusted) as base:
        for i in range(10):  # each guess claims to come from a new address
            spoof = httpx.Client(base_url=base, headers={"X-Forwarded-For": f"192.0.2.{i}"})
            assert login(spoof, victim, "guess-guess").status_code == 401
        fresh = httpx.Client(base_url=base, headers={"X-Forwarded-For": "198.51.100.1"})
        assert login(fresh, victim).status_code == 429  # counted for the peer, locked
        # Nor can the header frame someone else: failures claiming their address counted
        # for the peer only, so the bystander's own peer (the same here) is what matters.
        assert login(httpx.Client(base_url=base), bystander).status_code == 303
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            recorded = set(session.scalars(select(LoginFailure.client)))
    finally:
        engine.dispose()
    assert recorded == {"127.0.0.1"}
