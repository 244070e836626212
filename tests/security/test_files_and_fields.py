"""Smaller leaks: files readable by other local users, answers' sources shown to annotators,
blank passwords, and the Host header copied into redirects."""

from __future__ import annotations

import http.client
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from app import migrate
from app.config import Settings
from app.db import make_engine
from tests.security.conftest import PASSWORD, ROOT, Site, page_token


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (files 0644 unless the code asks for less)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_sqlite_database_and_its_wal_and_shm_are_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "safepref.db"
    engine = make_engine(Settings(database_url=f"sqlite:///{path}"))
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM users"))
            wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
            assert wal.exists() and shm.exists()
            assert {p.name: _mode(p) for p in (path, wal, shm)} == {
                p.name: 0o600 for p in (path, wal, shm)
            }
    finally:
        engine.dispose()


def test_an_existing_world_readable_database_is_made_private(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    engine = make_engine(Settings(database_url=f"sqlite:///{path}"))
    engine.dispose()
    assert _mode(path) == 0o600


def test_the_generated_secret_file_is_private(tmp_path: Path, open_umask: None) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/s.db", secret_key=None, environment="development"
    )
    key = settings.resolved_secret_key()
    secret = tmp_path / "s.db.secret"
    assert secret.read_text().strip() == key and _mode(secret) == 0o600


def test_export_output_files_are_private(databases: Any, tmp_path: Path) -> None:
    url = databases.new_url()
    engine = make_engine(Settings(database_url=url))
    migrate.upgrade(engine)
    engine.dispose()
    env = {**os.environ, "SAFEPREF_DATABASE_URL": url}
    fresh, existing = tmp_path / "new.jsonl", tmp_path / "existing.jsonl"
    existing.write_text("old\n")
    existing.chmod(0o644)
    for target in (fresh, existing):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.cli",
                "export",
                "--format",
                "pku-saferlhf",
                "-o",
                str(target),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            # The usual umask in the child, whatever the test runner's is.
            preexec_fn=lambda: os.umask(0o022),
        )
        assert done.returncode == 0, done.stderr
        assert _mode(target) == 0o600, target.name


def _sources(item: dict[str, Any]) -> tuple[Any, list[Any]]:
    return item["prompt_source"], [r["source"] for r in item["responses"]]


@pytest.mark.live
def test_annotators_do_not_get_the_sources_admins_do(site: Site) -> None:
    admin, alice = site.account("admin"), site.account()
    batch = site.batch([alice, admin])
    mine = site.api("POST", f"/api/v1/batches/{batch}/next", alice.token)
    assert mine.status_code == 200, mine.text
    # The keys stay (the response's shape is fixed); their values are null.
    assert _sources(mine.json()["item"]) == (None, [None, None])
    assignment = mine.json()["assignment_id"]
    view = site.api("GET", f"/api/v1/assignments/{assignment}", alice.token)
    assert _sources(view.json()["item"]) == (None, [None, None])
    # Her browser's copy of the page does not carry them either.
    page = site.logged_in(alice).get(f"/assignments/{assignment}")
    assert page.status_code == 200 and "model-0" not in page.text

    as_admin = site.api("GET", f"/api/v1/assignments/{assignment}", admin.token)
    prompt_source, sources = _sources(as_admin.json()["item"])
    assert prompt_source and sorted(sources) == ["model-0", "model-1"]
    # An admin who annotates as a member keeps them too.
    own = site.api("POST", f"/api/v1/batches/{batch}/next", admin.token)
    assert own.status_code == 200, own.text
    prompt_source, sources = _sources(own.json()["item"])
    assert prompt_source and sorted(sources) == ["model-0", "model-1"]


BLANK = ["        ", " \t \n \u00a0\u3000  ", "  short  "]


@pytest.mark.live
@pytest.mark.parametrize("password", BLANK, ids=["spaces", "whitespace", "short-padded"])
def test_blank_and_padded_short_passwords_are_refused_everywhere(site: Site, password: str) -> None:
    admin, alice = site.account("admin"), site.account()
    # API: create, reset, change own.
    created = site.api(
        "POST",
        "/api/v1/users",
        admin.token,
        json={"username": f"x{os.urandom(4).hex()}", "password": password, "role": "annotator"},
    )
    assert created.status_code == 422 and "password" in str(created.json()["detail"])
    reset = site.api(
        "PUT", f"/api/v1/users/{alice.username}/password", admin.token, json={"password": password}
    )
    assert reset.status_code == 422
    own = site.api(
        "PUT",
        "/api/v1/me/password",
        alice.token,
        json={"current_password": PASSWORD, "new_password": password},
    )
    assert own.status_code == 422
    # Pages: an admin creating an account, and a user changing theirs.
    browser = site.logged_in(admin)
    page = browser.post(
        "/users",
        data={
            "csrf_token": page_token(browser, "/users"),
            "username": f"y{os.urandom(4).hex()}",
            "password": password,
            "role": "annotator",
        },
    )
    assert page.status_code == 422 and "at least 8 characters" in page.text
    change = browser.post(
        "/account/password",
        data={
            "csrf_token": page_token(browser),
            "current_password": PASSWORD,
            "new_password": password,
            "repeat_password": password,
        },
    )
    assert change.status_code == 422 and "at least 8 characters" in change.text
    # CLI.
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "create-user",
            f"z{os.urandom(4).hex()}",
            "--role",
            "annotator",
        ],
        input=password.replace("\n", " ") + "\n",
        cwd=ROOT,
        env={**os.environ, "SAFEPREF_DATABASE_URL": site.database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 2 and "at least 8 characters" in cli.stderr
    # Everything above still works with a good password.
    assert site.logged_in(alice)


def _raw_get(site: Site, path: str, host: str) -> http.client.HTTPResponse:
    where = urlsplit(site.url)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host)
    conn.endheaders()
    return conn.getresponse()


@pytest.mark.live
def test_trailing_slash_redirects_do_not_copy_the_host_header(site: Site) -> None:
    answer = _raw_get(site, "/login/?next=/batches", "evil.example")
    assert answer.status in (307, 308)
    assert answer.getheader("location") == "/login?next=/batches"
    # A path that a browser would read as another host is never a redirect target.
    for path in ("//evil.example/", "//evil.example", "/\\evil.example/"):
        answer = _raw_get(site, path, "evil.example")
        location = answer.getheader("location") or ""
        assert not location.startswith("//") and "evil.example" not in location, (path, location)
