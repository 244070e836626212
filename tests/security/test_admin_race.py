"""The last active admin cannot be deactivated, even by two admins deactivating each other at
the same moment (each check used to count two active admins, and both went through)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import migrate
from app.auth.models import User
from app.auth.service import create_user, deactivate_user
from app.config import Settings
from app.db import make_engine
from app.errors import Conflict
from tests.support.locks import wait_until_blocked


def test_two_admins_deactivating_each_other_leave_one_active(databases: Any) -> None:
    engine = make_engine(Settings(database_url=databases.new_url()))
    try:
        migrate.upgrade(engine)
        with Session(engine) as s, s.begin():
            ids = [create_user(s, name, "password-123", "admin").id for name in ("ada", "bob")]
        first = Session(engine)
        second_error: list[BaseException] = []

        def second() -> None:
            with Session(engine) as s:
                try:
                    with s.begin():
                        ada, bob = s.get(User, ids[0]), s.get(User, ids[1])
                        assert ada is not None and bob is not None
                        deactivate_user(s, ada, by=bob)
                except BaseException as exc:  # handed to the test's thread
                    second_error.append(exc)

        try:
            with first.begin():
                ada, bob = first.get(User, ids[0]), first.get(User, ids[1])
                assert ada is not None and bob is not None
                deactivate_user(first, bob, by=ada)
                worker = threading.Thread(target=second)
                worker.start()
                wait_until_blocked(engine, worker)
            worker.join(timeout=60)
            assert not worker.is_alive()
        finally:
            first.close()

        with Session(engine) as s:
            active = s.scalars(select(User.username).where(User.is_active)).all()
        assert active == ["ada"]
        assert len(second_error) == 1 and isinstance(second_error[0], Conflict)
        assert "last active admin" in second_error[0].detail
    finally:
        engine.dispose()


def test_the_last_admin_alone_cannot_be_deactivated(databases: Any) -> None:
    engine = make_engine(Settings(database_url=databases.new_url()))
    try:
        migrate.upgrade(engine)
        with Session(engine) as s, s.begin():
            ada = create_user(s, "ada", "password-123", "admin")
            other = create_user(s, "cy", "password-123", "admin")
            deactivate_user(s, other, by=ada)
            cy = create_user(s, "cyril", "password-123", "annotator")
            with pytest.raises(Conflict):
                deactivate_user(s, ada, by=cy)
    finally:
        engine.dispose()
