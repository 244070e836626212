"""Accounts in bulk from a CSV file: the users page's upload and `safepref create-users`.

All or nothing: every refused file names its line, and leaves no account behind."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.security import verify_password
from app.config import Settings
from app.db import make_engine
from tests.test_cli import migrated, run


def _users(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(User)) or 0


def _upload(client: TestClient, headers: dict[str, str], text: str | bytes) -> Any:
    body = text.encode() if isinstance(text, str) else text
    return client.post(
        "/users/import", headers=headers, files={"file": ("people.csv", body, "text/csv")}
    )


def test_upload_creates_every_account_and_shows_generated_passwords_once(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    tag = uuid.uuid4().hex[:6]
    text = (
        "username,role,password\n"
        f"ann1-{tag},annotator,\n"
        f"ann2-{tag},Annotator,given-password-1\n"
        "\n"
        f"lead-{tag},admin,\n"
    )
    response = _upload(client, admin_headers, text)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    rows = {u.username: u for u in db.scalars(select(User).where(User.username.contains(tag)))}
    assert {name: u.role for name, u in rows.items()} == {
        f"ann1-{tag}": "annotator",
        f"ann2-{tag}": "annotator",
        f"lead-{tag}": "admin",
    }
    assert verify_password(rows[f"ann2-{tag}"].password_hash, "given-password-1")
    assert "given-password-1" not in response.text  # the file's own passwords are not echoed
    # The generated passwords are on the page, and only their hashes are stored.
    for name in (f"ann1-{tag}", f"lead-{tag}"):
        row = response.text.split(f">{name}</a>", 1)[1].split("</tr>", 1)[0]
        shown = row.split("<code>", 1)[1].split("</code>", 1)[0]
        assert len(shown) >= 16
        assert shown not in rows[name].password_hash
        assert verify_password(rows[name].password_hash, shown)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("username,role\nok-{t},annotator\nbad-{t},boss\n", "line 3: field 'role': unknown role"),
        (
            "username,role\nsame-{t},annotator\nother-{t},admin\nsame-{t},admin\n",
            "line 4: field 'username': 'same-{t}' is already on line 2",
        ),
        ("username,role\nok-{t},annotator\nno spaces-{t},annotator\n", "line 3: field 'username'"),
        ("username,role\nok-{t},annotator\nshort-{t},annotator,x\n", "line 3: expected 2 fields"),
        ('username,role\nok-{t},annotator\n"open-{t},annotator\n', "line 3"),
        ("username,role,password\nok-{t},annotator,short\n", "line 2: field 'password'"),
        ("user,role\nok-{t},annotator\n", "line 1: unknown column 'user'"),
        ("role\nannotator\n", "line 1: the header row must name the column 'username'"),
        ("username,role\n", "no accounts"),
        ("", "the file is empty"),
    ],
    ids=[
        "unknown-role",
        "duplicate-in-file",
        "bad-username",
        "wrong-field-count",
        "unclosed-quote",
        "short-password",
        "unknown-column",
        "missing-column",
        "header-only",
        "empty",
    ],
)
def test_a_bad_file_is_refused_naming_its_line_and_nothing_is_written(
    client: TestClient, admin_headers: dict[str, str], db: Session, text: str, expected: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    before = _users(db)
    response = _upload(client, admin_headers, text.format(t=tag))
    assert response.status_code == 422, response.text
    assert expected.format(t=tag).replace("'", "&#39;") in response.text
    assert _users(db) == before


def test_a_username_that_exists_already_is_refused_by_line(
    client: TestClient,
    admin_headers: dict[str, str],
    db: Session,
    make_user: Callable[..., Any],
) -> None:
    user, _ = make_user()
    before = _users(db)
    response = _upload(
        client, admin_headers, f"username,role\nnew-1x,annotator\n{user.username},admin\n"
    )
    assert response.status_code == 422
    assert f"line 3: field &#39;username&#39;: user &#39;{user.username}&#39; already exists" in (
        response.text
    )
    assert _users(db) == before


def test_a_file_that_is_not_utf8_is_refused(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    before = _users(db)
    response = _upload(client, admin_headers, b"username,role\nok,annotator\nb\xff\xfe,admin\n")
    assert response.status_code == 422 and "line 3: not UTF-8 text" in response.text
    assert _users(db) == before


def test_annotators_cannot_upload_accounts(
    client: TestClient, db: Session, make_user: Callable[..., Any]
) -> None:
    _, token = make_user()
    before = _users(db)
    response = _upload(client, {"Authorization": f"Bearer {token}"}, "username,role\nx1,admin\n")
    assert response.status_code == 403
    assert _users(db) == before


def test_cli_create_users_prints_generated_passwords_and_refuses_bad_files(
    databases: Any, tmp_path: Path
) -> None:
    url = migrated(databases)
    good = tmp_path / "people.csv"
    good.write_text("username,role,password\nalice,annotator,\nbob,admin,bobs-password-1\n")
    result = run(url, "create-users", str(good))
    assert result.returncode == 0, result.stderr
    printed = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["username"], r["role"]) for r in printed] == [
        ("alice", "annotator"),
        ("bob", "admin"),
    ]
    assert printed[1]["password"] == ""  # the file's own password is not repeated
    generated = printed[0]["password"]
    assert len(generated) >= 16 and "shown above only" in result.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("username,role\ncarol,annotator\nalice,annotator\n")
    refused = run(url, "create-users", str(bad))
    assert refused.returncode == 2
    assert "line 3: field 'username': user 'alice' already exists" in refused.stderr
    dup = tmp_path / "dup.csv"
    dup.write_text("username,role\ndave,annotator\ndave,admin\n")
    refused = run(url, "create-users", str(dup))
    assert refused.returncode == 2 and "line 3" in refused.stderr

    engine = make_engine(Settings(database_url=url))
    try:
        with Session(engine) as session:
            users = {u.username: u for u in session.scalars(select(User))}
    finally:
        engine.dispose()
    assert set(users) == {"alice", "bob"}  # carol and dave were not created
    assert verify_password(users["alice"].password_hash, generated)
    assert verify_password(users["bob"].password_hash, "bobs-password-1")
