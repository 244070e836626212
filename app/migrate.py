"""Run Alembic from code: `safepref migrate`, `serve` on SQLite, and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

_PACKAGE = Path(__file__).resolve().parent


def _resource(name: str) -> Path:
    # An installed wheel carries the files in app/_bundled; a checkout has them at the top.
    bundled = _PACKAGE / "_bundled" / name
    return bundled if bundled.exists() else _PACKAGE.parent / name


def alembic_config() -> Config:
    cfg = Config(str(_resource("alembic.ini")))
    cfg.set_main_option("script_location", str(_resource("migrations")))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def resource_path(name: str) -> Path:
    return _resource(name)
