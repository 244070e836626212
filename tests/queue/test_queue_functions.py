"""The queue's functions installed by the migrations are exactly app/queue/sql/*.sql.

Each canonical file is installed into a scratch schema inside the test's rolled-back
transaction, and PostgreSQL's own rendering of both definitions (pg_get_functiondef) must
match: body, arguments, result and attributes. A function edited in its file without a
migration that installs the new text, or changed by a migration without updating the file,
fails here.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.queue.functions import FUNCTIONS, name, source

CANON = "queue_canon"


def definitions(db: Session, schema: str) -> dict[str, str]:
    rows = db.execute(
        text(
            "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = :schema AND p.proname LIKE 'safepref\\_%'"
        ),
        {"schema": schema},
    ).all()
    return {row[0]: row[1].replace(f"{schema}.", "") for row in rows}


def drift(db: Session) -> dict[str, str]:
    """Functions whose installed definition differs from the canonical file (or that exist
    on one side only), each with what differs."""
    db.execute(text(f"CREATE SCHEMA {CANON}"))
    db.execute(text(f"SET LOCAL search_path TO {CANON}, public"))
    for signature in FUNCTIONS:
        db.connection().exec_driver_sql(source(signature))
    db.execute(text("SET LOCAL search_path TO public"))
    canonical, installed = definitions(db, CANON), definitions(db, "public")
    problems = {}
    for function in sorted(set(canonical) | set(installed)):
        if function not in installed:
            problems[function] = "in app/queue/sql/ but not installed by the migrations"
        elif function not in canonical:
            problems[function] = "installed by the migrations but has no file in app/queue/sql/"
        elif canonical[function] != installed[function]:
            problems[function] = "installed text differs from its .sql file"
    return problems


# The functions exist on PostgreSQL only: these tests take that backend alone (never a skip).
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def pg(db: Session) -> Session:
    assert db.get_bind().dialect.name == "postgresql"
    return db


def test_installed_functions_match_their_sql_files(pg: Session) -> None:
    assert sorted(name(s) for s in FUNCTIONS) == sorted(definitions(pg, "public"))
    assert drift(pg) == {}


def test_a_function_changed_outside_its_file_is_reported(pg: Session) -> None:
    signature = "safepref_rotation(int, int, int)"
    edited = source(signature).replace("2147483647", "2147483646")
    assert edited != source(signature)
    pg.connection().exec_driver_sql(edited)  # as a migration without the file would
    assert drift(pg) == {"safepref_rotation": "installed text differs from its .sql file"}
