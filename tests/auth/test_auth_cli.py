"""`safepref create-token`, and `safepref serve` refusing to run without a secret key."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, User
from app.auth.service import create_user
from app.config import Settings
from app.db import make_engine
from tests.test_cli import migrated, run

SAFEPREF = [sys.executable, "-m", "app.cli"]


def test_create_token_prints_the_token_once_and_stores_its_digest(databases: Any) -> None:
    url = migrated(databases)
    engine = make_engine(Settings(database_url=url))
    with Session(engine) as session, session.begin():
        create_user(session, "tok-user", "password-123", "annotator")
    result = run(url, "create-token", "tok-user", "--name", "nightly export")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("sp_") and len(token.splitlines()) == 1
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(ApiToken.token_hash, ApiToken.name, User.username).join(
                    User, User.id == ApiToken.user_id
                )
            ).one()
    finally:
        engine.dispose()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.name == "nightly export" and row.username == "tok-user"

    missing = run(url, "create-token", "nobody")
    assert missing.returncode != 0 and "no user 'nobody'" in missing.stderr


@pytest.mark.live
@pytest.mark.parametrize("secret", [None, "changethis"])
def test_serve_refuses_to_start_without_a_secret_outside_development(
    tmp_path: Path, secret: str | None
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SAFEPREF_SECRET_KEY"}
    env.update(
        SAFEPREF_ENVIRONMENT="production",
        SAFEPREF_DATABASE_URL=f"sqlite:///{tmp_path}/prod.db",
    )
    if secret is not None:
        env["SAFEPREF_SECRET_KEY"] = secret
    result = subprocess.run(
        [*SAFEPREF, "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SAFEPREF_SECRET_KEY must be set" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "prod.db").exists()  # refused before touching anything
