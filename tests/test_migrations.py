"""Migrations: one head, and upgrade -> downgrade -> upgrade on both backends."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from app import migrate
from app.config import Settings
from app.db import make_engine
from app.models import Base


def test_single_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1


def test_upgrade_downgrade_upgrade(databases) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(Settings(database_url=databases.new_url()))
    try:
        migrate.upgrade(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        migrate.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_models_match_migrations(engine) -> None:  # type: ignore[no-untyped-def]
    """A model change without a migration makes autogenerate find a difference."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
