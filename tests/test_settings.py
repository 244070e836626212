"""Settings: environment prefix, URL normalisation, the secret-key rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigurationError, Settings


def test_prefix_and_postgres_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEPREF_DATABASE_URL", "postgresql://u:p@localhost/db")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u:p@localhost/db"
    assert not settings.is_sqlite


def test_default_is_a_sqlite_file_in_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAFEPREF_DATABASE_URL", raising=False)
    settings = Settings()
    assert settings.is_sqlite and settings.sqlite_path == Path("safepref.db")


def test_production_refuses_missing_or_placeholder_secret() -> None:
    for secret in (None, "changethis"):
        settings = Settings(environment="production", secret_key=secret)
        with pytest.raises(ConfigurationError, match="SAFEPREF_SECRET_KEY"):
            settings.resolved_secret_key()
    assert Settings(environment="production", secret_key="x" * 40).resolved_secret_key() == "x" * 40


def test_embedded_default_keeps_a_generated_secret_beside_the_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/data.db", secret_key=None)
    first = settings.resolved_secret_key()
    assert len(first) >= 40
    assert (tmp_path / "data.db.secret").read_text().strip() == first
    assert settings.resolved_secret_key() == first
    assert (tmp_path / "data.db.secret").stat().st_mode & 0o077 == 0
